"""Per-client ``hmac-sha256`` signing keys (RFC 9421 §3.3.3), kept in the store.

A key is 32 random bytes, stored and shown once as base64 (namespace ``signing_keys``,
keyed by keyid, tagged ``client:<id>`` so disabling a client deletes them). Issuing a new
key gives the client's older keys a grace period, after which they are refused: the
partner can switch without downtime. Operator side only; the layer reads the store.
"""

from __future__ import annotations

import base64
import secrets
import time

from .. import httpsig
from ..credentials import SIGNING_KEYS, new_id

__all__ = ["SIGNING_KEYS", "signing_keys_of", "issue_signing_key"]


def signing_keys_of(store, client_id: str) -> list[tuple[str, dict]]:
    """``(keyid, record)`` of every live signing key of ``client_id`` (operators only)."""
    return [(keyid, record) for keyid, record in store.items(SIGNING_KEYS)
            if record.get("client_id") == client_id]


def issue_signing_key(store, client_id: str, *, grace: int = 86400, clock=time.time) -> dict:
    """A new hmac-sha256 key for ``client_id``; older keys stay valid for ``grace`` seconds.

    Returns ``{"keyid", "key" (base64, shown once), "client_id", "created", "algorithm"}``.
    ``grace=0`` retires the older keys at once.
    """
    now = int(clock())
    for keyid, record in signing_keys_of(store, client_id):
        if grace <= 0:
            store.delete(SIGNING_KEYS, keyid)
        elif record.get("expires") is None or record["expires"] > now + grace:
            store.put(SIGNING_KEYS, keyid, dict(record, expires=now + grace), ttl=grace,
                      tags=[f"client:{client_id}"])
    keyid = new_id("k_", 9)
    key = base64.b64encode(secrets.token_bytes(32)).decode("ascii")
    store.put(SIGNING_KEYS, keyid, {"client_id": client_id, "key": key, "created": now, "expires": None},
              tags=[f"client:{client_id}"])
    return {"keyid": keyid, "key": key, "client_id": client_id, "created": now,
            "algorithm": httpsig.ALGORITHM}
