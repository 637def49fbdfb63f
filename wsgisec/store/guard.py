"""What stands between the layers and a backend: circuit breakers and an event spool.

Threat: a store that hangs (a frozen Redis, an SQLite file locked by another process)
must not take the server with it. The backend's timeout (``?timeout=``, a layer's
``store_timeout``) bounds one call; the breaker bounds the many:

* after :data:`FAILURES` failures within :data:`WINDOW` seconds a breaker *opens*: every
  call raises :class:`CircuitOpen` (a :class:`~wsgisec.store.StoreUnavailable`, so the
  layers answer their usual 503 with an incident id) at once, without touching the
  backend. Reads and writes have a breaker each, so a write lock held elsewhere leaves
  token lookups working (SQLite WAL readers are not blocked) while nonce writes fail fast;
* after :data:`COOL_DOWN` seconds one call is let through as a probe (the others still fail
  at once); if it succeeds the breaker closes, if not it opens for another cool-down.

Fail closed throughout: an open breaker refuses, it never lets a request pass unchecked.

Security events that the store cannot take (``record_event_aggregated``, the path of
:func:`wsgisec.events.emit`) are kept in a bounded in-process spool of
:data:`SPOOL_SIZE` events and written, oldest first, after the next call that succeeds;
beyond that the oldest waiting event is dropped and :attr:`GuardedStore.dropped_events`
counts it. Every event not stored logs its incident id and the cause to ``wsgisec.ops``
(the event itself is on ``wsgisec.events`` already). ``record_event`` is *not* spooled:
the reports endpoint uses it to commit a report before acknowledging it, so its failure
must reach the caller as a 503.

A backend may report a fault of its own (an SQLite file deleted or replaced under the
server) through ``on_fault(kind, reason)``: the guard turns it into one ``critical``
event (``store.file-deleted``, ``store.file-replaced``), spooled until the store is back.
"""

from __future__ import annotations

import collections
import logging
import threading
import time

from . import Store, StoreUnavailable, redact_url

__all__ = ["GuardedStore", "Circuit", "CircuitOpen", "FAILURES", "WINDOW", "COOL_DOWN", "SPOOL_SIZE"]

#: Failures within WINDOW seconds that open a breaker (successes in between do not
#: reset the count: a store whose writes all fail while reads work is still failing).
FAILURES = 5
WINDOW = 5.0
#: Seconds the breaker stays open before one probe is let through.
COOL_DOWN = 2.0
#: Events kept in memory while the store is down (per process); older ones are dropped.
SPOOL_SIZE = 1000
# Spooled events written per successful call, so one request never pays for them all.
_FLUSH_BATCH = 10

_ops = logging.getLogger("wsgisec.ops")


class CircuitOpen(StoreUnavailable):
    """The breaker is open: the store failed repeatedly and is not being asked now."""


class Circuit:
    """One breaker: opens after ``failures`` failures within ``window`` seconds."""

    def __init__(self, name: str, url: str, *, failures: int, window: float, cool_down: float, clock):
        self.name, self.url = name, url
        self.failures, self.window, self.cool_down, self.clock = failures, window, cool_down, clock
        self._lock = threading.Lock()
        self._recent: collections.deque = collections.deque(maxlen=failures)  # failure times
        self._open_until = 0.0
        self._probing = False
        self._last_error = ""

    @property
    def is_open(self) -> bool:
        return bool(self._open_until)

    def expire_cool_down(self) -> None:
        """Let the next call probe now (what waiting out the cool-down would do)."""
        if self._open_until:
            self._open_until = self.clock() - 1

    def admit(self) -> bool:
        """True if this call may reach the backend as the probe; CircuitOpen if not at all."""
        if not self._open_until:
            return False
        with self._lock:
            if not self._open_until:
                return False
            if self._probing or self.clock() < self._open_until:
                raise CircuitOpen(f"store {redact_url(self.url)}: {self.name} not tried after {self.failures} "
                                  f"failures within {self.window:g}s (last: {self._last_error}); next try "
                                  f"within {self.cool_down:g}s")
            self._probing = True
            return True

    def succeeded(self, probe: bool) -> None:
        if not probe:
            return  # a success between failures does not hide a store that keeps failing
        with self._lock:
            self._recent.clear()
            self._open_until, self._probing = 0.0, False
        _ops.warning("store %s answers %s again: circuit closed", redact_url(self.url), self.name)

    def failed(self, error: Exception, probe: bool) -> None:
        now = self.clock()
        with self._lock:
            self._recent.append(now)
            self._last_error = str(error)
            self._probing = False
            opening = probe or (not self._open_until and len(self._recent) == self.failures
                                and now - self._recent[0] <= self.window)
            if opening:
                self._open_until = now + self.cool_down
        if opening and not probe:
            _ops.error("store %s: %s failed %d times within %gs (last: %s): failing fast for %gs, then one probe",
                       redact_url(self.url), self.name, self.failures, self.window, error, self.cool_down)

    def release(self, probe: bool) -> None:
        """The probe ended without a store answer either way (a bug, KeyboardInterrupt)."""
        if probe:
            with self._lock:
                self._probing = False


