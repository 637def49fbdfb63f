"""wsgisec: security practices for partner APIs, as WSGI middleware.

Each practice is one middleware class (wrapped app first, typed keyword settings) and one
PasteDeploy filter, ``egg:wsgisec#<name>``. See README.md for the pipeline and DESIGN.md
for the architecture.

The names below are re-exported lazily (PEP 562): ``import wsgisec`` (and so
``import wsgisec.partner`` on a partner's machine) loads none of the server's
dependencies (WebOb, PasteDeploy, passlib, argon2, fastjsonschema) until a layer is used.
"""

from __future__ import annotations

import importlib

__all__ = ["ErrorMasker", "Escaping", "HTTPSOnly", "TokenAuth", "SignedRequests", "Whitelist", "ConfigurationError"]

__version__ = "0.1.0.dev0"

#: name -> the module that defines it.
_EXPORTS = {
    "ErrorMasker": ".errors",
    "Escaping": ".escaping",
    "HTTPSOnly": ".https",
    "ConfigurationError": ".settings",
    "SignedRequests": ".signed_requests",
    "TokenAuth": ".token_auth",
    "Whitelist": ".whitelist",
}


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'wsgisec' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
