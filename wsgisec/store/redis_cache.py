"""Server-assisted client-side caching of read-mostly records (Redis tracking, RESP3).

Why (issue 13): every signed, bearer-authenticated request read five records from Redis
(the access token, the request token's record and its client's floor, the signing key,
the nonce epoch), each a network round trip, although they change only when an operator
or a partner issues, rotates or revokes something. Here a worker keeps the records it
read, and Redis tells it the moment one of them changes, so that most lookups cost no
round trip and a revocation still takes effect at once on every host.

How: one dedicated connection per process speaks RESP3 with ``CLIENT TRACKING ON``.
A cached namespace's records are read *on that connection* (``GET`` with ``PTTL``, one
round trip), so the server remembers that this connection holds them; when any client
on any host changes or deletes one of them (a script's writes and expiry included),
the server pushes an ``invalidate`` message on the same connection. The stream is one
TCP connection, so a push for a write that followed our read always arrives after our
read's reply. Before every cache hit the pending pushes are read (a non-blocking poll).
A write this process makes itself drops its own copy at once as well.

Fail closed: the cache is used only while the tracking connection is known to be alive.

* Connection lost (the server closed it, restarted, a failover's ``CLIENT KILL``, a read
  error, a ``fork()``): every cached record is dropped, the next read reconnects and
  asks the server again; if it cannot, the read fails (StoreUnavailable, 503).
* Silence: a connection cut off without being closed would deliver no pushes. When
  nothing was heard from the server for :data:`HEARTBEAT` seconds, the next hit first
  sends ``PING`` on the tracking connection (the pushes sent before its ``PONG`` are read
  on the way); a ping that fails or times out drops the cache. A host cut off in silence
  serves its cached records for at most that long plus the store timeout.
* ``FLUSHDB``/``FLUSHALL`` push a null invalidation: everything is dropped.

What "at once" means across hosts: by the time the revoking host hears its write
acknowledged, Redis has queued the invalidation to every other host; a request that
reaches another host within the one-way network delay after that may still pass, as a
request whose uncached ``GET`` was already on its way would. Records that are absent are
not cached (an unknown token costs a round trip, as before) except where absence is the
usual answer (:data:`ABSENT_CACHED`), and a cached record lives
no longer than its key's TTL, nor :data:`MAX_AGE`.

Where: plain ``redis://``, ``rediss://`` and ``unix://`` stores. Not on Sentinel or
Cluster stores (there the store reads Redis on every call, as before): a Sentinel
failover and a Cluster's resharding move keys to servers this connection does not track.
``?cache=off`` in the URL turns it off everywhere.
"""

from __future__ import annotations

import os
import threading
import time

from redis.exceptions import ConnectionError as LostConnection

__all__ = ["TrackedCache", "CACHED_NAMESPACES", "ABSENT_CACHED", "HEARTBEAT", "MAX_AGE", "MAX_ENTRIES"]

#: Namespaces whose records are cached: read on every request, written rarely.
CACHED_NAMESPACES = frozenset({"tokens", "request_tokens", "request_token_floors", "signing_keys", "clients"})
#: Namespaces where a missing record is the usual answer (a client without a revocation
#: floor): their absence is cached too (the server tracks a key read while missing, and
#: pushes when it is created). Elsewhere an absent record is not kept: a caller could
#: otherwise fill the cache with made-up keys.
ABSENT_CACHED = frozenset({"request_token_floors"})
#: Seconds of silence from the server after which a cache hit first pings it.
HEARTBEAT = 1.0
#: Seconds a record is kept at most (then read again), whatever its TTL.
MAX_AGE = 300.0
#: Records kept per process; beyond that the cache starts afresh (never unbounded).
MAX_ENTRIES = 10_000


