"""How credentials are found in a request and kept in the store: one place for all layers.

Access and refresh tokens are high-entropy random strings (RFC 6750 §2.1 ``b64token``
syntax); the store keeps only their SHA-256 digest (namespace :data:`TOKENS`), so a copy
of the store reveals no usable token and a lookup needs no password hashing. Deleting a
digest revokes the token everywhere at once, which is how the https layer revokes a
token that crossed the wire in clear text even when token_auth never saw the request.

The plain-HTTP credential rule (DESIGN "Shared mechanisms, written once") lives here, and
both the https and the token_auth layer call :func:`plaintext_refusal`:

* What counts as a credential: a credential header (``Authorization`` with any scheme,
  Bearer or Basic alike, and the request-token header ``X-Request-Token``), and the
  parameters ``access_token``, ``refresh_token``, ``client_secret`` and ``token`` in the
  query string or in a form-encoded (or JSON object) body whose ``Content-Length`` is at
  most :data:`MAX_SCANNED_BODY` bytes (a longer or length-less body is not read: the
  request may still pass on from an exempt path, and must reach the app whole).
* It is refused with 403, never redirected: the credential has already crossed the wire,
  and a redirect would repeat it in ``Location`` and invite the client to send it again
  (OWASP Transport Layer Security cheat sheet, "Use TLS for all pages"; RFC 6749 §10.3,
  RFC 6750 §5.3: tokens must only be sent over TLS).
* It is revoked where we can: an access token is deleted; a refresh token takes its
  whole family (every access and refresh token of that grant) with it, as a reused
  refresh token does (RFC 9700 §4.14.2).
* A client secret that crossed in clear is reported as critical, naming the client id;
  the client is **not** disabled automatically. Client ids are not secret, and checking
  the secret would cost an argon2 hash on an unauthenticated plain-HTTP request: either
  way, disabling on sight would let anyone lock a partner out (or burn our CPU). The
  operator rotates it: ``wsgisec client rotate-secret ID --grace 0``. A request token is
  reported the same way (revoking it needs signed_requests' keys).
* Exactly one critical ``credentials-over-plaintext`` event per request, from whichever
  layer sees it first; the environ is marked (:data:`PLAINTEXT_SEEN`, the incident id) so
  a second layer refuses with the same incident id and emits and revokes nothing again.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import re
import secrets
from urllib.parse import parse_qsl, unquote_plus

from . import events
from .store import StoreUnavailable
from .wsgi import BodyTooLarge, content_length, has_body, read_body

__all__ = ["TOKENS", "SIGNING_KEYS", "REQUEST_TOKENS", "CLIENTS", "CLIENT_CREDENTIALS", "new_token", "new_id",
           "digest", "bearer_token", "revoke_token", "family_tag", "valid_client_id", "exposed_credentials",
           "plaintext_refusal", "Exposure", "CREDENTIALS_OVER_PLAINTEXT", "PLAINTEXT_SEEN",
           "CREDENTIAL_PARAMS", "DEFAULT_CREDENTIAL_HEADERS"]

#: Store namespace of access and refresh tokens, keyed by :func:`digest`.
TOKENS = "tokens"

#: Store namespace of partner client records (token_auth's registry), keyed by client id.
#: Defined here, once, because more than one practice reads it.
CLIENTS = "clients"

#: Store namespace of partners' RFC 9421 signing keys (signed_requests), keyed by keyid.
SIGNING_KEYS = "signing_keys"

#: Store namespace of the request tokens signed_requests issued, keyed by token id: a
#: request token verifies only while its record is here (issue 11).
REQUEST_TOKENS = "request_tokens"

#: Namespaces whose records are tagged ``client:<id>``: everything that lets a client in.
#: Disabling a client deletes its records in each of them at once.
CLIENT_CREDENTIALS = (TOKENS, SIGNING_KEYS, REQUEST_TOKENS)

#: Event kind (and the ``reason`` a refused caller sees).
CREDENTIALS_OVER_PLAINTEXT = "credentials-over-plaintext"

#: environ key set by the first layer that applied the plain-HTTP rule: its incident id.
PLAINTEXT_SEEN = "wsgisec.credentials.plaintext"

#: Parameters that carry a credential, in a query string or a form body.
CREDENTIAL_PARAMS = ("access_token", "refresh_token", "client_secret", "token")
_TOKEN_PARAMS = ("access_token", "refresh_token", "token")

#: Request headers that carry a credential (the https layer's ``credential_headers``).
DEFAULT_CREDENTIAL_HEADERS = ("Authorization", "X-Request-Token")

#: A plain-HTTP body longer than this is refused without being read for tokens.
MAX_SCANNED_BODY = 64 * 1024

_log = logging.getLogger("wsgisec.ops")

# RFC 6750 §2.1: credentials = "Bearer" 1*SP b64token
_BEARER = re.compile(r"^Bearer +([A-Za-z0-9\-._~+/]+=*) *$", re.IGNORECASE)
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._~-]{1,64}$")
_FORM = "application/x-www-form-urlencoded"


def new_token(nbytes: int = 32) -> str:
    """A fresh random token of ``nbytes`` (default 256 bits), URL-safe text."""
    return secrets.token_urlsafe(nbytes)


def new_id(prefix: str, nbytes: int = 12) -> str:
    """A fresh random identifier (not a secret): ``prefix`` + URL-safe text of ``nbytes``.

    The prefix says what the id names (``k_`` a signing key, ``rt_`` a request token) and
    makes sure it never begins with ``-``: an id that does is read as an option by the
    ``wsgisec`` command (and every other argparse/getopt CLI) unless the user types ``--``.
    """
    if not prefix or not prefix[0].isalnum():
        raise ValueError(f"an id prefix must start with a letter or digit, not {prefix!r}")
    return prefix + secrets.token_urlsafe(nbytes)


def digest(token: str) -> str:
    """The store key of a token: hex SHA-256 of its UTF-8 bytes."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def valid_client_id(client_id) -> bool:
    """Whether ``client_id`` has the shape of a client id (safe to name in an event)."""
    return isinstance(client_id, str) and bool(_CLIENT_ID.match(client_id))


