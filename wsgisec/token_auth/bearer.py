"""token_auth's resource-server guard: a bearer token and its scopes on every protected request.

RFC 6750: the token comes in ``Authorization: Bearer`` (§2.1), or, only when
``allow_query_token`` is on, as one ``access_token`` query parameter (§2.3); a malformed or
second credential is ``invalid_request`` (400), an unknown, expired or revoked one
``invalid_token`` (401), a token without the scope the first matching rule needs
``insufficient_scope`` (403), each with its ``WWW-Authenticate`` challenge (§3). Tokens are
looked up by SHA-256 digest, never compared byte by byte. A passing request reaches the
app with ``REMOTE_USER``, ``wsgisec.client`` and ``wsgisec.scopes``, and without the token
(unless ``pass_authorization``).
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from .. import events, settings
from ..credentials import TOKENS, bearer_token, digest
from ..responses import problem
from ..wsgi import is_secure
from .refusals import INSUFFICIENT_SCOPE, TOKEN_IN_QUERY, TOKEN_INVALID, TOKEN_MISSING, plaintext
from .scopes import canonical_method

__all__ = ["BearerGuard"]

_log = events.logger_for("token_auth")


class BearerGuard:
    """The bearer-token check of one :class:`~wsgisec.token_auth.TokenAuth` layer (its settings)."""

    def __init__(self, layer):
        self.layer = layer
        self.store = layer.store
        self._challenge = f'Bearer realm="{layer.realm}"'

    def __call__(self, environ, start_response, path):
        """None when the request carries a valid bearer token with the scopes its rule
        needs (the environ then names the client); else the refusal to return.

        The layer calls its own ``app`` after this: the reports layer runs shallow copies
        of it with another ``app`` (``Reports._auth_chain``), so the guard never holds one.
        """
        layer = self.layer
        auth = environ.get("HTTP_AUTHORIZATION")
        token = bearer_token(environ) if auth else None
        query = environ.get("QUERY_STRING", "")
        # Cheap test first: the hot path has no query token to parse.
        in_query = ([value for key, value in parse_qsl(query, keep_blank_values=True) if key == "access_token"]
                    if "access_token" in query else [])

        if layer.require_tls and not is_secure(environ):
            # Whatever credential came with a plain-HTTP request is treated as stolen.
            return plaintext(environ, start_response, self.store)

        if auth and token is None and auth.split(None, 1)[0].lower() == "bearer":
            # RFC 6750 §3.1: a malformed request is invalid_request (400).
            return self._bearer_error(environ, start_response, 400, "invalid_request",
                                      "The Authorization header is malformed.", TOKEN_INVALID,
                                      "malformed bearer credentials")
        from_query = False
        if in_query:
            if not layer.allow_query_token:
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

        now = layer.clock()
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
        # One canonical form: a server may pass "get" as sent (wsgiref does), and the app
        # (werkzeug, WebOb) upper-cases it, so the scope rule must too.
        needed = self._required_scopes(canonical_method(environ), path)
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
        if not layer.pass_authorization:
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
        return None

    def _required_scopes(self, method, path):
        for rule in self.layer.scope_rules:
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
