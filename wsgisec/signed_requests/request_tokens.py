"""Signed request tokens: a trusted token we issue to each partner client (practice 4).

A request token is an itsdangerous ``URLSafeTimedSerializer`` token over
``{"c": client_id, "k": key_id, "j": token_id}`` plus the issue time that itsdangerous
adds. The partner stores it and sends it with every request (header ``X-Request-Token``
by default). The signature and the age (``max_age``) need no store lookup.

With a store, a signature is not enough (issue 11): a token minted offline with an old
or leaked key would carry a valid signature and a fresh id that no revocation list
names. So a token verifies only while

* its id is in the store's record of issued tokens (namespace ``request_tokens``, kept
  for ``max_age``, tagged ``client:<id>``), for the same client and issue time: a token
  we never issued is refused, whatever key signed it, and revoking deletes the record
  (``wsgisec client disable`` deletes every record of the client too); and
* it was issued at or after the client's **issued-at floor** (namespace
  ``request_token_floors``): revoking every token of a client
  (``wsgisec client revoke-request-token --client ID``) or re-issuing with
  ``wsgisec client request-token ID --revoke-older`` raises the floor to now, so every
  token issued before is refused on every worker, listed or not.

Both are ``get`` calls per request (the revocation check was one before).

* ``client_id``: the partner the token was issued to; the signed_requests layer checks
  that the request's signing key and (when token_auth is in the stack) its bearer token
  belong to the same client.
* ``key_id``: a short fingerprint of the secret key that signed the token, so an
  operator can see which tokens must be re-issued before an old key is dropped.
* ``token_id``: random; revoking it (namespace ``request_tokens_revoked``) refuses the
  token at once on every worker.

Key rotation follows itsdangerous' list convention (and STYLE.md): ``secret_keys`` are
listed **oldest first; the last key signs new tokens and every listed key is accepted**.
To rotate: append a new key, re-issue tokens, and later drop the oldest.
"""

from __future__ import annotations

import hashlib
import time

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from ..credentials import REQUEST_TOKENS, new_id

__all__ = ["RequestTokens", "RequestTokenError", "ISSUED", "REVOKED", "FLOORS"]

#: Store namespace: token_id -> {client_id, key_id, issued, expires}; a token verifies only
#: while its record is here.
ISSUED = REQUEST_TOKENS
#: Store namespace: token_id -> {client_id, revoked}; TTL = max_age (expiry refuses it after).
REVOKED = "request_tokens_revoked"
#: Store namespace: client_id -> {not_before}; tokens issued before are refused.
FLOORS = "request_token_floors"

_SALT = "wsgisec.request-token"
# itsdangerous tokens are URL-safe base64 plus "." separators; anything else is refused
# before any crypto runs, and length is bounded.
_MAX_LENGTH = 512
# Signature-verified tokens remembered per process (one per partner in practice).
_CACHE_SIZE = 4096
_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")


class RequestTokenError(Exception):
    """A request token was refused; ``code`` is the reason code sent to the partner,
    ``reason`` the event's text and ``hint`` what the partner can do (no secret)."""

    def __init__(self, code: str, reason: str, hint: str = ""):
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.hint = hint or _HINTS.get(reason, "")


_NEW_TOKEN = "ask the operator for a new request token."
_HINTS = {
    "malformed request token": "Send the request token exactly as issued in the X-Request-Token header.",
    "request token signature invalid": "The X-Request-Token was not issued by this API (or its key "
                                       "was dropped): " + _NEW_TOKEN,
    "request token payload invalid": "The X-Request-Token was not issued by this API: " + _NEW_TOKEN,
    "request token expired": "The X-Request-Token is older than its maximum age: " + _NEW_TOKEN,
    "request token issued in the future": "The X-Request-Token is dated in the future: " + _NEW_TOKEN,
    "request token revoked": "The X-Request-Token was revoked: " + _NEW_TOKEN,
    "request token not issued or revoked": "The X-Request-Token is not one this API issued, or it "
                                           "was revoked: " + _NEW_TOKEN,
    "request token issued before the client's floor": "The X-Request-Token was revoked with every "
                                                      "older token of this client: " + _NEW_TOKEN,
}


def key_id(key: bytes | str) -> str:
    """A non-secret fingerprint of a secret key (8 hex digits of SHA-256)."""
    data = key.encode("utf-8") if isinstance(key, str) else key
    return hashlib.sha256(b"wsgisec key id\0" + data).hexdigest()[:8]


