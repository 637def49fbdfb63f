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

Modules: this one holds the layer and ``filter_factory``; :mod:`~wsgisec.token_auth.bearer`
the resource-server guard (bearer tokens and scope rules on every other request);
:mod:`~wsgisec.token_auth.endpoints` the OAuth endpoints and token issuing;
:mod:`~wsgisec.token_auth.clients` the client registry and client authentication with
lock-out; :mod:`~wsgisec.token_auth.hashing` the bound on concurrent secret checks;
:mod:`~wsgisec.token_auth.scopes` methods, paths and scope rules;
:mod:`~wsgisec.token_auth.refusals` event kinds, store namespaces and the refusals the
guard and the endpoints share;
:mod:`~wsgisec.token_auth.cli` the operator verbs.

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
    Failed client authentications, per remote address and per (client id, remote
    address), after which the token and introspection endpoints answer 429 with
    ``Retry-After`` for ``failed_auth_window``. Never per client id alone (ids are not
    secret); revocation (RFC 7009) still works for a client that authenticates.
``failed_auth_window`` (15m)
    The window over which failures are counted, and how long a lock-out lasts.
``max_concurrent_hashes`` (2)
    Client-secret verifications (argon2id, ~64 MiB each) that may run at once in one
    process, so a flood of bad credentials from many addresses cannot take the CPU,
    memory and threads the API needs. Per process: W workers allow W x this many. Keep
    it below the server's threads (waitress: 4). The checks run at lowered CPU priority.
``hash_wait`` (10ms)
    How long a token, revocation or introspection request waits for a free hashing
    slot before it is answered 503 (``temporarily_unavailable``, ``Retry-After``) and a
    ``hashing-busy`` event. Short on purpose: a waiting request holds a server thread,
    and measured under a flood (benchmarks/README.md) a 250ms wait left the API waiting
    behind the waiters; a check takes longer than any useful wait anyway.
``failed_hash_budget`` (12/1m)
    Client-secret checks that may *fail* per window in one process (a token bucket that
    allows the count at once): a check takes one when it starts and gives it back when
    the secret was right, so only bad credentials spend it. Once it is spent, token,
    revocation and introspection requests that need a check get 503 with ``Retry-After``
    at once, until it refills. This bounds the CPU a flood of bad credentials can take,
    from however many addresses, to the budget times one check (~190 ms of CPU for the
    default argon2id on the machine of benchmarks/README.md), while partners that know
    their secret are not counted: a check from an address that authenticated that client
    before (kept 30 days in the store) or of a remembered secret (below) never spends it.
    The default's burst (12) is above ``max_failed_auth`` (10): a few failures (a partner
    with a stale secret, a probe from ten addresses) never make a partner wait, while a
    flood is held to one check every 5 seconds.
``verified_secret_ttl`` (1h)
    How long this process remembers a secret it verified (an HMAC of it under a
    per-process random key, in memory; never stored), counted from its last use: a
    partner renewing its token with the same secret needs no argon2 check and is not
    stopped by the bounds above during a flood. A rotated-out or upgraded hash, or a
    disabled client, takes effect at once in every process. ``0`` checks every request.
``require_tls`` (true)
    Refuse (403, never a redirect) token, API and public-path requests that did not
    arrive over TLS (as decided by the https layer or the server) when they carry a
    credential, and every token and API request; tokens presented that way are revoked
    at once and one critical ``credentials-over-plaintext`` event is emitted
    (:func:`wsgisec.credentials.plaintext_refusal`, the rule the https layer applies too).
