"""token_auth's authorization-server half: issuing tokens and the three OAuth endpoints.

* ``POST /oauth/token``: RFC 6749 §4.4 client credentials and §6 refresh token grants.
  Refresh tokens rotate on every use; presenting a spent one revokes its whole family
  (OAuth 2.0 Security BCP, RFC 9700 §4.14.2).
* ``POST /oauth/revoke``: RFC 7009 token revocation (works even while the caller's address
  is locked out, once its secret checks out).
* ``POST /oauth/introspect``: RFC 7662, for clients with the ``introspect`` permission.

Every refusal is one :class:`~wsgisec.token_auth.refusals.TokenError` carried to one place
(:meth:`OAuthEndpoints._oauth_error`) that emits the event and answers as RFC 6749 §5.2.
"""

from __future__ import annotations

import secrets
import time
from urllib.parse import parse_qsl

from .. import events
from ..credentials import CLIENTS, TOKENS, digest, family_tag, new_token
from ..responses import json_response
from ..store import StoreUnavailable
from ..wsgi import BodyTooLarge, is_secure, read_body
from .clients import INTROSPECT, client_tag, valid_client_id, valid_scope
from .refusals import (CLIENT_DISABLED, OAUTH_REQUEST_INVALID, REFRESH_TOKEN_REUSE, REVOKED_FAMILIES, SPENT,
                       TOKEN_INVALID, TOKEN_REVOKED, TokenError, plaintext, unavailable)

__all__ = ["issue_token", "OAuthEndpoints", "MAX_FORM_SIZE"]

_log = events.logger_for("token_auth")

MAX_FORM_SIZE = 16 * 1024  # token/revoke/introspect requests are a few hundred bytes
_FORM_TYPE = "application/x-www-form-urlencoded"
# OAuth clients read ``error`` (RFC 6749 §5.2) from the 403 of a plain-HTTP endpoint call.
_PLAINTEXT_OAUTH = {"error": "invalid_request",
                    "error_description": "This endpoint is only available over HTTPS."}
_INVALID_GRANT = "The refresh token is invalid, expired or revoked."


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
    return issue_pair(store, client, sorted(wanted), user, secrets.token_hex(16),
                      access_token_ttl, refresh_token_ttl, clock())


def issue_pair(store, client, scopes, user, family, access_ttl, refresh_ttl, now) -> dict:
    """Store the digests of a fresh access and refresh token of one grant; the §5.1 answer."""
    access, refresh = new_token(), new_token()
    base = {"client_id": client["id"], "client_name": client.get("name", ""), "scopes": list(scopes),
            "user": user, "family": family, "iat": int(now)}
    tags = [client_tag(client["id"]), family_tag(family)] + ([f"user:{user}"] if user else [])
    store.put(TOKENS, digest(access), dict(base, type="access", exp=now + access_ttl),
              ttl=access_ttl, tags=tags)
    store.put(TOKENS, digest(refresh), dict(base, type="refresh", exp=now + refresh_ttl),
              ttl=refresh_ttl, tags=tags)
    # Disabling a client (maybe on another host) marks it, then deletes its tokens: read
    # the mark after storing ours, so either that deletion sees our pair or we see the mark.
    current = store.get(CLIENTS, client["id"])
    if current is None or current.get("disabled"):
        store.delete(TOKENS, digest(access))
        store.delete(TOKENS, digest(refresh))
        raise LookupError(f"no enabled client {client['id']!r}")
    return {"access_token": access, "token_type": "Bearer", "expires_in": int(access_ttl),
            "refresh_token": refresh, "scope": " ".join(scopes)}


