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
time in the hash implementation).

An unknown client id is refused without a check. Client ids are not secrets (RFC 6749
§2.2: "the client identifier is not a secret; it is exposed to the resource owner"), and
ours carry 64 random bits, so they cannot be enumerated by guessing; the dummy check we
used to spend on them to hide which ids exist turned every request with a random id into
an argon2 check, the amplification a flood of bad credentials needs (issue 14).

Bounded hashing (issue 14): an argon2id verification costs ~64 MiB and tens of ms of
every core, so a flood of bad credentials from many addresses (which the per-address
lock-out cannot stop) would otherwise take the CPU, memory and server threads the API
needs. :class:`~wsgisec.token_auth.hashing.HashSlots` lets at most ``max_concurrent_hashes`` verifications run at once
in a process and at most ``failed_hash_budget`` of them fail per window; a request
beyond either raises :class:`HashingBusy`, which the token endpoint answers with 503 and
``Retry-After`` (never a pass, never a hash skipped for a check that then succeeds). The
checks run on hashing threads of lowered CPU priority, so that the ones admitted yield
the cores to API requests. A secret verified in this process is remembered for
``verified_secret_ttl`` (:class:`~wsgisec.token_auth.verified.VerifiedSecrets`), so a
partner renewing its token needs no check and is not stopped by either bound.

At the token endpoints, :class:`ClientAuthenticator` reads the client's credentials from
the request (RFC 6749 §2.3.1) and keeps the lock-out counters (per address and per
(client id, address), never per client id alone).

Python::

    registry = ClientRegistry(open_store("sqlite:////srv/wsgisec.sqlite"))
    record, secret = registry.create("Acme reporting", scopes=["items:read"])
    registry.authenticate(record["id"], secret)      # -> the record, or None
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import time
from urllib.parse import unquote_plus

from passlib.context import CryptContext

from .. import events
from ..credentials import CLIENT_CREDENTIALS, CLIENTS, TOKENS, valid_client_id
from .hashing import HashingBusy, HashSlots
from .verified import VerifiedSecrets
from .refusals import (CLIENT_AUTH_FAILED, CLIENT_AUTH_THROTTLED, CLIENT_DISABLED, FAILURES,
                       HASHING_BUSY, KNOWN_CALLER_TTL, KNOWN_CALLERS, LOCKS, TokenError)

__all__ = ["CLIENTS", "ClientRegistry", "ClientAuthenticator", "DEFAULT_CONTEXT", "new_secret",
           "client_tag", "valid_scope", "valid_client_id", "INTROSPECT", "PERMISSIONS"]

_log = events.logger_for("token_auth")

#: Permission that lets a client call the introspection endpoint (RFC 7662 §2.1).
INTROSPECT = "introspect"
PERMISSIONS = frozenset({INTROSPECT})

#: argon2id with passlib's defaults (64 MiB, t=3, p=4); pbkdf2_sha256 is still verified
#: but deprecated, so such hashes are upgraded on the next successful login.
DEFAULT_CONTEXT = CryptContext(schemes=["argon2", "pbkdf2_sha256"], deprecated=["pbkdf2_sha256"])

SECRET_BYTES = 32  # 256 bits
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


