"""The nonce epoch: replay protection that survives a store which lost its nonces.

Threat (issue 14): the used nonces live in the store with a TTL. When the store loses them
(Redis restarted without persistence, restored from an older snapshot, an SQLite file
replaced by a backup, rows deleted), a request captured in the last ``max_clock_skew``
could be replayed: its ``created`` is still in the window and its nonce is "new" again.

Defence: the store holds one marker, namespace :data:`EPOCH_NS`, key :data:`EPOCH_KEY`,
``{"since": t}``, written once with ``add`` (insert-if-absent, atomic across workers and
hosts) and no TTL. Nonces recorded since ``since`` are in the store; so a signature whose
``created`` is older than ``since`` cannot be told from a replay and is refused
(``expired``: sign again). The marker is read on every request that carries a nonce, in
the same store step that adds the nonce (:meth:`NonceEpoch.add_nonce`, one round trip
on Redis).

When the marker is missing, the store lost data or never had one:

* this process saw a marker before: the store lost its data under a running server. A new
  marker ``since = now``, one critical ``nonce-epoch-reset`` event, and every signature
  created before now is refused;
* this process never saw one, and the request's signing key is older than the replay
  window: the store is not new (it lost its nonces before we started, or predates this
  check). The same: ``since = now`` and the critical event;
* never saw one and the key is newer than the window (a new store): ``since`` is set
  ``max_clock_skew`` back, so nothing partners signed is refused; nothing can be lost.

What it cannot see: a restored snapshot that already holds the marker, read by a process
started after the restore, with a key older than the window. Hence README: give Redis
AOF persistence (``appendonly yes``, ``appendfsync everysec``) so a restart loses at most
a second, and restart the API servers *before* the store comes back from a snapshot, or
delete the marker (``nonce_epoch``/``epoch``) when restoring, which turns on the refusal.
"""

from __future__ import annotations

import logging

from .. import events

__all__ = ["NonceEpoch", "EPOCH_NS", "EPOCH_KEY", "NONCE_EPOCH_RESET"]

EPOCH_NS = "nonce_epoch"
EPOCH_KEY = "epoch"
#: Event kind: the store had lost its nonces; signatures created before now are refused.
NONCE_EPOCH_RESET = "nonce-epoch-reset"

_log = events.logger_for("signed_requests")
_info = logging.getLogger("wsgisec.signed_requests")


class NonceEpoch:
    """The epoch of one layer's store (per process: remembers whether it saw a marker)."""

    def __init__(self, store, *, window: int):
        self.store = store
        self.window = int(window)
        self.seen = False

    def since(self, environ, now: float, key_created) -> float:
        """The time before which signatures are refused (may write the marker)."""
        record = self.store.get(EPOCH_NS, EPOCH_KEY)
        if record is None:
            record = self._start(environ, now, key_created)
        self.seen = True
        return _since(record, now)  # an unreadable marker: fail closed, as if just reset

    def add_nonce(self, environ, now, key_created, created, ns, key, value, ttl) -> bool | None:
        """Consume a nonce unless its signature predates the epoch: True added, False
        already used (a replay), None ``created`` is before the epoch (refuse, sign again).

        One store step when the marker is there and older than ``created`` (the usual
        case: one round trip on Redis, :meth:`~wsgisec.store.Store.add_since`); else the
        marker is read (and written if missing) by :meth:`since`, then the nonce added.
        """
        added = self.store.add_since(ns, key, value, ttl, marker=(EPOCH_NS, EPOCH_KEY), created=created)
        if added is not None:
            self.seen = True
            return added
        if created is not None and created < self.since(environ, now, key_created):
            return None
        return self.store.add(ns, key, value, ttl=ttl)

    def _start(self, environ, now, key_created) -> dict:
        old_key = not isinstance(key_created, (int, float)) or key_created < now - self.window
        lost = self.seen or old_key
        mine = {"since": now if lost else now - self.window}
        if not self.store.add(EPOCH_NS, EPOCH_KEY, mine):
            # Another worker or host wrote it first. If we know nonces were lost, an older
            # epoch (written by a process that took the store for new) would reopen the
            # window: keep the later of the two, in the store too.
            theirs = self.store.get(EPOCH_NS, EPOCH_KEY) or mine
            if lost and _since(theirs, now) < mine["since"]:
                self.store.put(EPOCH_NS, EPOCH_KEY, mine)
                theirs = mine
            return theirs
        if lost:
            why = ("the store lost its nonces under a running server" if self.seen else
                   "the store has signing keys older than the replay window but no nonce epoch")
            events.emit(environ, NONCE_EPOCH_RESET, why, severity="critical", store=self.store,
                        logger=_log, detail={"refused_created_before": int(now)})
        else:
            _info.info("nonce epoch started: a new store")
        return mine


def _since(record, default: float) -> float:
    try:
        return float(record["since"])
    except (KeyError, TypeError, ValueError):
        return default