class RequestTokens:
    """Issue and verify request tokens.

    ``secret_keys``: oldest first (strings, bytes or :class:`~wsgisec.settings.Secret`);
    the last one signs. ``max_age``: seconds a token stays valid after issue.
    ``clock``: injectable ``time.time`` for tests.
    """

    def __init__(self, secret_keys, *, max_age: int = 90 * 86400, store=None, clock=time.time):
        keys = [key.reveal() if hasattr(key, "reveal") else key for key in secret_keys]
        if not keys:
            raise ValueError("at least one secret key is needed to sign request tokens")
        self.keys = keys
        self.key_ids = [key_id(key) for key in keys]
        self.max_age = int(max_age)
        self.store = store
        self.clock = clock
        self._serializer = _Serializer(keys, salt=_SALT, clock=clock)
        self._verified: dict[bytes, dict] = {}

    def issue(self, client_id: str) -> tuple[str, dict]:
        """A new token for ``client_id`` and its (non-secret) record."""
        token_id = new_id("rt_")  # never begins with "-" (a CLI would take it for an option)
        token = self._serializer.dumps({"c": client_id, "k": self.key_ids[-1], "j": token_id})
        # The issue time as the token carries it (the clock may tick during dumps).
        issued = self._verify_signature(token)["issued"]
        record = {"client_id": client_id, "token_id": token_id, "key_id": self.key_ids[-1],
                  "issued": issued, "expires": issued + self.max_age}
        if self.store is not None:
            self.store.put(ISSUED, token_id, record, ttl=self.max_age, tags=[f"client:{client_id}"])
        return token, record

    def verify(self, token: str, *, check_revoked: bool = True) -> dict:
        """The claims ``{client_id, key_id, token_id, issued}`` or :class:`RequestTokenError`.

        May raise :class:`~wsgisec.store.StoreUnavailable` (the caller answers 503).
        """
        if not token or len(token) > _MAX_LENGTH or not _ALPHABET.issuperset(token):
            raise RequestTokenError("signature-invalid", "malformed request token")
        # A partner sends the same token with every request: remember the ones whose
        # signature verified (keyed by digest, so no token sits in the cache), and redo
        # only the time checks. Revocation is still read from the store every time.
        cache_key = hashlib.sha256(token.encode()).digest()
        claims = self._verified.get(cache_key)
        if claims is None:
            claims = self._verify_signature(token)
            if len(self._verified) >= _CACHE_SIZE:
                self._verified.clear()
            self._verified[cache_key] = claims
        now = self.clock()
        if now - claims["issued"] > self.max_age:
            raise RequestTokenError("expired", "request token expired")
        if claims["issued"] > now + 300:
            raise RequestTokenError("signature-invalid", "request token issued in the future")
        if check_revoked and self.store is not None:
            self._check_issued(claims)
        return dict(claims)

    def _check_issued(self, claims: dict) -> None:
        self.check_issued(claims, *self.store.get_many(self.records_for(claims)))

    @staticmethod
    def records_for(claims: dict) -> list:
        """The store reads :meth:`check_issued` judges: the issued record, the floor."""
        return [(ISSUED, claims["token_id"]), (FLOORS, claims["client_id"])]

    def check_issued(self, claims: dict, record: dict | None, floor: dict | None) -> None:
        """Refuse a token we did not issue, or revoked (``record`` and ``floor`` as read
        for :meth:`records_for`; a caller may read them with its own lookups)."""
        # Issue 11: the signature proves only that someone held a key. The record proves
        # we issued this token and nobody revoked it; the floor catches every token of
        # the client issued before a revocation, listed or not.
        if record is None or record.get("client_id") != claims["client_id"] or (
                record.get("issued") != claims["issued"]):
            revoked = record is None and self.store.get(REVOKED, claims["token_id"]) is not None
            raise RequestTokenError("unknown-key", "request token revoked" if revoked
                                    else "request token not issued or revoked")
        if floor is not None and claims["issued"] < floor.get("not_before", 0):
            raise RequestTokenError("unknown-key", "request token issued before the client's floor")

    def _verify_signature(self, token: str) -> dict:
        try:
            payload, issued = self._serializer.loads(token, max_age=self.max_age, return_timestamp=True)
        except SignatureExpired:
            raise RequestTokenError("expired", "request token expired") from None
        except BadSignature:
            # itsdangerous' message contains the signature: never log str(error).
            raise RequestTokenError("signature-invalid", "request token signature invalid") from None
        if not isinstance(payload, dict) or not all(isinstance(payload.get(k), str) for k in "ckj"):
            raise RequestTokenError("signature-invalid", "request token payload invalid")
        return {"client_id": payload["c"], "key_id": payload["k"], "token_id": payload["j"],
                "issued": int(issued.timestamp())}

    def revoke(self, token_id: str, client_id: str | None = None) -> None:
        """Refuse the token with this id from now on (on every worker)."""
        if self.store is None:
            raise ValueError("revoking a request token needs a store")
        record = self.store.get(ISSUED, token_id) or {}
        self.store.put(REVOKED, token_id, {"client_id": client_id or record.get("client_id"),
                                           "revoked": int(self.clock())}, ttl=self.max_age + 3600)
        self.store.delete(ISSUED, token_id)

    def revoke_client(self, client_id: str) -> int:
        """Refuse every token of ``client_id`` issued until now, including any minted
        offline with a key we still accept; returns how many issued records were revoked.

        Raises the client's issued-at floor to this second: a token issued later in the
        same second still verifies (itsdangerous dates tokens in whole seconds), and the
        listed ones of that second are revoked by id here.
        """
        if self.store is None:
            raise ValueError("revoking request tokens needs a store")
        now = int(self.clock())
        # After max_age every token older than the floor has expired anyway.
        self.store.put(FLOORS, client_id, {"not_before": now, "set": now}, ttl=self.max_age + 3600)
        count = 0
        for token_id, record in list(self.store.items(ISSUED)):
            if record.get("client_id") == client_id:
                self.revoke(token_id, client_id)
                count += 1
        return count


class _Serializer(URLSafeTimedSerializer):
    """itsdangerous with an injectable clock (as STYLE.md §timed asks)."""

    def __init__(self, keys, *, salt, clock):
        super().__init__(keys, salt=salt)
        self._clock = clock

    def make_signer(self, salt=None):
        signer = super().make_signer(salt)
        clock = self._clock
        signer.get_timestamp = lambda: int(clock())
        return signer