class ClientRegistry:
    """Create, find, authenticate, rotate and disable clients in a store.

    ``hash_slots`` (a :class:`HashSlots`) bounds the verifications :meth:`authenticate`
    runs; the default puts no bound (operator verbs, Python callers). ``verified`` (a
    :class:`VerifiedSecrets`) remembers the secrets verified here; the default remembers
    none. The token_auth layer passes its ``max_concurrent_hashes``, ``hash_wait``,
    ``failed_hash_budget`` and ``verified_secret_ttl``.
    """

    def __init__(self, store, *, context: CryptContext = DEFAULT_CONTEXT, clock=time.time,
                 hash_slots: HashSlots | None = None, verified: VerifiedSecrets | None = None):
        self.store = store
        self.context = context
        self.clock = clock
        self.hash_slots = hash_slots or HashSlots(None)
        self.verified = verified if verified is not None else VerifiedSecrets(0)

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
        if grace <= 0:
            self.verified.forget(client_id)  # other processes: the hash is no longer live
        return secret

    def disable(self, client_id: str) -> int | None:
        """Disable a client and delete its tokens and signing keys at once.

        Returns how many tokens were deleted, or None for an unknown client.
        """
        if self.get(client_id) is None:
            return None
        self.store.update(CLIENTS, client_id, {"disabled": True, "updated": self.clock()})
        self.verified.forget(client_id)
        deleted = {ns: self.store.delete_tagged(ns, client_tag(client_id)) for ns in CLIENT_CREDENTIALS}
        return deleted[TOKENS]

    def enable(self, client_id: str) -> bool:
        return self.store.update(CLIENTS, client_id, {"disabled": False, "updated": self.clock()})

    # -- the token endpoint -------------------------------------------------------------

    def authenticate(self, client_id: str, secret: str, *, known_caller=None) -> dict | None:
        """The client's record if ``secret`` is one of its live secrets, else None.

        A disabled client is returned too (with ``disabled`` true): the caller refuses it
        with its own answer, after the secret proved who is asking. An unknown id or an
        empty secret is None at once (see the module docstring). A secret this process
        verified within ``verified_secret_ttl`` against a hash that is still live needs
        no check; otherwise raises :class:`HashingBusy` when the hashing bounds allow no
        check now. ``known_caller``: a callable, asked only when a check is needed; true
        means the caller authenticated this client before, so a wrong secret from it
        does not spend the failure budget.
        """
        record = self.get(client_id) if client_id else None
        if record is None or not secret:
            return None
        now = self.clock()
        live = self._live_secrets(record, now)
        remembered = self.verified.matched_hash(client_id, secret, {entry.get("hash") for entry in live})
        if remembered is not None and not self.context.needs_update(remembered):
            return record
        budgeted = not (known_caller and known_caller())
        return self.hash_slots.run(self._authenticate, record, client_id, secret, live, now, budgeted=budgeted)

    def _authenticate(self, record, client_id, secret, live, now):
        matched = None
        for entry in live:
            # CryptContext.verify compares in constant time inside the hash implementation.
            if self.context.verify(secret, entry["hash"]):
                matched = entry
                break
        if matched is None:
            return None
        matched_hash = matched["hash"]
        if self.context.needs_update(matched_hash):
            # Upgrade the hash now that we know the secret (passlib's needs_update pattern).
            matched_hash = self.context.hash(secret)
            upgraded = [dict(entry, hash=matched_hash) if entry is matched else entry for entry in live]
            self.store.update(CLIENTS, client_id, {"secrets": upgraded, "updated": now})
            record["secrets"] = upgraded
        self.verified.remember(client_id, secret, matched_hash)
        return record

    def _live_secrets(self, record: dict, now: float) -> list[dict]:
        return [entry for entry in record.get("secrets", ())
                if not entry.get("expires") or entry["expires"] > now]


def public_view(record: dict) -> dict:
    """A client record without its secret hashes, for listings and ``wsgisec.client``."""
    return {key: value for key, value in record.items() if key != "secrets"}


class KnownCaller:
    """``<client id>@<address>`` in :data:`KNOWN_CALLERS`: read only when a check is
    needed (:meth:`known`), written after the first success from there (:meth:`remember`)."""

    def __init__(self, store, client_id: str, address: str):
        self.store, self.client_id, self.key = store, client_id, f"{client_id}@{address}"
        self.was_known = None  # not looked up

    def known(self) -> bool:
        self.was_known = self.store.get(KNOWN_CALLERS, self.key) is not None
        return self.was_known

    def remember(self, now: float) -> None:
        if self.was_known is False:
            self.store.put(KNOWN_CALLERS, self.key, {"since": now}, ttl=KNOWN_CALLER_TTL,
                           tags=(client_tag(self.client_id),))


