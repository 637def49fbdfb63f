"""wsgisec: security practices for partner APIs, as WSGI middleware.

Each practice is one middleware class (wrapped app first, typed keyword settings) and one
PasteDeploy filter, ``egg:wsgisec#<name>``. See README.md for the pipeline and DESIGN.md
for the architecture.

The layer classes are re-exported lazily (PEP 562): ``import wsgisec`` loads nothing, so a
partner's client, which imports only :mod:`wsgisec.partner`, needs neither WebOb nor
passlib; ``wsgisec.TokenAuth`` imports its module on first use.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0.dev0"

# public name -> module that defines it
_EXPORTS = {
    "ErrorMasker": ".errors",
    "HTTPSOnly": ".https",
    "TokenAuth": ".token_auth",
    "SignedRequests": ".signed_requests",
    "BrowserCSRF": ".signed_requests.csrf",
    "Whitelist": ".whitelist",
    "Escaping": ".escaping",
    "Reports": ".reports",
    "ConfigurationError": ".settings",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'wsgisec' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
