"""token_auth's request rules: methods, public paths, scope rules, and their ini parsers.

``scopes`` lines are ``METHODS PATH SCOPE [SCOPE...]`` (see the layer's docstring); the
most specific rule wins. Methods are compared in one canonical form, upper case: a server
may pass a method through as sent (wsgiref does; waitress refuses it), and the legacy app
(werkzeug, WebOb) upper-cases it, so ``post`` must meet the ``POST`` rule (issue 11).
"""

from __future__ import annotations

import re

from .. import settings
from .clients import valid_scope

__all__ = ["ScopeRule", "PathPattern", "valid_request_method", "canonical_method", "ambiguous",
           "public_paths", "scope_rules", "realm", "endpoint_path"]

# RFC 9110 §5.6.2 tchar, upper case: what a method in a scope rule may be.
_RULE_METHOD = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Z-]+$")
# RFC 9110 §9.1 (method = token) and §5.6.2 (tchar), either case: what a request may send.
_REQUEST_METHOD = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
_COMMON_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def valid_request_method(method: str) -> bool:
    """Whether ``method`` is an RFC 9110 token (the common ones without a regex)."""
    return method in _COMMON_METHODS or bool(_REQUEST_METHOD.match(method))


def canonical_method(environ: dict) -> str:
    """The request method in the one form every rule compares: upper case."""
    return environ.get("REQUEST_METHOD", "GET").upper()


def ambiguous(path: str) -> bool:
    """True for paths with dot segments, which the app might resolve differently from us.

    ``/healthz/../api/items`` must not pass as public (prefix ``/healthz``) and then be
    routed to ``/api/items``; clients remove dot segments (RFC 3986 §5.2.4), attackers don't.
    """
    return "/." in path and ("/./" in path or "/../" in path or path.endswith(("/.", "/..")))


def realm(text: str) -> str:
    """ini parser of ``realm``."""
    value = text.strip()
    # It goes inside a quoted-string (RFC 7235 §2.2): no quotes, backslashes or controls.
    if not value or any(ch in value for ch in '"\\') or any(ord(ch) < 0x20 or ord(ch) == 0x7f for ch in value):
        raise ValueError("a realm name without quotes, backslashes or control characters")
    return value


def endpoint_path(text: str) -> str:
    """ini parser of ``token_path``, ``revoke_path`` and ``introspect_path``."""
    value = text.strip()
    if not value.startswith("/") or len(value.split()) != 1:
        raise ValueError("one URL path starting with /")
    return value


class PathPattern:
    """A path prefix (``/api``) or, written ``=/api``, one exact path."""

    __slots__ = ("path", "exact")

    def __init__(self, text: str):
        self.exact = text.startswith("=")
        self.path = text[1:] if self.exact else text
        if not self.path.startswith("/"):
            raise ValueError(f"paths that start with / or =/ ({text!r} does not)")
        if self.path == "/" and not self.exact:
            raise ValueError("a prefix narrower than / (which covers every path); write =/ "
                             "for the index page alone")

    def matches(self, path: str) -> bool:
        if self.exact:
            return path == self.path
        return settings.path_matches(path, (self.path,))

    def __str__(self):
        return ("=" if self.exact else "") + self.path


def public_paths(text: str) -> tuple:
    """ini parser of ``public_paths``."""
    return tuple(PathPattern(word) for word in settings.words(text))


class ScopeRule:
    """``METHODS PATH SCOPE [SCOPE...]``: the scopes a request must have been granted."""

    __slots__ = ("methods", "pattern", "scopes", "text")

    def __init__(self, line: str):
        parts = line.split()
        if len(parts) < 3:
            raise ValueError(f"lines of METHODS PATH SCOPE [SCOPE...] ({line!r} is not one)")
        methods, path, *scopes = parts
        if methods == "*":
            self.methods = None
        else:
            names = [name for name in methods.split(",") if name]
            if not names or not all(_RULE_METHOD.match(name) for name in names):
                raise ValueError(f"upper-case HTTP methods or * ({methods!r} in {line!r})")
            self.methods = frozenset(names) | ({"HEAD"} if "GET" in names else frozenset())
        self.pattern = PathPattern(path)
        for scope in scopes:
            if not valid_scope(scope):
                raise ValueError(f"scope names as RFC 6749 §3.3 allows ({scope!r} in {line!r})")
        self.scopes = tuple(scopes)
        self.text = " ".join(parts)

    def sort_key(self):
        # Most specific first: exact path, then longer prefix, then named methods.
        return (not self.pattern.exact, -len(self.pattern.path), self.methods is None)

    def applies(self, method: str, path: str) -> bool:
        """``method`` in canonical (upper) case, see :func:`canonical_method`."""
        return (self.methods is None or method in self.methods) and self.pattern.matches(path)

    def __str__(self):
        return self.text


def scope_rules(text: str) -> tuple:
    """ini parser of ``scopes``: one :class:`ScopeRule` per line."""
    return tuple(ScopeRule(line) for line in settings.lines(text))