class TrackedCache:
    """The cache of one :class:`~wsgisec.store.redis.RedisStore` (plain Redis only).

    ``connection_factory()`` returns a new, unconnected redis-py connection speaking
    RESP3. :meth:`get` raises redis-py's errors (the store turns them into
    StoreUnavailable); after any error the cache is empty and unused until a new
    tracking connection is up.
    """

    def __init__(self, connection_factory, *, heartbeat: float = HEARTBEAT, max_age: float = MAX_AGE,
                 max_entries: int = MAX_ENTRIES, clock=time.monotonic):
        self._factory = connection_factory
        self.heartbeat, self.max_age, self.max_entries, self.clock = heartbeat, max_age, max_entries, clock
        self._lock = threading.Lock()
        self._connection = None
        self._pid = os.getpid()
        self._entries: dict[str, tuple[bytes, float]] = {}  # key -> (raw value, deadline)
        self._heard = 0.0
        #: Hits, misses and dropped connections of this process (for tests and benchmarks).
        self.hits = self.misses = self.resets = 0

    def get(self, name: str, keep_absent: bool = False) -> bytes | None:
        """The raw value of key ``name``: from the cache when it is valid, else read (and
        tracked) on the tracking connection. ``keep_absent``: remember a missing key too."""
        with self._lock:
            try:
                try:
                    connection = self._ready()
                except LostConnection:
                    # Closed under us (CLIENT KILL, a restart): nothing cached survives
                    # it; one fresh connection, and the record is read from the server.
                    self._drop()
                    connection = self._connect()
                entry = self._entries.get(name)
                now = self.clock()
                if entry is not None and entry[1] > now:
                    self.hits += 1
                    return entry[0]
                self.misses += 1
                connection.send_packed_command(connection.pack_commands([("GET", name), ("PTTL", name)]))
                raw = connection.read_response()
                ttl = connection.read_response()
                self._heard = self.clock()
            except BaseException:
                self._drop()
                raise
            if raw is not None or keep_absent:
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()
                left = self.max_age if not isinstance(ttl, int) or ttl < 0 else min(self.max_age, ttl / 1000)
                self._entries[name] = (raw, now + left)
            return raw

    def invalidate(self, name: str | None = None) -> None:
        """Forget ``name`` (None: everything): this process changed it."""
        with self._lock:
            if name is None:
                self._entries.clear()
            else:
                self._entries.pop(name, None)

    def close(self) -> None:
        with self._lock:
            self._drop()

    # -- the tracking connection -------------------------------------------------------

    def _ready(self):
        """The live tracking connection, every push sent so far applied (under the lock)."""
        if self._pid != os.getpid():  # a forked child: the parent's socket is not ours
            self._connection, self._entries, self._pid = None, {}, os.getpid()
        connection = self._connection
        if connection is None:
            return self._connect()
        while connection.can_read(timeout=0):
            connection.read_response(push_request=True)
            self._heard = self.clock()
        if self.clock() - self._heard > self.heartbeat:
            connection.send_command("PING")
            connection.read_response()  # pushes sent before the PONG are applied first
            self._heard = self.clock()
        return connection

    def _connect(self):
        self._entries.clear()
        connection = self._factory()
        try:
            connection.connect()
            parser = connection._parser  # redis-py's RESP3 parser (as its own cache uses it)
            parser.set_invalidation_push_handler(self._pushed)
            connection.send_command("CLIENT", "TRACKING", "ON")
            connection.read_response()
        except BaseException:
            connection.disconnect()
            raise
        self._connection, self._heard = connection, self.clock()
        return connection

    def _pushed(self, message) -> None:
        """``["invalidate", [keys] | None]``, applied while the lock is held."""
        keys = message[1] if len(message) > 1 else None
        if keys is None:
            self._entries.clear()
            return
        for key in keys:
            self._entries.pop(key.decode() if isinstance(key, bytes) else key, None)

    def _drop(self) -> None:
        """Fail closed: without the connection nothing cached can be trusted."""
        self._entries.clear()
        connection, self._connection = self._connection, None
        if connection is not None:
            self.resets += 1
            try:
                connection.disconnect()
            except Exception:  # noqa: BLE001 - it is being thrown away
                pass
