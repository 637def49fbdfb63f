"""wsgisec: security practices for partner APIs, as WSGI middleware.

Each practice is one middleware class (wrapped app first, typed keyword settings) and one
PasteDeploy filter, ``egg:wsgisec#<name>``. See README.md for the pipeline and DESIGN.md
for the architecture.
"""

from .errors import ErrorMasker as ErrorMasker
from .escaping import Escaping as Escaping
from .https import HTTPSOnly as HTTPSOnly
from .settings import ConfigurationError as ConfigurationError
from .signed_requests import SignedRequests as SignedRequests
from .token_auth import TokenAuth as TokenAuth
from .whitelist import Whitelist as Whitelist

__all__ = ["ErrorMasker", "Escaping", "HTTPSOnly", "TokenAuth", "SignedRequests", "Whitelist", "ConfigurationError"]

__version__ = "0.1.0.dev0"