"""

from __future__ import annotations

import time

from .. import events, settings
from ..credentials import (CREDENTIALS_OVER_PLAINTEXT, TOKENS, bearer_token, digest,  # noqa: F401
                           plaintext_refusal, revoke_token)
from ..layer import Layer, layer_factory
from ..responses import problem
from ..settings import ConfigurationError
from ..store import StoreUnavailable, coerce as coerce_store
from ..wsgi import is_secure
from .bearer import BearerGuard
from .clients import CLIENTS, DEFAULT_CONTEXT, ClientAuthenticator, ClientRegistry  # noqa: F401
from .endpoints import MAX_FORM_SIZE, OAuthEndpoints, issue_token  # noqa: F401
from .hashing import FailureBudget, HashingBusy, HashSlots  # noqa: F401
# Event kinds and store namespaces, importable from here as before the split.
from .refusals import (CLIENT_AUTH_FAILED, CLIENT_AUTH_THROTTLED, CLIENT_DISABLED, FAILURES,  # noqa: F401
                       HASHING_BUSY,
                       INSUFFICIENT_SCOPE, LOCKS, METHOD_INVALID, OAUTH_REQUEST_INVALID,
                       PATH_NOT_NORMALIZED, PLAINTEXT_REFUSED, REFRESH_TOKEN_REUSE, SPENT,
                       STORE_UNAVAILABLE, TOKEN_IN_QUERY, TOKEN_INVALID, TOKEN_MISSING, TOKEN_REVOKED,
                       TokenError, plaintext, unavailable)
from .scopes import (PathPattern, ScopeRule, ambiguous, canonical_method, endpoint_path,  # noqa: F401
                     public_paths as _public_paths, realm as _realm, scope_rules as _scope_rules,
                     valid_request_method)
from .verified import VerifiedSecrets

__all__ = ["TokenAuth", "filter_factory", "SETTINGS", "ScopeRule", "issue_token", "TokenError"]

_log = events.logger_for("token_auth")

SETTINGS = {
    "store": (settings.optional(settings.store_url), None),
    "access_token_ttl": (settings.duration, "15m"),
    "refresh_token_ttl": (settings.duration, "30d"),
    "public_paths": (_public_paths, ""),
    "scopes": (_scope_rules, ""),
    "allow_query_token": (settings.boolean, "false"),
    "pass_authorization": (settings.boolean, "false"),
    "realm": (_realm, "api"),
    "token_path": (endpoint_path, "/oauth/token"),
    "revoke_path": (endpoint_path, "/oauth/revoke"),
    "introspect_path": (endpoint_path, "/oauth/introspect"),
    "max_failed_auth": (settings.integer(1, 1000000), "10"),
    "failed_auth_window": (settings.duration, "15m"),
    "require_tls": (settings.boolean, "true"),
    "max_concurrent_hashes": (settings.integer(1, 1000), "2"),
    "hash_wait": (settings.store_timeout, "10ms"),
    "failed_hash_budget": (settings.limit, "12/1m"),
    "verified_secret_ttl": (settings.duration, "1h"),
}


class TokenAuth(Layer):
    """OAuth 2.0 token endpoint and bearer-token guard (see the module docstring)."""

    wsgisec_layer = "token_auth"

    def __init__(self, app, *, store=None, access_token_ttl=900, refresh_token_ttl=30 * 86400,
                 public_paths=(), scopes=(), allow_query_token=False, pass_authorization=False,
                 realm="api", token_path="/oauth/token", revoke_path="/oauth/revoke",
                 introspect_path="/oauth/introspect", max_failed_auth=10, failed_auth_window=900,
                 require_tls=True, max_concurrent_hashes=2, hash_wait=0.01, failed_hash_budget="12/1m",
                 verified_secret_ttl=3600, crypt_context=DEFAULT_CONTEXT, clock=time.time):
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
        self.public_paths = tuple(p if isinstance(p, PathPattern) else PathPattern(p) for p in public_paths)
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
        self.token_path, self.revoke_path, self.introspect_path = endpoints
        if int(max_concurrent_hashes) < 1 or not 0 < hash_wait <= 60:
            raise ConfigurationError("max_concurrent_hashes must be at least 1 and hash_wait in (0, 60s]")
        if isinstance(failed_hash_budget, str):
            failed_hash_budget = settings.limit(failed_hash_budget)
        if failed_hash_budget.count < 1:
            raise ConfigurationError("failed_hash_budget must allow at least one failed check per window")
        if verified_secret_ttl < 0:
            raise ConfigurationError("verified_secret_ttl must not be negative")
        self.hash_slots = HashSlots(int(max_concurrent_hashes), hash_wait,
                                    FailureBudget(failed_hash_budget.count, failed_hash_budget.window, clock))
        self.registry = ClientRegistry(self.store, context=crypt_context, clock=clock,
                                       hash_slots=self.hash_slots,
                                       verified=VerifiedSecrets(verified_secret_ttl))
        self.authenticator = ClientAuthenticator(
            self.registry, store=self.store, max_failed=self.max_failed_auth,
            window=self.failed_auth_window, clock=clock,
            challenge=("WWW-Authenticate", f'Basic realm="{self.realm}"'))
        self.endpoints = OAuthEndpoints(self)
        self.guard = BearerGuard(self)
        self.settings = {
            "store": getattr(self.store, "url", None), "access_token_ttl": self.access_token_ttl,
            "refresh_token_ttl": self.refresh_token_ttl,
            "public_paths": [str(p) for p in self.public_paths],
            "scopes": [str(rule) for rule in self.scope_rules],
            "allow_query_token": allow_query_token, "pass_authorization": pass_authorization,
            "realm": self.realm, "token_path": token_path, "revoke_path": revoke_path,
            "introspect_path": introspect_path, "max_failed_auth": self.max_failed_auth,
            "failed_auth_window": self.failed_auth_window, "require_tls": require_tls,
            "max_concurrent_hashes": self.hash_slots.limit, "hash_wait": self.hash_slots.wait,
            "failed_hash_budget": str(failed_hash_budget), "verified_secret_ttl": verified_secret_ttl,
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
        return revoke_token(self.store, token)

    def purge(self) -> int:
        """Drop expired tokens, spent refresh tokens, lock-outs and counters."""
        return self.store.purge()

    # -- requests -------------------------------------------------------------------------

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if not valid_request_method(environ.get("REQUEST_METHOD", "")):
            # Not an RFC 9110 token: no rule can be said to cover it, so nothing passes.
            incident = events.emit(environ, METHOD_INVALID, "request method is not an HTTP token",
                                   store=self.store, logger=_log)
            return problem(environ, 400, "The request method is not valid.",
                           incident=incident)(environ, start_response)
        # For the legacy app's own pages (public or not): issue_token() for its users.
        environ["wsgisec.token_auth"] = self
        if path in self.endpoints.handlers:
            return self.endpoints(environ, start_response)
        if ambiguous(path):
            incident = events.emit(environ, PATH_NOT_NORMALIZED, "dot segments in the path",
                                   store=self.store, logger=_log)
            return problem(environ, 400, "The request path is not in normal form.",
                           incident=incident)(environ, start_response)
        for pattern in self.public_paths:
            if pattern.matches(path):
                if self.require_tls and not is_secure(environ):
                    # Public, but a credential sent to it in clear is as good as stolen.
                    refusal = plaintext_refusal(environ, store=self.store, logger=_log)
                    if refusal is not None:
                        return refusal(environ, start_response)
                return self.app(environ, start_response)
        try:
            refusal = self.guard(environ, start_response, path)
            return refusal if refusal is not None else self.app(environ, start_response)
        except StoreUnavailable as error:
            return unavailable(environ, start_response, error)


def filter_factory(global_conf, **local_conf):
    """PasteDeploy ``egg:wsgisec#token_auth``."""
    kw = settings.parse("token_auth", SETTINGS, local_conf, global_conf)
    return layer_factory("token_auth", TokenAuth, kw, global_conf)
