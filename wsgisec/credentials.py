"""How credentials are found in a request and kept in the store: one place for all layers.

Access and refresh tokens are high-entropy random strings (RFC 6750 §2.1 ``b64token``
syntax); the store keeps only their SHA-256 digest (namespace :data:`TOKENS`), so a copy
of the store reveals no usable token and a lookup needs no password hashing. Deleting a
digest revokes the token everywhere at once, which is how the https layer revokes a
token that crossed the wire in clear text even when token_auth never saw the request.
"""

from __future__ import annotations

import hashlib
import re
import secrets

__all__ = ["TOKENS", "SIGNING_KEYS", "REQUEST_TOKENS", "CLIENT_CREDENTIALS", "new_token", "digest", "bearer_token", "revoke_token"]

#: Store namespace of access and refresh tokens, keyed by :func:`digest`.
TOKENS = "tokens"

#: Store namespace of partners' RFC 9421 signing keys (signed_requests), keyed by keyid.
SIGNING_KEYS = "signing_keys"

#: Store namespace of the request tokens signed_requests issued, keyed by token id: a
#: request token verifies only while its record is here (issue 11).
REQUEST_TOKENS = "request_tokens"

#: Namespaces whose records are tagged ``client:<id>``: everything that lets a client in.
#: Disabling a client deletes its records in each of them at once.
CLIENT_CREDENTIALS = (TOKENS, SIGNING_KEYS, REQUEST_TOKENS)

# RFC 6750 §2.1: credentials = "Bearer" 1*SP b64token
_BEARER = re.compile(r"^Bearer +([A-Za-z0-9\-._~+/]+=*) *$", re.IGNORECASE)


def new_token(nbytes: int = 32) -> str:
    """A fresh random token of ``nbytes`` (default 256 bits), URL-safe text."""
    return secrets.token_urlsafe(nbytes)


def digest(token: str) -> str:
    """The store key of a token: hex SHA-256 of its UTF-8 bytes."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def bearer_token(environ: dict) -> str | None:
    """The token of an ``Authorization: Bearer`` header, or None (absent or malformed)."""
    header = environ.get("HTTP_AUTHORIZATION")
    if not header:
        return None
    match = _BEARER.match(header)
    return match.group(1) if match else None


def revoke_token(store, token: str) -> bool:
    """Revoke an access or refresh token by its value; True if it was live."""
    return store.delete(TOKENS, digest(token))