class OAuthEndpoints:
    """The token, revocation and introspection endpoints of one :class:`TokenAuth` layer."""

    def __init__(self, layer):
        self.layer = layer
        self.store = layer.store
        self.clients = layer.authenticator
        self.handlers = {layer.token_path: self._token, layer.revoke_path: self._revoke,
                         layer.introspect_path: self._introspect}

    def __call__(self, environ, start_response):
        """Answer the endpoint request at ``PATH_INFO`` (one of :attr:`handlers`)."""
        layer = self.layer
        try:
            if layer.require_tls and not is_secure(environ):
                # Refused before anything is parsed or checked: 403 (never a redirect).
                return plaintext(environ, start_response, self.store, extra=_PLAINTEXT_OAUTH)
            handler = self.handlers[environ.get("PATH_INFO", "")]
            form = self._read_form(environ)
            document = handler(environ, form)
        except TokenError as error:
            return self._oauth_error(environ, error)(environ, start_response)
        except StoreUnavailable as error:
            return unavailable(environ, start_response, error)
        return json_response(200, document)(environ, start_response)

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
        return json_response(error.status, document, headers)

    def _read_form(self, environ) -> dict:
        if environ.get("REQUEST_METHOD", "").upper() != "POST":
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

    # -- POST /oauth/token -------------------------------------------------------------

    def _token(self, environ, form):
        client = self.clients.authenticate(environ, form)
        grant_type = form.get("grant_type")
        if not grant_type:
            raise TokenError(400, "invalid_request", "grant_type is missing.")
        if grant_type == "client_credentials":
            scopes = self._requested_scopes(form, set(client.get("scopes", ())))
            return self._issue(client, scopes, None, secrets.token_hex(16))
        if grant_type == "refresh_token":
            return self._refresh(environ, client, form)
        raise TokenError(400, "unsupported_grant_type",
                         "Supported grant types: client_credentials, refresh_token.")

    @staticmethod
    def _requested_scopes(form, allowed: set) -> list:
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
        layer = self.layer
        try:
            return issue_pair(self.store, client, scopes, user, family, layer.access_token_ttl,
                              layer.refresh_token_ttl, layer.clock())
        except LookupError:  # disabled while its request was being answered
            raise TokenError(401, "invalid_client", "Client authentication failed.", kind=CLIENT_DISABLED,
                             headers=[self.clients.challenge], detail={"client_id": client["id"]}) from None

    def _refresh(self, environ, client, form):
        token = form.get("refresh_token")
        if not token:
            raise TokenError(400, "invalid_request", "refresh_token is missing.")
        key = digest(token)
        record = self.store.get(TOKENS, key)
        now = self.layer.clock()
        if record is None or record.get("type") != "refresh" or record.get("exp", 0) <= now:
            spent = self.store.get(SPENT, key)
            if spent is not None:
                self._reuse(environ, spent["family"], "a spent refresh token was presented again")
            raise TokenError(400, "invalid_grant", _INVALID_GRANT, kind=TOKEN_INVALID, severity="info",
                             recorded=spent is not None)
        if record["client_id"] != client["id"]:
            # Another client holds this client's refresh token: it leaked (RFC 6749 §10.4).
            self._reuse(environ, record["family"], "a refresh token was presented by another client")
            raise TokenError(400, "invalid_grant", _INVALID_GRANT, recorded=True)
        # Single use, atomically across processes: only the caller whose add() wins may
        # rotate; a second, concurrent use is treated as reuse (RFC 9700 §4.14.2).
        remaining = max(1.0, record["exp"] - now)
        if not self.store.add(SPENT, key, {"family": record["family"], "client_id": client["id"]},
                              ttl=remaining):
            self._reuse(environ, record["family"], "a refresh token was used twice")
            raise TokenError(400, "invalid_grant", _INVALID_GRANT, recorded=True)
        self.store.delete(TOKENS, key)
        # RFC 6749 §6: a narrower scope may be asked for, never a wider one; and scopes the
        # operator has since taken from the client are not renewed.
        allowed = set(record.get("scopes", ())) & set(client.get("scopes", ()))
        scopes = self._requested_scopes(form, allowed)
        issued = self._issue(client, scopes, record.get("user"), record["family"])
        # A reuse of this token detected on another host, racing us, marks the family
        # before deleting it: either its deletion saw our new pair or we see the mark.
        if self.store.get(REVOKED_FAMILIES, record["family"]) is not None:
            self.store.delete_tagged(TOKENS, family_tag(record["family"]))
            raise TokenError(400, "invalid_grant", _INVALID_GRANT, recorded=True)
        return issued

    def _reuse(self, environ, family, reason):
        self.store.put(REVOKED_FAMILIES, family, {"reason": reason}, ttl=self.layer.refresh_token_ttl)
        revoked = self.store.delete_tagged(TOKENS, family_tag(family))
        events.emit(environ, REFRESH_TOKEN_REUSE, reason, severity="critical", store=self.store,
                    logger=_log, detail={"family": family, "tokens_revoked": revoked})

    # -- POST /oauth/revoke (RFC 7009) -------------------------------------------------

    def _revoke(self, environ, form):
        # RFC 7009: revocation always works for an authenticated client, even while its
        # address is locked out (failures here still count towards the lock).
        client = self.clients.authenticate(environ, form, even_if_locked=True)
        token = form.get("token")
        if not token:
            raise TokenError(400, "invalid_request", "token is missing.")
        # token_type_hint only speeds up a lookup (RFC 7009 §2.1); one namespace holds both.
        key = digest(token)
        record = self.store.get(TOKENS, key)
        if record is None:
            return None  # RFC 7009 §2.2: an invalid token is not an error
        if record.get("client_id") != client["id"]:
            # RFC 7009 §2.1: only the client the token was issued to may revoke it.
            raise TokenError(400, "unauthorized_client", "This token was not issued to this client.",
                             kind=OAUTH_REQUEST_INVALID)
        if record.get("type") == "refresh":
            # RFC 7009 §2.1: revoking a refresh token also revokes the access tokens of its grant.
            count = self.store.delete_tagged(TOKENS, family_tag(record["family"]))
        else:
            count = int(self.store.delete(TOKENS, key))
        events.emit(environ, TOKEN_REVOKED, "revoked by its client", severity="info", store=self.store,
                    logger=_log, detail={"type": record.get("type"), "tokens_revoked": count})
        return None

    # -- POST /oauth/introspect (RFC 7662) ---------------------------------------------

    def _introspect(self, environ, form):
        client = self.clients.authenticate(environ, form)
        if INTROSPECT not in client.get("permissions", ()):
            # RFC 7662 §4: the endpoint must not tell just anyone about tokens.
            raise TokenError(403, "unauthorized_client", "This client may not introspect tokens.",
                             kind=OAUTH_REQUEST_INVALID)
        token = form.get("token")
        if not token:
            raise TokenError(400, "invalid_request", "token is missing.")
        record = self.store.get(TOKENS, digest(token))
        if (record is None or record.get("type") not in ("access", "refresh")
                or record.get("exp", 0) <= self.layer.clock()):
            return {"active": False}  # RFC 7662 §2.2: nothing more about it
        document = {"active": True, "scope": " ".join(record.get("scopes", ())),
                    "client_id": record["client_id"], "exp": int(record["exp"]),
                    "iat": int(record.get("iat", 0)), "sub": record.get("user") or record["client_id"]}
        if record.get("type") == "access":
            document["token_type"] = "Bearer"
        if record.get("user"):
            document["username"] = record["user"]
        return document