class ClientAuthenticator:
    """Authenticate the client of a token-endpoint request, with lock-out after failures.

    Failures are counted per address (one address trying many ids) and per (client id,
    address) (one address guessing one client's secret); never per client id alone:
    client ids are not secret, so anyone could otherwise lock a partner out by failing
    with its id from anywhere (issue 11). Generated secrets have 256 bits, so a per-id
    count adds nothing against guessing (OWASP Authentication cheat sheet, "Account
    lockout"); the lock spares our CPU the argon2 checks.

    A caller that authenticated a client successfully is remembered as ``<id>@<address>``
    (:data:`KNOWN_CALLERS`, 30 days): its later checks of that client do not spend the
    failed-check budget, so strangers flooding a partner's id cannot keep the partner out.
    """

    def __init__(self, registry: ClientRegistry, *, store, max_failed: int, window: int,
                 challenge: tuple, clock=time.time):
        self.registry = registry
        self.store = store
        self.max_failed = max_failed
        self.window = window
        self.challenge = challenge
        self.clock = clock

    def authenticate(self, environ, form, *, even_if_locked=False) -> dict:
        """The authenticated client record (RFC 6749 §2.3.1), or a TokenError.

        ``even_if_locked``: check the secret even while this address is locked out (the
        revocation endpoint: a partner that must revoke a leaked token is never stopped).
        """
        client_id, secret = self._credentials(environ, form)
        shown_id = client_id if valid_client_id(client_id) else "<invalid>"
        if not even_if_locked:
            self._check_lockout(environ, client_id)
        caller = KnownCaller(self.store, client_id, environ.get("REMOTE_ADDR", ""))
        try:
            record = self.registry.authenticate(client_id, secret, known_caller=caller.known)
        except HashingBusy as busy:
            raise self._busy(shown_id, busy) from None
        if record is None:
            self._count_failure(environ, client_id, shown_id)
            raise self._invalid("client authentication failed", shown_id)
        if record.get("disabled"):
            raise TokenError(401, "invalid_client", "Client authentication failed.",
                             kind=CLIENT_DISABLED, headers=[self.challenge],
                             detail={"client_id": shown_id})
        caller.remember(self.clock())
        environ["wsgisec.client"] = {"id": record["id"], "name": record.get("name", ""),
                                     "scopes": tuple(record.get("scopes", ())), "user": None}
        return record

    def _credentials(self, environ, form) -> tuple[str, str]:
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
                raise self._invalid("malformed basic credentials", None)
            # RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic encoding.
            client_id, secret = unquote_plus(client_id), unquote_plus(secret)
            if form.get("client_id") not in (None, client_id):
                raise TokenError(400, "invalid_request", "client_id differs from the credentials.")
            return client_id, secret
        if "client_secret" in form or "client_id" in form:
            return form.get("client_id", ""), form.get("client_secret", "")
        raise TokenError(401, "invalid_client", "Client authentication is required.",
                         kind=CLIENT_AUTH_FAILED, severity="info", headers=[self.challenge])

    def _busy(self, shown_id, busy: HashingBusy):
        # 503 (RFC 9110 §15.6.4, "temporary overload"), not 429 (RFC 6585 §4): the
        # overload is everyone's hashing, not this caller's rate, and a partner with good
        # credentials may be the one refused; Retry-After (RFC 9110 §10.2.3) tells it when
        # to try again. RFC 6749 §5.2 has no code for it: temporarily_unavailable is its
        # §4.1.2.1 code for the same condition. Nothing was checked, so no failure counts.
        return TokenError(503, "temporarily_unavailable",
                          "The token endpoint is busy; try again shortly.", kind=HASHING_BUSY,
                          headers=[("Retry-After", str(busy.retry_after))],
                          detail={"claimed_client_id": shown_id, "why": busy.why,
                                  "max_concurrent_hashes": self.registry.hash_slots.limit})

    def _invalid(self, reason, shown_id):
        return TokenError(401, "invalid_client", "Client authentication failed.",
                          kind=CLIENT_AUTH_FAILED, headers=[self.challenge],
                          detail={"claimed_client_id": shown_id, "why": reason})

    @staticmethod
    def lock_keys(environ, client_id) -> list[str]:
        """``addr:<ip>`` and, for a well-formed id, ``client-addr:<id>@<ip>``."""
        address = str(environ.get("REMOTE_ADDR", ""))
        keys = ["addr:" + address]
        if valid_client_id(client_id):
            keys.append(f"client-addr:{client_id}@{address}")
        return keys

    def _check_lockout(self, environ, client_id):
        now = self.clock()
        for key in self.lock_keys(environ, client_id):
            lock = self.store.get(LOCKS, key)
            if lock is not None and lock.get("until", 0) > now:
                retry = max(1, int(lock["until"] - now + 0.999))
                raise TokenError(429, "temporarily_unavailable",
                                 "Too many failed authentications; try again later.",
                                 kind=CLIENT_AUTH_THROTTLED, headers=[("Retry-After", str(retry))],
                                 detail={"locked": key.split(":", 1)[0]})

    def _count_failure(self, environ, client_id, shown_id):
        now = self.clock()
        for key in self.lock_keys(environ, client_id):
            count = self.store.incr(FAILURES, key, self.window)
            if count >= self.max_failed:
                self.store.put(LOCKS, key, {"until": now + self.window}, ttl=self.window)
                events.emit(environ, CLIENT_AUTH_THROTTLED, "too many failed client authentications",
                            severity="error", store=self.store, logger=_log,
                            detail={"locked": key.split(":", 1)[0], "failures": count,
                                    "claimed_client_id": shown_id})
