"""Time-boxed, renewable access tokens for partner applications (OAuth 2.0).

Practice 1 (broken authentication): partners' applications authenticate with short-lived
access tokens, never with passwords. A stolen token expires within minutes and reveals
no password; a stolen refresh token is detected the second time it is used.

The layer is both the *authorization server* and the *resource-server guard*:

* ``POST /oauth/token`` (``token_path``): RFC 6749 §4.4 client credentials grant and §6
  refresh token grant. Clients authenticate with HTTP Basic (``client_secret_basic``) or
  form fields (``client_secret_post``), RFC 6749 §2.3.1. Answers as §5.1 (``access_token``,
  ``token_type``, ``expires_in``, ``refresh_token``, ``scope``; ``Cache-Control: no-store``)
  or §5.2 (``invalid_request``, ``invalid_client``, ``invalid_grant``, ``invalid_scope``,
  ``unsupported_grant_type``). Refresh tokens rotate on every use; presenting a spent one
  revokes its whole family (OAuth 2.0 Security BCP, RFC 9700 §4.14.2).
* ``POST /oauth/revoke`` (``revoke_path``): RFC 7009 token revocation.
* ``POST /oauth/introspect`` (``introspect_path``): RFC 7662 introspection, for clients
  with the ``introspect`` permission (the report collector, other resource servers).
* Every other request outside ``public_paths`` needs ``Authorization: Bearer <token>``
  (RFC 6750 §2.1) with the scopes that ``scopes`` requires for its method and path; the
  app then sees ``REMOTE_USER`` (the user the token was issued for, else the client id),
  ``environ["wsgisec.client"]`` (``id``, ``name``, ``scopes``, ``user``) and
  ``environ["wsgisec.scopes"]`` (a tuple), and no ``Authorization`` header.

Secrets at rest: client secrets are argon2id hashes (:mod:`wsgisec.token_auth.clients`); tokens are
256-bit random strings kept only as SHA-256 digests in the ``tokens`` namespace
(:mod:`wsgisec.credentials`), tagged ``client:<id>``, ``family:<id>`` (and
``user:<name>``), so disabling a client or revoking a family is one store call. An API
request costs one digest and one store read: no password hashing per request.

ini::

    [filter:token_auth]
    use = egg:wsgisec#token_auth
    get store = wsgisec_store
    access_token_ttl = 15m
    refresh_token_ttl = 30d
    public_paths = /healthz =/
    scopes =
        GET /api/items items:read
        POST /api/items items:write

Python::

    app = TokenAuth(app, store="sqlite:////srv/wsgisec.sqlite",
                    public_paths=("/healthz",), scopes=("GET /api/items items:read",))
    # A token for a partner client acting for one of the app's users (e.g. from the
    # legacy app, after the user agreed); the response is RFC 6749 §5.1's JSON object:
    tokens = environ["wsgisec.token_auth"].issue_token("c_0123456789abcdef", user="alice")

Settings (ini name, default):

``store`` (``wsgisec.sqlite`` beside the ini file)
    Where clients, token digests, failure counters and events live. Share it with the
    https layer so a token seen over plain HTTP there is revoked here too.
``access_token_ttl`` (15m)
    Lifetime of an access token (``expires_in``).
``refresh_token_ttl`` (30d)
    Lifetime of a refresh token; each use replaces it with a new one.
``public_paths`` (none)
    Path prefixes served without a token (``/healthz`` also covers ``/healthz/db``);
    ``=/path`` matches that exact path only, so ``=/`` makes just the index public.
``scopes`` (none)
    One rule per line: ``METHODS PATH SCOPE [SCOPE...]``. ``METHODS`` is ``GET``,
    ``GET,HEAD``, or ``*``; ``PATH`` a prefix (or ``=/exact``); every listed scope is
    required. The most specific path wins, then a named method over ``*``; ``HEAD``
    follows ``GET`` rules. A request no rule covers needs a valid token only.
``allow_query_token`` (false)
    Accept ``?access_token=`` (RFC 6750 §2.3). Off: URLs end up in logs, browser history
    and ``Referer`` headers, so such requests get 400.
``pass_authorization`` (false)
    Leave the ``Authorization`` header (and a query token) in the app's environ.
``realm`` (api)
    The realm of ``WWW-Authenticate`` challenges.
``token_path`` (/oauth/token), ``revoke_path`` (/oauth/revoke), ``introspect_path`` (/oauth/introspect)
    Where the endpoints are.
``max_failed_auth`` (10)
    Failed client authentications, per client id and per remote address, after which
    the token endpoints answer 429 with ``Retry-After`` for ``failed_auth_window``.
``failed_auth_window`` (15m)
    The window over which failures are counted, and how long a lock-out lasts.
``require_tls`` (true)
    Refuse token and API requests that did not arrive over TLS (as decided by the https
    layer or the server); a token presented that way is revoked at once.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
import secrets
import time
from urllib.parse import parse_qsl, unquote_plus

from .. import events, pipeline, settings
from .clients import (CLIENTS, DEFAULT_CONTEXT, INTROSPECT, ClientRegistry, client_tag,
                      valid_client_id, valid_scope)
from ..credentials import TOKENS, bearer_token, digest, new_token
from ..pipeline import Layer
from ..responses import problem
from ..settings import ConfigurationError
from ..store import StoreUnavailable, coerce as coerce_store
from ..wsgi import BodyTooLarge, is_secure, read_body

__all__ = ["TokenAuth", "filter_factory", "SETTINGS", "ScopeRule", "issue_token", "TokenError"]

# Event kinds (one per decision; never a token, secret or query string in them).
TOKEN_MISSING = "token-missing"
TOKEN_INVALID = "token-invalid"
TOKEN_IN_QUERY = "token-in-query"
INSUFFICIENT_SCOPE = "insufficient-scope"
CLIENT_AUTH_FAILED = "client-auth-failed"
CLIENT_AUTH_THROTTLED = "client-auth-throttled"
CLIENT_DISABLED = "client-disabled"
REFRESH_TOKEN_REUSE = "refresh-token-reuse"
TOKEN_REVOKED = "token-revoked"
OAUTH_REQUEST_INVALID = "oauth-request-invalid"
CREDENTIALS_OVER_PLAINTEXT = "credentials-over-plaintext"  # the https layer's names too
PLAINTEXT_REFUSED = "plaintext-refused"
PATH_NOT_NORMALIZED = "path-not-normalized"
STORE_UNAVAILABLE = "store-unavailable"

#: Spent refresh tokens (digest -> family), kept until they would have expired, so a
#: second use is recognised as theft (reuse detection) rather than as an unknown token.
SPENT = "token_auth.spent"
#: Lock-outs after too many failed client authentications ("client:<id>", "addr:<ip>").
LOCKS = "token_auth.locks"
FAILURES = "token_auth.failures"

_log = events.logger_for("token_auth")

MAX_FORM_SIZE = 16 * 1024  # token/revoke/introspect requests are a few hundred bytes
_FORM_TYPE = "application/x-www-form-urlencoded"
_JSON = "application/json;charset=UTF-8"
# RFC 7230 token chars: what an HTTP method name may contain.
_METHOD = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Z-]+$")


def _realm(text: str) -> str:
    value = text.strip()
    # It goes inside a quoted-string (RFC 7235 §2.2): no quotes, backslashes or controls.
    if not value or any(ch in value for ch in '"\\') or any(ord(ch) < 0x20 or ord(ch) == 0x7f for ch in value):
        raise ValueError("a realm name without quotes, backslashes or control characters")
    return value


def _endpoint_path(text: str) -> str:
    value = text.strip()
    if not value.startswith("/") or len(value.split()) != 1:
        raise ValueError("one URL path starting with /")
    return value


class _PathPattern:
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


def _public_paths(text: str) -> tuple:
    return tuple(_PathPattern(word) for word in settings.words(text))


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
            if not names or not all(_METHOD.match(name) for name in names):
                raise ValueError(f"upper-case HTTP methods or * ({methods!r} in {line!r})")
            self.methods = frozenset(names) | ({"HEAD"} if "GET" in names else frozenset())
        self.pattern = _PathPattern(path)
        for scope in scopes:
            if not valid_scope(scope):
                raise ValueError(f"scope names as RFC 6749 §3.3 allows ({scope!r} in {line!r})")
        self.scopes = tuple(scopes)
        self.text = " ".join(parts)

    def sort_key(self):
        # Most specific first: exact path, then longer prefix, then named methods.
        return (not self.pattern.exact, -len(self.pattern.path), self.methods is None)

    def applies(self, method: str, path: str) -> bool:
        return (self.methods is None or method in self.methods) and self.pattern.matches(path)

    def __str__(self):
        return self.text


def _scope_rules(text: str) -> tuple:
    return tuple(ScopeRule(line) for line in settings.lines(text))


SETTINGS = {
    "store": (settings.optional(settings.store_url), None),
    "access_token_ttl": (settings.duration, "15m"),
    "refresh_token_ttl": (settings.duration, "30d"),
    "public_paths": (_public_paths, ""),
    "scopes": (_scope_rules, ""),
    "allow_query_token": (settings.boolean, "false"),
    "pass_authorization": (settings.boolean, "false"),
    "realm": (_realm, "api"),
    "token_path": (_endpoint_path, "/oauth/token"),
    "revoke_path": (_endpoint_path, "/oauth/revoke"),
    "introspect_path": (_endpoint_path, "/oauth/introspect"),
    "max_failed_auth": (settings.integer(1, 1000000), "10"),
    "failed_auth_window": (settings.duration, "15m"),
    "require_tls": (settings.boolean, "true"),
}


class TokenError(Exception):
    """An OAuth error answer (RFC 6749 §5.2): carried to one place that logs and answers."""

    def __init__(self, status: int, error: str, description: str, *, kind: str | None = None,
                 severity: str = "warning", headers=(), detail: dict | None = None,
                 recorded: bool = False):
        super().__init__(error)
        #: True when the event was already emitted (the answer reuses its incident id).
        self.recorded = recorded
        self.status = status
        self.error = error
        self.description = description
        self.kind = kind
        self.severity = severity
        self.headers = list(headers)
        self.detail = detail


# -- issuing tokens (shared by the endpoint, the Python call and the CLI) ---------------

def issue_token(store, client_id: str, *, user: str | None = None, scopes=None,
                access_token_ttl: int = 900, refresh_token_ttl: int = 30 * 86400,
                clock=time.time) -> dict:
    """Issue an access + refresh token pair for a client (optionally acting for ``user``).

    Returns the RFC 6749 §5.1 response object. Raises :class:`LookupError` for an
    unknown or disabled client and :class:`ValueError` for scopes it was not granted.
    The tokens are shown here only; the store keeps their SHA-256 digests.
    """
    client = store.get(CLIENTS, client_id) if valid_client_id(client_id) else None
    if client is None or client.get("disabled"):
        raise LookupError(f"no enabled client {client_id!r}")
    allowed = set(client.get("scopes", ()))
    if isinstance(scopes, str):
        scopes = scopes.split()
    wanted = allowed if scopes is None else set(scopes)
    if not wanted <= allowed:
        raise ValueError("scopes not granted to this client: " + " ".join(sorted(wanted - allowed)))
    if user is not None and (not isinstance(user, str) or not user or len(user) > 256):
        raise ValueError("user must be a non-empty string of at most 256 characters")
    return _issue_pair(store, client, sorted(wanted), user, secrets.token_hex(16),
                       access_token_ttl, refresh_token_ttl, clock())


def _issue_pair(store, client, scopes, user, family, access_ttl, refresh_ttl, now) -> dict:
    access, refresh = new_token(), new_token()
    base = {"client_id": client["id"], "client_name": client.get("name", ""), "scopes": list(scopes),
            "user": user, "family": family, "iat": int(now)}
    tags = [client_tag(client["id"]), f"family:{family}"] + ([f"user:{user}"] if user else [])
    store.put(TOKENS, digest(access), dict(base, type="access", exp=now + access_ttl),
              ttl=access_ttl, tags=tags)
    store.put(TOKENS, digest(refresh), dict(base, type="refresh", exp=now + refresh_ttl),
              ttl=refresh_ttl, tags=tags)
    return {"access_token": access, "token_type": "Bearer", "expires_in": int(access_ttl),
            "refresh_token": refresh, "scope": " ".join(scopes)}


def _json_app(status: int, document, headers=()):
    body = b"" if document is None else json.dumps(document).encode("utf-8")
    response_headers = [("Content-Type", _JSON), ("Content-Length", str(len(body))),
                        # RFC 6749 §5.1: token responses must not be cached.
                        ("Cache-Control", "no-store"), ("Pragma", "no-cache"),
                        ("X-Content-Type-Options", "nosniff")]
    response_headers.extend(headers)
    status_line = f"{status} {_REASONS.get(status, 'Error')}"

    def app(environ, start_response):
        start_response(status_line, list(response_headers))
        return [b""] if environ.get("REQUEST_METHOD") == "HEAD" else [body]

    return app


_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
            405: "Method Not Allowed", 413: "Content Too Large", 429: "Too Many Requests",
            503: "Service Unavailable"}


def _ambiguous(path: str) -> bool:
    """True for paths with dot segments, which the app might resolve differently from us.

    ``/healthz/../api/items`` must not pass as public (prefix ``/healthz``) and then be
    routed to ``/api/items``; clients remove dot segments (RFC 3986 §5.2.4), attackers don't.
    """
    return "/." in path and ("/./" in path or "/../" in path or path.endswith(("/.", "/..")))


class TokenAuth(Layer):
    """OAuth 2.0 token endpoint and bearer-token guard (see the module docstring)."""

    wsgisec_layer = "token_auth"

    def __init__(self, app, *, store=None, access_token_ttl=900, refresh_token_ttl=30 * 86400,
                 public_paths=(), scopes=(), allow_query_token=False, pass_authorization=False,
                 realm="api", token_path="/oauth/token", revoke_path="/oauth/revoke",
                 introspect_path="/oauth/introspect", max_failed_auth=10, failed_auth_window=900,
                 require_tls=True, crypt_context=DEFAULT_CONTEXT, clock=time.time):
        self.app = app
        if store is None:
            raise ConfigurationError("token_auth needs a store (store = sqlite:////path or redis://...)")
        if access_token_ttl <= 0 or refresh_token_ttl <= 0:
            raise ConfigurationError("access_token_ttl and refresh_token_ttl must be positive")
        if refresh_token_ttl < access_token_ttl:
            raise ConfigurationError("refresh_token_ttl must not be shorter than access_token_ttl")
        if failed_auth_window <= 0:
            raise ConfigurationError("failed_auth_window must be positive")
        endpoints = (token_path, revoke_path, introspect_path)
        if len(set(endpoints)) != 3:
            raise ConfigurationError("token_path, revoke_path and introspect_path must differ")
        self.store = coerce_store(store)
        self.access_token_ttl = int(access_token_ttl)
        self.refresh_token_ttl = int(refresh_token_ttl)
        if isinstance(public_paths, str):
            public_paths = _public_paths(public_paths)
        self.public_paths = tuple(p if isinstance(p, _PathPattern) else _PathPattern(p) for p in public_paths)
        if isinstance(scopes, str):
            scopes = _scope_rules(scopes)
        rules = tuple(rule if isinstance(rule, ScopeRule) else ScopeRule(rule) for rule in scopes)
        self.scope_rules = tuple(sorted(rules, key=ScopeRule.sort_key))
        self.allow_query_token = allow_query_token
        self.pass_authorization = pass_authorization
        self.realm = _realm(realm)
        self.max_failed_auth = int(max_failed_auth)
        self.failed_auth_window = int(failed_auth_window)
        self.require_tls = require_tls
        self.clock = clock
        self.registry = ClientRegistry(self.store, context=crypt_context, clock=clock)
        self._endpoints = {token_path: self._token_endpoint, revoke_path: self._revoke_endpoint,
                           introspect_path: self._introspect_endpoint}
        self._challenge = f'Bearer realm="{self.realm}"'
        self._basic_challenge = ("WWW-Authenticate", f'Basic realm="{self.realm}"')
        self.settings = {
            "store": getattr(self.store, "url", None), "access_token_ttl": self.access_token_ttl,
            "refresh_token_ttl": self.refresh_token_ttl,
            "public_paths": [str(p) for p in self.public_paths],
            "scopes": [str(rule) for rule in self.scope_rules],
            "allow_query_token": allow_query_token, "pass_authorization": pass_authorization,
            "realm": self.realm, "token_path": token_path, "revoke_path": revoke_path,
            "introspect_path": introspect_path, "max_failed_auth": self.max_failed_auth,
            "failed_auth_window": self.failed_auth_window, "require_tls": require_tls,
        }

    def warnings(self):
        found = []
        if not self.require_tls:
            found.append("require_tls is off: tokens and client secrets may cross the wire in clear text")
        if self.allow_query_token:
            found.append("allow_query_token is on: tokens in URLs end up in logs and Referer headers")
        if self.pass_authorization:
            found.append("pass_authorization is on: the app sees (and may log) bearer tokens")
        if self.access_token_ttl > 3600:
            found.append(f"access_token_ttl is long ({self.access_token_ttl}s); a stolen token lives that long")
        if not self.scope_rules:
            found.append("no scopes rules: any valid token may call any protected path")
        return found

    # -- the Python call for user-bound tokens -----------------------------------------

    def issue_token(self, client_id: str, user: str | None = None, scopes=None) -> dict:
        """Issue tokens for ``client_id`` acting for ``user`` (the app's own user id).

        The partner application never sees the user's password: the legacy app (or the
        operator, ``wsgisec token issue --client ID --user U``) hands it these tokens, and
        the user id reaches the app as ``REMOTE_USER`` on each API call.
        """
        return issue_token(self.store, client_id, user=user, scopes=scopes,
                           access_token_ttl=self.access_token_ttl,
                           refresh_token_ttl=self.refresh_token_ttl, clock=self.clock)

    def revoke(self, token: str) -> bool:
        """Revoke a token by value (a refresh token takes its whole family with it)."""
        key = digest(token)
        record = self.store.get(TOKENS, key)
        if record is None:
            return False
        if record.get("type") == "refresh":
            return self.store.delete_tagged(TOKENS, f"family:{record['family']}") > 0
        return self.store.delete(TOKENS, key)

    def purge(self) -> int:
        """Drop expired tokens, spent refresh tokens, lock-outs and counters."""
        return self.store.purge()

    # -- requests -------------------------------------------------------------------------

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        # For the legacy app's own pages (public or not): issue_token() for its users.
        environ["wsgisec.token_auth"] = self
        endpoint = self._endpoints.get(path)
        if endpoint is not None:
            return endpoint(environ, start_response)
        if _ambiguous(path):
            incident = events.emit(environ, PATH_NOT_NORMALIZED, "dot segments in the path",
                                   store=self.store, logger=_log)
            return problem(environ, 400, "The request path is not in normal form.",
                           incident=incident)(environ, start_response)
        for pattern in self.public_paths:
            if pattern.matches(path):
                return self.app(environ, start_response)
        try:
            return self._protect(environ, start_response, path)
        except StoreUnavailable as error:
            return self._unavailable(environ, start_response, error)

    def _protect(self, environ, start_response, path):
        auth = environ.get("HTTP_AUTHORIZATION")
        token = bearer_token(environ) if auth else None
        query = environ.get("QUERY_STRING", "")
        # Cheap test first: the hot path has no query token to parse.
        in_query = ([value for key, value in parse_qsl(query, keep_blank_values=True) if key == "access_token"]
                    if "access_token" in query else [])

        if self.require_tls and not is_secure(environ):
            # Whatever credential came with a plain-HTTP request is treated as stolen.
            return self._plaintext(environ, start_response, [token] + in_query if token else in_query)

        if auth and token is None and auth.split(None, 1)[0].lower() == "bearer":
            # RFC 6750 §3.1: a malformed request is invalid_request (400).
            return self._bearer_error(environ, start_response, 400, "invalid_request",
                                      "The Authorization header is malformed.", TOKEN_INVALID,
                                      "malformed bearer credentials")
        from_query = False
        if in_query:
            if not self.allow_query_token:
                # RFC 6750 §2.3 / §5.3: URIs are logged and leaked through Referer.
                return self._bearer_error(environ, start_response, 400, "invalid_request",
                                          "Send the access token in the Authorization header, "
                                          "not in the URL.", TOKEN_IN_QUERY,
                                          "access token in the query string")
            if auth or len(in_query) > 1:
                # RFC 6750 §2: a client must not use more than one method.
                return self._bearer_error(environ, start_response, 400, "invalid_request",
                                          "Send one access token, by one method.", TOKEN_INVALID,
                                          "several access tokens")
            token, from_query = in_query[0], True

        if token is None:
            # RFC 6750 §3.1: no credentials, no error attribute.
            incident = events.emit(environ, TOKEN_MISSING, "no bearer token", severity="info",
                                   store=self.store, logger=_log)
            return problem(environ, 401, "This resource needs an access token.", incident=incident,
                           headers=[("WWW-Authenticate", self._challenge)])(environ, start_response)

        now = self.clock()
        # The store is keyed by SHA-256(token): looking a key up can leak (by timing)
        # only digest prefixes, which do not help anyone find a token (preimage
        # resistance); the token itself is never compared byte by byte.
        record = self.store.get(TOKENS, digest(token))
        if record is None or record.get("type") != "access" or record.get("exp", 0) <= now:
            return self._bearer_error(environ, start_response, 401, "invalid_token",
                                      "The access token is invalid, expired or revoked.",
                                      TOKEN_INVALID, "unknown, expired or revoked token",
                                      severity="info")
        granted = record.get("scopes") or ()
        client = {"id": record["client_id"], "name": record.get("client_name", ""),
                  "scopes": tuple(granted), "user": record.get("user")}
        environ["wsgisec.client"] = client
        needed = self._required_scopes(environ.get("REQUEST_METHOD", "GET"), path)
        if needed and not set(needed) <= set(granted):
            scope = " ".join(needed)
            incident = events.emit(environ, INSUFFICIENT_SCOPE, "token lacks a required scope",
                                   store=self.store, logger=_log, detail={"needed": scope})
            challenge = f'{self._challenge}, error="insufficient_scope", scope="{scope}"'
            return problem(environ, 403, "The access token does not allow this request.",
                           incident=incident, headers=[("WWW-Authenticate", challenge)],
                           extra={"scope": scope})(environ, start_response)

        environ["wsgisec.scopes"] = client["scopes"]
        environ["REMOTE_USER"] = record.get("user") or record["client_id"]
        environ["AUTH_TYPE"] = "Bearer"
        if not self.pass_authorization:
            # The app has no use for the token, and could only log or leak it. A layer
            # that verifies the request as sent (RFC 9421 signatures cover Authorization)
            # finds it under wsgisec.orig_headers, redacted in any repr (like werkzeug's
            # proxy_fix.orig).
            original = environ.pop("HTTP_AUTHORIZATION", None)
            if original is not None:
                environ.setdefault("wsgisec.orig_headers", {})["HTTP_AUTHORIZATION"] = settings.Secret(
                    original, "request")
            if from_query:
                environ["QUERY_STRING"] = "&".join(
                    part for part in query.split("&") if part.split("=", 1)[0] != "access_token")
        return self.app(environ, start_response)

    def _required_scopes(self, method, path):
        for rule in self.scope_rules:
            if rule.applies(method, path):
                return rule.scopes
        return ()

    def _bearer_error(self, environ, start_response, status, error, description, kind, reason,
                      severity="warning"):
        incident = events.emit(environ, kind, reason, severity=severity, store=self.store, logger=_log)
        challenge = f'{self._challenge}, error="{error}", error_description="{description}"'
        return problem(environ, status, description, incident=incident,
                       headers=[("WWW-Authenticate", challenge)],
                       extra={"error": error})(environ, start_response)

    def _plaintext(self, environ, start_response, tokens):
        """A request that did not arrive over TLS: refuse it; revoke the tokens it carried.

        A token that crossed the wire in clear text must be treated as stolen (the https
        layer does the same when it sits in front of us).
        """
        revoked = False
        for token in tokens:
            try:
                revoked = self.revoke(token) or revoked
            except StoreUnavailable as error:
                _log.error("could not revoke a token sent over plain HTTP: %s", error)
        if tokens or environ.get("HTTP_AUTHORIZATION"):
            incident = events.emit(environ, CREDENTIALS_OVER_PLAINTEXT,
                                   "credentials sent over plain HTTP; rotate them", severity="critical",
                                   store=self.store, logger=_log, detail={"token_revoked": revoked})
            return problem(environ, 403, "Credentials must only be sent over HTTPS; the ones in this "
                           "request are no longer valid.", incident=incident)(environ, start_response)
        incident = events.emit(environ, PLAINTEXT_REFUSED, "plain HTTP request refused", severity="info", store=self.store,
                               logger=_log)
        return problem(environ, 403, "This service is only available over HTTPS.",
                       incident=incident)(environ, start_response)

    def _unavailable(self, environ, start_response, error):
        # Fail closed: without the store nobody is let through (DESIGN "Fail closed").
        _log.error("token_auth store unavailable: %s", error)
        incident = events.emit(environ, STORE_UNAVAILABLE, "store unavailable", severity="error",
                               logger=_log)
        return problem(environ, 503, "The service is temporarily unavailable.", incident=incident,
                       headers=[("Retry-After", "5")])(environ, start_response)

    # -- endpoints: shared parts -------------------------------------------------------

    def _endpoint(handler):
        """Run an endpoint handler; turn TokenError and StoreUnavailable into answers."""

        @functools.wraps(handler)
        def run(self, environ, start_response):
            try:
                form = self._read_form(environ)
                status, document, headers = handler(self, environ, form)
            except TokenError as error:
                return self._oauth_error(environ, error)(environ, start_response)
            except StoreUnavailable as error:
                return self._unavailable(environ, start_response, error)
            return _json_app(status, document, headers)(environ, start_response)

        return run

    def _oauth_error(self, environ, error: TokenError):
        document = {"error": error.error, "error_description": error.description}
        headers = list(error.headers)
        # Every refusal is an event; the caller gets its incident id to quote.
        if error.recorded:
            incident = events.incident_id(environ)
        else:
            detail = dict(error.detail or {}, error=error.error)
            incident = events.emit(environ, error.kind or OAUTH_REQUEST_INVALID, error.description,
                                   severity=error.severity if error.kind else "info",
                                   store=self.store, logger=_log, detail=detail)
        document["incident_id"] = incident
        headers.append(("X-Incident-Id", incident))
        return _json_app(error.status, document, headers)

    def _read_form(self, environ) -> dict:
        method = environ.get("REQUEST_METHOD")
        if method != "POST":
            raise TokenError(405, "invalid_request", "Use POST.", headers=[("Allow", "POST")])
        content_type = environ.get("CONTENT_TYPE", "").split(";", 1)[0].strip().lower()
        try:
            body = read_body(environ, MAX_FORM_SIZE)
        except BodyTooLarge:
            raise TokenError(413, "invalid_request", "The request body is too large.",
                             kind=OAUTH_REQUEST_INVALID) from None
        except ValueError:
            raise TokenError(400, "invalid_request", "The Content-Length header is invalid.",
                             kind=OAUTH_REQUEST_INVALID) from None
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body),
                              max_num_fields=20)
        except (UnicodeDecodeError, ValueError):
            raise TokenError(400, "invalid_request", "The request body is not a valid form.",
                             kind=OAUTH_REQUEST_INVALID) from None
        form = dict(pairs)
        # Revoke first, then refuse: a refresh token sent in clear text is as good as stolen.
        if self.require_tls and not is_secure(environ):
            revoked = False
            for name in ("refresh_token", "token"):
                if form.get(name):
                    revoked = self.revoke(form[name]) or revoked
            raise TokenError(400, "invalid_request", "This endpoint is only available over HTTPS; "
                             "credentials sent over plain HTTP must be rotated.",
                             kind=CREDENTIALS_OVER_PLAINTEXT, severity="critical",
                             detail={"token_revoked": revoked})
        if content_type != _FORM_TYPE:
            raise TokenError(400, "invalid_request",
                             "Send the parameters as application/x-www-form-urlencoded.")
        if len(form) != len(pairs):
            # RFC 6749 §3.1: parameters must not be included more than once.
            raise TokenError(400, "invalid_request", "A parameter is repeated.")
        query = environ.get("QUERY_STRING", "")
        if query and any(key in ("client_secret", "refresh_token", "token", "password")
                         for key, _ in parse_qsl(query, keep_blank_values=True)):
            # RFC 6749 §2.3.1: credentials must not be in the request URI (it gets logged).
            raise TokenError(400, "invalid_request", "Credentials must not be sent in the URL.",
                             kind=OAUTH_REQUEST_INVALID)
        return form

    def _authenticate_client(self, environ, form) -> dict:
        """The authenticated client record (RFC 6749 §2.3.1), or a TokenError."""
        header = environ.get("HTTP_AUTHORIZATION", "")
        basic = header[:6].lower() == "basic "
        if basic and ("client_secret" in form):
            # RFC 6749 §2.3: a client must not use more than one authentication method.
            raise TokenError(400, "invalid_request", "Use one client authentication method.")
        if basic:
            try:
                decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError, ValueError):
                decoded = ""
            client_id, sep, secret = decoded.partition(":")
            if not sep:
                raise self._invalid_client("malformed basic credentials", None)
            # RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic encoding.
            client_id, secret = unquote_plus(client_id), unquote_plus(secret)
            if form.get("client_id") not in (None, client_id):
                raise TokenError(400, "invalid_request", "client_id differs from the credentials.")
        elif "client_secret" in form or "client_id" in form:
            client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        else:
            raise TokenError(401, "invalid_client", "Client authentication is required.",
                             kind=CLIENT_AUTH_FAILED, severity="info", headers=[self._basic_challenge])

        shown_id = client_id if valid_client_id(client_id) else "<invalid>"
        self._check_lockout(environ, client_id)
        record = self.registry.authenticate(client_id, secret)
        if record is None:
            self._count_failure(environ, client_id, shown_id)
            raise self._invalid_client("client authentication failed", shown_id)
        if record.get("disabled"):
            raise TokenError(401, "invalid_client", "Client authentication failed.",
                             kind=CLIENT_DISABLED, headers=[self._basic_challenge],
                             detail={"client_id": shown_id})
        environ["wsgisec.client"] = {"id": record["id"], "name": record.get("name", ""),
                                     "scopes": tuple(record.get("scopes", ())), "user": None}
        return record

    def _invalid_client(self, reason, shown_id):
        return TokenError(401, "invalid_client", "Client authentication failed.",
                          kind=CLIENT_AUTH_FAILED, headers=[self._basic_challenge],
                          detail={"claimed_client_id": shown_id, "why": reason})

    def _lock_keys(self, environ, client_id):
        keys = ["addr:" + str(environ.get("REMOTE_ADDR", ""))]
        if valid_client_id(client_id):
            keys.append("client:" + client_id)
        return keys

    def _check_lockout(self, environ, client_id):
        now = self.clock()
        for key in self._lock_keys(environ, client_id):
            lock = self.store.get(LOCKS, key)
            if lock is not None and lock.get("until", 0) > now:
                retry = max(1, int(lock["until"] - now + 0.999))
                raise TokenError(429, "temporarily_unavailable",
                                 "Too many failed authentications; try again later.",
                                 kind=CLIENT_AUTH_THROTTLED, headers=[("Retry-After", str(retry))],
                                 detail={"locked": key.split(":", 1)[0]})

    def _count_failure(self, environ, client_id, shown_id):
        # Counted per client id (guessing one client's secret) and per address (trying
        # many ids): OWASP Authentication cheat sheet, "Protect against automated attacks".
        now = self.clock()
        for key in self._lock_keys(environ, client_id):
            count = self.store.incr(FAILURES, key, self.failed_auth_window)
            if count >= self.max_failed_auth:
                until = now + self.failed_auth_window
                self.store.put(LOCKS, key, {"until": until}, ttl=self.failed_auth_window)
                events.emit(environ, CLIENT_AUTH_THROTTLED, "too many failed client authentications",
                            severity="error", store=self.store, logger=_log,
                            detail={"locked": key.split(":", 1)[0], "failures": count,
                                    "claimed_client_id": shown_id})

    # -- POST /oauth/token -------------------------------------------------------------

    @_endpoint
    def _token_endpoint(self, environ, form):
        client = self._authenticate_client(environ, form)
        grant_type = form.get("grant_type")
        if not grant_type:
            raise TokenError(400, "invalid_request", "grant_type is missing.")
        if grant_type == "client_credentials":
            scopes = self._requested_scopes(form, set(client.get("scopes", ())))
            family = secrets.token_hex(16)
            return 200, self._issue(client, scopes, None, family), ()
        if grant_type == "refresh_token":
            return 200, self._refresh(environ, client, form), ()
        raise TokenError(400, "unsupported_grant_type",
                         "Supported grant types: client_credentials, refresh_token.")

    def _requested_scopes(self, form, allowed: set) -> list:
        text = form.get("scope")
        if text is None:
            return sorted(allowed)  # RFC 6749 §3.3: the default is what the client may have
        requested = text.split(" ")
        if not text or not all(valid_scope(scope) for scope in requested):
            raise TokenError(400, "invalid_scope", "The scope parameter is malformed.")
        if not set(requested) <= allowed:
            raise TokenError(400, "invalid_scope", "A requested scope is not granted to this client.",
                             kind=OAUTH_REQUEST_INVALID, severity="info")
        return sorted(set(requested))

    def _issue(self, client, scopes, user, family):
        return _issue_pair(self.store, client, scopes, user, family, self.access_token_ttl,
                           self.refresh_token_ttl, self.clock())

    def _refresh(self, environ, client, form):
        token = form.get("refresh_token")
        if not token:
            raise TokenError(400, "invalid_request", "refresh_token is missing.")
        key = digest(token)
        record = self.store.get(TOKENS, key)
        now = self.clock()
        if record is None or record.get("type") != "refresh" or record.get("exp", 0) <= now:
            spent = self.store.get(SPENT, key)
            if spent is not None:
                self._reuse(environ, spent["family"], "a spent refresh token was presented again")
            raise TokenError(400, "invalid_grant", "The refresh token is invalid, expired or revoked.",
                             kind=TOKEN_INVALID, severity="info", recorded=spent is not None)
        if record["client_id"] != client["id"]:
            # Another client holds this client's refresh token: it leaked (RFC 6749 §10.4).
            self._reuse(environ, record["family"], "a refresh token was presented by another client")
            raise TokenError(400, "invalid_grant", "The refresh token is invalid, expired or revoked.",
                             recorded=True)
        # Single use, atomically across processes: only the caller whose add() wins may
        # rotate; a second, concurrent use is treated as reuse (RFC 9700 §4.14.2).
        remaining = max(1.0, record["exp"] - now)
        if not self.store.add(SPENT, key, {"family": record["family"], "client_id": client["id"]},
                              ttl=remaining):
            self._reuse(environ, record["family"], "a refresh token was used twice")
            raise TokenError(400, "invalid_grant", "The refresh token is invalid, expired or revoked.",
                             recorded=True)
        self.store.delete(TOKENS, key)
        # RFC 6749 §6: a narrower scope may be asked for, never a wider one; and scopes the
        # operator has since taken from the client are not renewed.
        allowed = set(record.get("scopes", ())) & set(client.get("scopes", ()))
        scopes = self._requested_scopes(form, allowed)
        return self._issue(client, scopes, record.get("user"), record["family"])

    def _reuse(self, environ, family, reason):
        revoked = self.store.delete_tagged(TOKENS, f"family:{family}")
        events.emit(environ, REFRESH_TOKEN_REUSE, reason, severity="critical", store=self.store,
                    logger=_log, detail={"family": family, "tokens_revoked": revoked})

    # -- POST /oauth/revoke (RFC 7009) -------------------------------------------------

    @_endpoint
    def _revoke_endpoint(self, environ, form):
        client = self._authenticate_client(environ, form)
        token = form.get("token")
        if not token:
            raise TokenError(400, "invalid_request", "token is missing.")
        # token_type_hint only speeds up a lookup (RFC 7009 §2.1); one namespace holds both.
        key = digest(token)
        record = self.store.get(TOKENS, key)
        if record is None:
            return 200, None, ()  # RFC 7009 §2.2: an invalid token is not an error
        if record.get("client_id") != client["id"]:
            # RFC 7009 §2.1: only the client the token was issued to may revoke it.
            raise TokenError(400, "unauthorized_client", "This token was not issued to this client.",
                             kind=OAUTH_REQUEST_INVALID)
        if record.get("type") == "refresh":
            # RFC 7009 §2.1: revoking a refresh token also revokes the access tokens of its grant.
            count = self.store.delete_tagged(TOKENS, f"family:{record['family']}")
        else:
            count = int(self.store.delete(TOKENS, key))
        events.emit(environ, TOKEN_REVOKED, "revoked by its client", severity="info", store=self.store,
                    logger=_log, detail={"type": record.get("type"), "tokens_revoked": count})
        return 200, None, ()

    # -- POST /oauth/introspect (RFC 7662) ---------------------------------------------

    @_endpoint
    def _introspect_endpoint(self, environ, form):
        client = self._authenticate_client(environ, form)
        if INTROSPECT not in client.get("permissions", ()):
            # RFC 7662 §4: the endpoint must not tell just anyone about tokens.
            raise TokenError(403, "unauthorized_client", "This client may not introspect tokens.",
                             kind=OAUTH_REQUEST_INVALID)
        token = form.get("token")
        if not token:
            raise TokenError(400, "invalid_request", "token is missing.")
        record = self.store.get(TOKENS, digest(token))
        if (record is None or record.get("type") not in ("access", "refresh")
                or record.get("exp", 0) <= self.clock()):
            return 200, {"active": False}, ()  # RFC 7662 §2.2: nothing more about it
        document = {"active": True, "scope": " ".join(record.get("scopes", ())),
                    "client_id": record["client_id"], "exp": int(record["exp"]),
                    "iat": int(record.get("iat", 0)), "sub": record.get("user") or record["client_id"]}
        if record.get("type") == "access":
            document["token_type"] = "Bearer"
        if record.get("user"):
            document["username"] = record["user"]
        return 200, document, ()

    del _endpoint


def filter_factory(global_conf, **local_conf):
    """PasteDeploy ``egg:wsgisec#token_auth``."""
    kw = settings.parse("token_auth", SETTINGS, local_conf, global_conf)
    return pipeline.layer_factory("token_auth", TokenAuth, kw, global_conf)
