"""``wsgisec.csrf``: the import name of the browser CSRF layer, kept for ini files and code.

The layer lives in :mod:`wsgisec.signed_requests.csrf` (practice 4 owns it); ini files
that say ``use = call:wsgisec.csrf:filter_factory`` and code that imports
``wsgisec.csrf.BrowserCSRF`` keep working.
"""

from .signed_requests.csrf import BrowserCSRF, filter_factory

__all__ = ["BrowserCSRF", "filter_factory"]