def family_tag(family: str) -> str:
    """The tag every token of one grant (one refresh-token family) carries."""
    return f"family:{family}"


def header_keys(names) -> tuple:
    """environ keys (``HTTP_X_REQUEST_TOKEN``) of header names (``X-Request-Token``)."""
    return tuple("HTTP_" + name.upper().replace("-", "_") for name in names)


_DEFAULT_KEYS = header_keys(DEFAULT_CREDENTIAL_HEADERS)


def bearer_token(environ: dict) -> str | None:
    """The token of an ``Authorization: Bearer`` header, or None (absent or malformed)."""
    header = environ.get("HTTP_AUTHORIZATION")
    if not header:
        return None
    match = _BEARER.match(header)
    return match.group(1) if match else None


def revoke_token(store, token: str) -> bool:
    """Revoke an access or refresh token by its value; True if it was live.

    A refresh token takes every token of its grant with it (RFC 7009 §2.1, RFC 9700
    §4.14.2): whoever holds it could otherwise mint new access tokens.
    """
    key = digest(token)
    record = store.get(TOKENS, key)
    if record is None:
        return False
    if record.get("type") == "refresh" and record.get("family"):
        return store.delete_tagged(TOKENS, family_tag(record["family"])) > 0 or store.delete(TOKENS, key)
    return store.delete(TOKENS, key)


class Exposure:
    """The credentials one plain-HTTP request carried (names only, plus token values)."""

    __slots__ = ("headers", "params", "tokens", "client_id", "client_secret", "request_token",
                 "body_scanned")

    def __init__(self):
        self.headers: list[str] = []   # header names, e.g. "Authorization"
        self.params: list[str] = []    # "query:access_token", "form:refresh_token"
        self.tokens: list[str] = []    # values to revoke (never logged)
        self.client_id: str | None = None
        self.client_secret = False
        self.request_token = False
        self.body_scanned = True

    def __bool__(self):
        return bool(self.headers or self.params)

    def detail(self) -> dict:
        """Non-secret facts for the event: names, never values (the client id is not secret)."""
        found = {"headers": " ".join(self.headers), "params": " ".join(self.params),
                 "client_secret_exposed": self.client_secret,
                 "request_token_exposed": self.request_token}
        if self.client_id is not None:
            found["claimed_client_id"] = self.client_id if valid_client_id(self.client_id) else "<invalid>"
        if not self.body_scanned:
            found["body_scanned"] = False
        return found


