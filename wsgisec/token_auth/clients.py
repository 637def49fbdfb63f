"""The registry of partner clients, kept in the store: ids, hashed secrets, scopes.

Practice 1 (broken authentication): a partner application proves who it is with a client
secret that *we* generate (256 random bits, shown once) and keep only as a password hash.
A copy of the store therefore reveals no usable secret, and a secret is checked only at
the token endpoint, never per API request (the API sees short-lived access tokens).

Client records are JSON objects in the store namespace :data:`CLIENTS`, keyed by client
id. Fields (another layer may add its own fields with ``store.update``; this module keeps
fields it does not know):

``id``
    The client id (``c_`` + 16 hex digits). Not a secret.
``name``
    A human-readable name given by the operator.
``scopes``
    The scopes the client may ask for (list of strings, RFC 6749 §3.3 syntax).
``permissions``
    Extra rights, e.g. ``"introspect"`` (may call the RFC 7662 introspection endpoint).
``secrets``
    Password hashes of the valid secrets, newest first: a list of
    ``{"hash": "$argon2id$...", "created": t, "expires": t or null}``. After
    :meth:`ClientRegistry.rotate_secret` the previous secret stays valid until its
    ``expires`` (the grace period), so a partner can roll over without downtime.
``created`` / ``updated``
    Unix times.
``disabled``
    True once :meth:`ClientRegistry.disable` ran; a disabled client cannot get tokens and
    its existing tokens were deleted (tag ``client:<id>`` in the tokens namespace).

Hashing (OWASP Password Storage cheat sheet): argon2id through passlib's
:class:`~passlib.context.CryptContext`, so that when the parameters or the scheme change,
a hash that ``needs_update`` is replaced on the client's next successful login, without
anyone having to know the secret. Secrets are compared only through ``verify`` (constant
time in the hash implementation); an unknown client id still costs one verification, so
response time does not tell which ids exist.

Python::

    registry = ClientRegistry(open_store("sqlite:////srv/wsgisec.sqlite"))
    record, secret = registry.create("Acme reporting", scopes=["items:read"])
    registry.authenticate(record["id"], secret)      # -> the record, or None
"""

from __future__ import annotations

import re
import secrets
import time

from passlib.context import CryptContext

from ..credentials import CLIENT_CREDENTIALS, TOKENS

__all__ = ["CLIENTS", "ClientRegistry", "DEFAULT_CONTEXT", "new_secret", "client_tag",
           "valid_scope", "INTROSPECT", "PERMISSIONS"]

#: Store namespace of client records, keyed by client id.
CLIENTS = "clients"

#: Permission that lets a client call the introspection endpoint (RFC 7662 §2.1).
INTROSPECT = "introspect"
PERMISSIONS = frozenset({INTROSPECT})

#: argon2id with passlib's defaults (64 MiB, t=3, p=4); pbkdf2_sha256 is still verified
#: but deprecated, so such hashes are upgraded on the next successful login.
DEFAULT_CONTEXT = CryptContext(schemes=["argon2", "pbkdf2_sha256"], deprecated=["pbkdf2_sha256"])

SECRET_BYTES = 32  # 256 bits
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._~-]{1,64}$")
# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE = re.compile(r'^[\x21\x23-\x5b\x5d-\x7e]+$')


def new_secret() -> str:
    """A fresh client secret: 256 random bits, URL-safe text (43 characters)."""
    return secrets.token_urlsafe(SECRET_BYTES)


def client_tag(client_id: str) -> str:
    """The tag every token of ``client_id`` carries in the tokens namespace."""
    return f"client:{client_id}"


def valid_scope(scope: str) -> bool:
    return bool(_SCOPE.match(scope))


def valid_client_id(client_id: str) -> bool:
    return bool(_CLIENT_ID.match(client_id or ""))


