"""Client secrets this process verified recently, so that a partner renewing its token
is not hashed again (issue 14).

A partner asks for a token every ``access_token_ttl`` (15 minutes) with the same
secret. Without this, each renewal costs one argon2id check and competes for the
hashing bounds (:mod:`wsgisec.token_auth.hashing`) with whatever flood of bad
credentials is running, so a partner could be answered 503 for as long as the flood
lasts. With it, a renewal is checked with one HMAC (a lookup by its keyed digest), and
needs neither a hashing slot nor the failure budget. The same idea as Apache's
``mod_authn_socache``.

What is kept, in memory only and never in the store: for each verified (client id,
secret), ``HMAC-SHA256(k, client id || secret)`` with a key ``k`` drawn at random per
process, and the password hash the secret matched. So the cache holds nothing that
proves a secret outside this process, and a copy of the store is no easier to use.

A remembered secret counts only while the hash it matched is still one of the client's
live secrets in the record read for this request: rotating the secret (once its grace
period ends), or replacing a hash with a stronger one, takes effect at once, in every
process, without telling the cache. A disabled client is refused by the caller after
authentication, as before. Entries expire ``ttl`` seconds after their last use, and at
most ``size`` are kept (least recently used go first).
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import secrets
import threading
import time

__all__ = ["VerifiedSecrets", "DEFAULT_SIZE"]

#: Most (client id, secret) pairs one process remembers.
DEFAULT_SIZE = 4096


class VerifiedSecrets:
    """(client id, secret) pairs verified in this process within ``ttl`` seconds.

    ``ttl = 0`` remembers nothing (every request is hashed). Thread-safe.
    """

    def __init__(self, ttl: float, *, size: int = DEFAULT_SIZE, clock=time.monotonic):
        self.ttl, self.size, self.clock = float(ttl), int(size), clock
        self._key = secrets.token_bytes(32)
        self._entries: collections.OrderedDict = collections.OrderedDict()
        self._lock = threading.Lock()

    def _fingerprint(self, client_id: str, secret: str) -> bytes:
        message = client_id.encode("utf-8", "surrogatepass") + b"\0" + secret.encode("utf-8", "surrogatepass")
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def matched_hash(self, client_id: str, secret: str, live_hashes) -> str | None:
        """The live hash ``secret`` was verified against, if remembered; else None."""
        if not self.ttl:
            return None
        # Looked up by its keyed HMAC, as access tokens are looked up by digest in the
        # store: without the per-process key nobody can compute one, so the lookup's
        # timing tells an attacker nothing about the secret.
        key = (client_id, self._fingerprint(client_id, secret))
        now = self.clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            matched, expires = entry
            if expires <= now or matched not in live_hashes:
                del self._entries[key]
                return None
            self._entries[key] = (matched, now + self.ttl)
            self._entries.move_to_end(key)
            return matched

    def remember(self, client_id: str, secret: str, matched_hash: str) -> None:
        if not self.ttl:
            return
        key = (client_id, self._fingerprint(client_id, secret))
        with self._lock:
            self._entries[key] = (matched_hash, self.clock() + self.ttl)
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def forget(self, client_id: str) -> None:
        """Drop every entry of ``client_id`` (after this process disabled or rotated it)."""
        with self._lock:
            for key in [key for key in self._entries if key[0] == client_id]:
                del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)