class GuardedStore(Store):
    """``backend`` behind two circuit breakers (reads, writes), with a spool for events.

    Reads and writes trip separately: an SQLite file whose write lock another process
    holds still serves token lookups (WAL readers are not blocked), while every write
    fails at once instead of waiting out the busy timeout.
    """

    def __init__(self, backend: Store, *, failures: int = FAILURES, window: float = WINDOW,
                 cool_down: float = COOL_DOWN, spool_size: int = SPOOL_SIZE, clock=time.monotonic):
        self.backend = backend
        self.url = backend.url
        self.spool_size, self.clock = spool_size, clock
        circuit = dict(failures=failures, window=window, cool_down=cool_down, clock=clock)
        self.reads = Circuit("reads", self.url, **circuit)
        self.writes = Circuit("writes", self.url, **circuit)
        #: Events dropped because the spool was full (this process, since start).
        self.dropped_events = 0
        self._spool: collections.deque = collections.deque()
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        if hasattr(backend, "on_fault"):
            backend.on_fault = self._backend_fault

    def __getattr__(self, name):  # the backend's own attributes (path, client, clock...)
        return getattr(self.backend, name)

    @property
    def spooled_events(self) -> int:
        """Events waiting in the spool for the store to return."""
        return len(self._spool)

    def _call(self, circuit: Circuit, name, *args, **kwargs):
        probe = circuit.admit()
        try:
            function = getattr(self.backend, name) if isinstance(name, str) else name
            result = function(*args, **kwargs)
        except StoreUnavailable as error:
            circuit.failed(error, probe)
            raise
        except BaseException:
            circuit.release(probe)
            raise
        circuit.succeeded(probe)
        if self._spool and not self.writes.is_open:
            self._flush()  # at most _FLUSH_BATCH writes on this request's thread
        return result

    # -- the interface, each call through the breaker ------------------------------

    def get(self, ns, key):
        return self._call(self.reads, "get", ns, key)

    def get_many(self, pairs):
        return self._call(self.reads, "get_many", pairs)

    def put(self, ns, key, value, ttl=None, tags=()):
        return self._call(self.writes, "put", ns, key, value, ttl, tags)

    def add(self, ns, key, value, ttl=None, tags=()):
        return self._call(self.writes, "add", ns, key, value, ttl, tags)

    def update(self, ns, key, fields):
        return self._call(self.writes, "update", ns, key, fields)

    def add_since(self, ns, key, value, ttl=None, *, marker, created=None):
        return self._call(self.writes, "add_since", ns, key, value, ttl, marker=marker, created=created)

    def delete(self, ns, key):
        return self._call(self.writes, "delete", ns, key)

    def delete_tagged(self, ns, tag):
        return self._call(self.writes, "delete_tagged", ns, tag)

    def keys(self, ns):
        return self._call(self.reads, "keys", ns)

    def items(self, ns):
        # Read here, inside the breaker: a lazy iterator would fail outside it.
        return iter(self._call(self.reads, lambda: list(self.backend.items(ns))))

    def incr(self, ns, key, window):
        return self._call(self.writes, "incr", ns, key, window)

    def record_event(self, event):
        # Not spooled: the reports endpoint commits with it before acknowledging (2xx).
        return self._call(self.writes, "record_event", event)

    def events(self, since=None, until=None, kinds=None, limit=1000):
        return self._call(self.reads, "events", since, until, kinds, limit)

    def events_counted(self, since=None, until=None, kinds=None, limit=1000):
        return self._call(self.reads, "events_counted", since, until, kinds, limit)

    def purge(self):
        return self._call(self.writes, "purge")

    def purge_events(self, before):
        return self._call(self.writes, "purge_events", before)

    def check(self) -> str:
        return self.backend.check()  # the operator's explicit question: always ask the store

    def close(self) -> None:
        self.backend.close()

    def warnings(self) -> list[str]:
        return self.backend.warnings()

    # -- the spool -----------------------------------------------------------------

    def record_event_aggregated(self, event, key, window, cap):
        """The backend's answer, or ``"spooled"``/``"dropped"`` when it could not take it."""
        try:
            return self._call(self.writes, "record_event_aggregated", event, key, window, cap)
        except StoreUnavailable as error:
            return self._spool_event((event, key, window, cap), error)

    def _spool_event(self, entry, error) -> str:
        event = entry[0]
        with self._lock:
            dropped = None
            if len(self._spool) >= self.spool_size:
                dropped = self._spool.popleft()
                self.dropped_events += 1
            self._spool.append(entry)
            waiting, total = len(self._spool), self.dropped_events
        _ops.error("event %s (%s) not stored: %s; kept in the spool (%d waiting)",
                   event.get("incident_id"), event.get("kind"), error, waiting)
        if dropped is not None:
            _ops.error("event %s (%s) dropped: the spool is full (%d events); %d dropped since start",
                       dropped[0].get("incident_id"), dropped[0].get("kind"), self.spool_size, total)
            return "dropped"
        return "spooled"

    def _flush(self) -> None:
        """Write up to one batch of spooled events; one thread at a time, nobody waits."""
        if not self._flushing.acquire(blocking=False):
            return
        written = 0
        try:
            while self._spool and written < _FLUSH_BATCH:
                with self._lock:
                    if not self._spool:
                        break
                    entry = self._spool.popleft()
                try:
                    self.backend.record_event_aggregated(*entry)
                except StoreUnavailable as error:
                    with self._lock:
                        self._spool.appendleft(entry)
                    self.writes.failed(error, probe=False)
                    break
                written += 1
        finally:
            self._flushing.release()
        if written:
            _ops.warning("store %s: wrote %d spooled events (%d still waiting)",
                         redact_url(self.url), written, len(self._spool))

    # -- faults the backend detects itself -----------------------------------------

    def _backend_fault(self, kind: str, reason: str) -> None:
        from .. import events

        events.emit(None, kind, reason, severity="critical", store=self,
                    logger=events.logger_for("store"), detail={"store": redact_url(self.url)})