class ClientRegistry:
    """Create, find, authenticate, rotate and disable clients in a store."""

    def __init__(self, store, *, context: CryptContext = DEFAULT_CONTEXT, clock=time.time):
        self.store = store
        self.context = context
        self.clock = clock
        self._dummy_hash = None

    # -- operator actions ------------------------------------------------------------

    def create(self, name: str, scopes=(), permissions=()) -> tuple[dict, str]:
        """A new client; returns ``(record, secret)``. The secret is never stored."""
        scopes = sorted(set(scopes))
        for scope in scopes:
            if not valid_scope(scope):
                raise ValueError(f"{scope!r} is not a valid scope (RFC 6749 §3.3)")
        unknown = set(permissions) - PERMISSIONS
        if unknown:
            raise ValueError(f"unknown permission {', '.join(sorted(unknown))}; known: "
                             + ", ".join(sorted(PERMISSIONS)))
        secret = new_secret()
        now = self.clock()
        record = {
            "id": "c_" + secrets.token_hex(8),
            "name": str(name),
            "scopes": scopes,
            "permissions": sorted(set(permissions)),
            "secrets": [{"hash": self.context.hash(secret), "created": now, "expires": None}],
            "created": now,
            "updated": now,
            "disabled": False,
        }
        if not self.store.add(CLIENTS, record["id"], record):  # pragma: no cover - 64-bit clash
            raise RuntimeError("client id collision; try again")
        return record, secret

    def get(self, client_id: str) -> dict | None:
        if not valid_client_id(client_id):
            return None
        return self.store.get(CLIENTS, client_id)

    def list(self) -> list[dict]:
        """Every client record (for operators; never per request)."""
        return [record for _key, record in self.store.items(CLIENTS)]

    def rotate_secret(self, client_id: str, grace: float = 86400) -> str | None:
        """A new secret for the client; the current ones stay valid for ``grace`` seconds.

        Returns the new secret (shown once), or None if the client does not exist.
        """
        record = self.get(client_id)
        if record is None:
            return None
        now = self.clock()
        secret = new_secret()
        kept = []
        for entry in self._live_secrets(record, now):
            expires = entry.get("expires")
            entry = dict(entry, expires=min(expires, now + grace) if expires else now + grace)
            if grace > 0:
                kept.append(entry)
        fresh = {"hash": self.context.hash(secret), "created": now, "expires": None}
        self.store.update(CLIENTS, client_id, {"secrets": [fresh] + kept, "updated": now})
        return secret

    def disable(self, client_id: str) -> int | None:
        """Disable a client and delete its tokens and signing keys at once.

        Returns how many tokens were deleted, or None for an unknown client.
        """
        if self.get(client_id) is None:
            return None
        self.store.update(CLIENTS, client_id, {"disabled": True, "updated": self.clock()})
        deleted = {ns: self.store.delete_tagged(ns, client_tag(client_id)) for ns in CLIENT_CREDENTIALS}
        return deleted[TOKENS]

    def enable(self, client_id: str) -> bool:
        return self.store.update(CLIENTS, client_id, {"disabled": False, "updated": self.clock()})

    # -- the token endpoint -------------------------------------------------------------

    def authenticate(self, client_id: str, secret: str) -> dict | None:
        """The client's record if ``secret`` is one of its live secrets, else None.

        A disabled client is returned too (with ``disabled`` true): the caller refuses it
        with its own answer, after the secret proved who is asking.
        """
        record = self.get(client_id) if client_id else None
        if record is None or not secret:
            # Spend the same time as a real check, so timing does not reveal which ids exist.
            self.context.verify(secret or "x", self._dummy())
            return None
        now = self.clock()
        live = self._live_secrets(record, now)
        matched = None
        for entry in live:
            # CryptContext.verify compares in constant time inside the hash implementation.
            if self.context.verify(secret, entry["hash"]):
                matched = entry
                break
        if matched is None:
            return None
        if self.context.needs_update(matched["hash"]):
            # Upgrade the hash now that we know the secret (passlib's needs_update pattern).
            upgraded = [dict(entry, hash=self.context.hash(secret)) if entry is matched else entry
                        for entry in live]
            self.store.update(CLIENTS, client_id, {"secrets": upgraded, "updated": now})
            record["secrets"] = upgraded
        return record

    def _live_secrets(self, record: dict, now: float) -> list[dict]:
        return [entry for entry in record.get("secrets", ())
                if not entry.get("expires") or entry["expires"] > now]

    def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = self.context.hash(new_secret())
        return self._dummy_hash


def public_view(record: dict) -> dict:
    """A client record without its secret hashes, for listings and ``wsgisec.client``."""
    return {key: value for key, value in record.items() if key != "secrets"}