def exposed_credentials(environ: dict, keys=_DEFAULT_KEYS) -> Exposure:
    """Every credential this request carries, wherever it is (see the module docstring).

    ``keys`` are the environ keys of the credential headers (:func:`header_keys`). The body
    is read through :func:`wsgisec.wsgi.read_body`, so later layers get the same bytes.
    """
    found = Exposure()
    for key in keys:
        value = environ.get(key)
        if value:
            found.headers.append(key[5:].replace("_", "-").title())
            if key == "HTTP_AUTHORIZATION":
                _authorization(found, value)
            else:
                found.request_token = True
    query = environ.get("QUERY_STRING", "")
    # Cheap test first: most plain-HTTP requests carry no credential parameter at all
    # (a name may be percent-encoded, "client%5Fsecret", so any escape means: parse).
    if query and ("%" in query or any(name in query for name in CREDENTIAL_PARAMS)):
        _params(found, "query", parse_qsl(query, keep_blank_values=True))
    if has_body(environ):
        _body(found, environ)
    return found


def _authorization(found: Exposure, value: str):
    scheme, _, rest = value.strip().partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer" and rest.strip():
        found.tokens.append(rest.strip())
    elif scheme == "basic":
        # RFC 6749 §2.3.1: id and secret are form-urlencoded, then Basic-encoded.
        try:
            decoded = base64.b64decode(rest.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            decoded = ""
        client_id, sep, secret = decoded.partition(":")
        found.client_secret = True
        if sep:
            found.client_id = unquote_plus(client_id)


def _params(found: Exposure, where: str, pairs):
    for name, value in pairs:
        if name in CREDENTIAL_PARAMS and value:
            found.params.append(f"{where}:{name}")
            if name in _TOKEN_PARAMS:
                found.tokens.append(value)
            else:
                found.client_secret = True
        elif name == "client_id" and value and found.client_id is None:
            found.client_id = value


def _body(found: Exposure, environ: dict):
    content_type = environ.get("CONTENT_TYPE", "").split(";", 1)[0].strip().lower()
    is_json = content_type == "application/json" or content_type.endswith("+json")
    if content_type != _FORM and not is_json:
        return
    # Only a body whose Content-Length fits is read: a request on an exempt or public path
    # may still pass on, and a chunked body cut at the limit would reach the app truncated.
    try:
        length = content_length(environ)
    except ValueError:
        length = None
    if length is None or length > MAX_SCANNED_BODY:
        found.body_scanned = False  # refused all the same if it carries other credentials
        return
    try:
        body = read_body(environ, MAX_SCANNED_BODY)
    except (BodyTooLarge, ValueError):  # pragma: no cover - the length was checked above
        found.body_scanned = False
        return
    try:
        text = body.decode("utf-8")
        if is_json:
            document = json.loads(text)
            pairs = [(k, v) for k, v in document.items() if isinstance(v, str)] \
                if isinstance(document, dict) else []
        else:
            pairs = parse_qsl(text, keep_blank_values=True)
    except (UnicodeDecodeError, ValueError, RecursionError):  # deep nesting: json gives up
        found.body_scanned = False
        return
    _params(found, "form" if not is_json else "json", pairs)


def plaintext_refusal(environ: dict, *, store, logger, keys=_DEFAULT_KEYS, extra=None):
    """Apply the plain-HTTP credential rule; a 403 WSGI app, or None if no credential.

    Call it only for a request that did not arrive over TLS. It revokes what it can in
    ``store`` (may be None), emits one critical ``credentials-over-plaintext`` event on
    ``logger`` (the calling layer's), and marks the environ so that no later layer emits
    or revokes again. ``extra`` adds members to the 403 document (e.g. an OAuth
    ``error``); its ``reason`` is always ``credentials-over-plaintext``.
    """
    from .responses import problem  # webob: only on this refusal path

    incident = environ.get(PLAINTEXT_SEEN)
    if incident is None:
        found = exposed_credentials(environ, keys)
        if not found:
            return None
        revoked, failed = 0, False
        if store is not None:
            for token in dict.fromkeys(found.tokens):  # each value once
                try:
                    revoked += bool(revoke_token(store, token))
                except StoreUnavailable as error:
                    failed = True
                    _log.error("could not revoke a token sent over plain HTTP: %s", error)
        detail = dict(found.detail(), token_revoked=revoked > 0, tokens_revoked=revoked)
        if failed:
            detail["revoke_failed"] = True
        if found.client_secret:
            detail["action"] = "rotate the client secret"
        incident = events.emit(environ, CREDENTIALS_OVER_PLAINTEXT,
                               "credentials sent over plain HTTP; rotate them", severity="critical",
                               store=store, logger=logger, detail=detail)
        environ[PLAINTEXT_SEEN] = incident
    document = dict(extra or {}, reason=CREDENTIALS_OVER_PLAINTEXT)
    return problem(environ, 403, "Credentials must only be sent over HTTPS. Tokens sent this way "
                   "are revoked; a client secret sent this way must be replaced.",
                   incident=incident, extra=document)
