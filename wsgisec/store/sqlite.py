"""The embedded default store: one SQLite file, safe for several processes on one host.

WAL journal mode lets readers run while one process writes; ``busy_timeout`` (the
store's ``?timeout=``, default :data:`~wsgisec.store.DEFAULT_TIMEOUT`) makes a writer
wait that long for the lock, then fail (StoreUnavailable: 503) rather than stall.

The pieces, one concept each: :mod:`.sqlite_schema` (tables, ``user_version``, proving a
file is a wsgisec store), :mod:`.sqlite_connection` (per-thread connections, the bounded
WAL, and the faults of the file: deleted, replaced, read-only, full, locked),
:mod:`.sqlite_events` (security events), and this module (keys, tags, counters,
housekeeping).

Opening the file is where a deployment mistake shows (a directory that cannot be made, a
file that is not a database, a read-only disk): every such failure is a
:class:`~wsgisec.store.StoreUnavailable` naming the path, so the layers answer 503 and log
it, never the server's generic 500. :meth:`SQLiteStore.check` proves the file is writable
and has this version's schema (``PRAGMA user_version`` = :data:`SCHEMA_VERSION`). A
missing file is created (with the schema) unless ``create=False`` (what
:func:`wsgisec.store.no_create` asks for: the operator's verbs).

Expiry is checked on every read, so an expired row is never returned; :meth:`purge`
removes such rows, and events older than :data:`EVENT_RETENTION`, then checkpoints the
WAL (TRUNCATE) and returns freed pages to the file system; it runs on about one write in
:data:`_PURGE_EVERY`, and at least every :data:`PURGE_INTERVAL` seconds of writes, so the
file follows the live data, not the traffic.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import time
from typing import Iterable

from . import DEFAULT_TIMEOUT, Store, StoreUnavailable, may_create, parse_timeout, url_options
from .sqlite_connection import Connections, transaction, translate
from .sqlite_events import EventRows
from .sqlite_schema import SCHEMA_VERSION  # noqa: F401 (importable from here, as before the split)
from . import sqlite_schema

# Purge expired rows on roughly one write in this many, so the file does not grow
# without anyone running a cron job.
_PURGE_EVERY = 1000
#: ... and at least this often (seconds) while there are writes.
PURGE_INTERVAL = 300

#: Security events older than this are dropped by purge() (the Redis store keeps the
#: newest 100,000 instead): long enough for the report collector and an investigation.
EVENT_RETENTION = 90 * 86400


@functools.lru_cache(maxsize=16)
def _select_many(count: int) -> str:
    return " UNION ALL ".join(f"SELECT {index}, value, expires FROM kv WHERE ns = ? AND key = ?"
                              for index in range(count))


class SQLiteStore(EventRows, Store):
    """One SQLite file (see the module docstring); ``timeout`` in seconds."""

    def __init__(self, path: str, *, timeout: float = DEFAULT_TIMEOUT, clock=time.time,
                 create: bool = True):
        self.path = path
        self.url = "sqlite:///" + path
        self.timeout = timeout
        self.clock = clock
        self._writes = 0
        self._purged = time.monotonic()
        self._connections = Connections(path, timeout=timeout, create=create)

    @classmethod
    def from_url(cls, url: str) -> "SQLiteStore":
        base, options = url_options(url)
        path = base[len("sqlite:///"):]
        if not path:
            raise ValueError("sqlite URL without a path; write sqlite:////absolute/path.sqlite")
        timeout = parse_timeout(options["timeout"]) if "timeout" in options else DEFAULT_TIMEOUT
        store = cls(path, timeout=timeout, create=may_create())
        store.url = url
        return store

    @property
    def on_fault(self):
        """``on_fault(kind, reason)``: told once when the file is deleted or replaced."""
        return self._connections.on_fault

    @on_fault.setter
    def on_fault(self, callback):
        self._connections.on_fault = callback

    def _connection(self) -> sqlite3.Connection:
        return self._connections.get()

    def _errors(self):
        return translate(self.path)

    def check(self) -> str:
        """The resolved path, once it is proven writable with the current schema."""
        with self._errors():
            connection = self._connection()
            sqlite_schema.verify(connection, self.path)
            # A real write, rolled back: proves the file, its directory (WAL) and the lock work.
            connection.execute("BEGIN IMMEDIATE")
            try:
                connection.execute("INSERT OR REPLACE INTO kv (ns, key, value) VALUES ('wsgisec.check', 'probe', '{}')")
            finally:
                connection.execute("ROLLBACK")
        return self.path

    def close(self) -> None:
        self._connections.close()

    # -- key/value ----------------------------------------------------------------

    def get(self, ns, key):
        with self._errors():
            row = self._connection().execute(
                "SELECT value, expires FROM kv WHERE ns = ? AND key = ?", (ns, key)).fetchone()
        if row is None or (row[1] is not None and row[1] <= self.clock()):
            return None
        return json.loads(row[0])

    def get_many(self, pairs):
        pairs = list(pairs)
        if len(pairs) < 2:
            return [self.get(ns, key) for ns, key in pairs]
        # One statement: each SELECT is a primary-key lookup (an OR or a row-value IN
        # would scan the table); the first column says which pair a row answers.
        with self._errors():
            rows = self._connection().execute(_select_many(len(pairs)),
                                              [part for pair in pairs for part in pair]).fetchall()
        now = self.clock()
        found = {index: json.loads(value) for index, value, expires in rows
                 if expires is None or expires > now}
        return [found.get(index) for index in range(len(pairs))]

    def put(self, ns, key, value, ttl=None, tags=()):
        expires = None if ttl is None else self.clock() + ttl
        with self._errors():
            connection = self._connection()
            with transaction(connection):
                connection.execute(
                    "INSERT OR REPLACE INTO kv (ns, key, value, expires) VALUES (?, ?, ?, ?)",
                    (ns, key, json.dumps(value, separators=(",", ":")), expires))
                self._tag(connection, ns, key, tags)
        self._maybe_purge()

    _ADD = ("INSERT INTO kv (ns, key, value, expires) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value, "
            "expires = excluded.expires WHERE kv.expires IS NOT NULL AND kv.expires <= ?")

    def add(self, ns, key, value, ttl=None, tags=()):
        now = self.clock()
        expires = None if ttl is None else now + ttl
        # Take over an expired row; leave a live one alone. One statement is atomic on
        # its own: the nonce path (no tags) needs no explicit transaction.
        args = (ns, key, json.dumps(value, separators=(",", ":")), expires, now)
        with self._errors():
            connection = self._connection()
            if not tags:
                won = connection.execute(self._ADD, args).rowcount == 1
            else:
                with transaction(connection):
                    won = connection.execute(self._ADD, args).rowcount == 1
                    if won:
                        self._tag(connection, ns, key, tags)
        self._maybe_purge()
        return won

    def update(self, ns, key, fields):
        with self._errors():
            connection = self._connection()
            with transaction(connection):
                row = connection.execute(
                    "SELECT value, expires FROM kv WHERE ns = ? AND key = ?", (ns, key)).fetchone()
                if row is None or (row[1] is not None and row[1] <= self.clock()):
                    return False
                value = json.loads(row[0])
                value.update(fields)
                connection.execute("UPDATE kv SET value = ? WHERE ns = ? AND key = ?",
                                   (json.dumps(value, separators=(",", ":")), ns, key))
        return True

    def delete(self, ns, key):
        with self._errors():
            connection = self._connection()
            with transaction(connection):
                cursor = connection.execute("DELETE FROM kv WHERE ns = ? AND key = ?", (ns, key))
                connection.execute("DELETE FROM tags WHERE ns = ? AND key = ?", (ns, key))
        return cursor.rowcount > 0

    def delete_tagged(self, ns, tag):
        with self._errors():
            connection = self._connection()
            with transaction(connection):
                keys = [row[0] for row in connection.execute(
                    "SELECT key FROM tags WHERE ns = ? AND tag = ?", (ns, tag))]
                deleted = 0
                for key in keys:
                    deleted += connection.execute(
                        "DELETE FROM kv WHERE ns = ? AND key = ?", (ns, key)).rowcount
                    connection.execute("DELETE FROM tags WHERE ns = ? AND key = ?", (ns, key))
        return deleted

    def keys(self, ns):
        with self._errors():
            rows = self._connection().execute(
                "SELECT key FROM kv WHERE ns = ? AND (expires IS NULL OR expires > ?) ORDER BY key",
                (ns, self.clock())).fetchall()
        return [row[0] for row in rows]

    def items(self, ns):
        with self._errors():
            rows = self._connection().execute(
                "SELECT key, value FROM kv WHERE ns = ? AND (expires IS NULL OR expires > ?) "
                "ORDER BY key", (ns, self.clock())).fetchall()
        return iter([(key, json.loads(value)) for key, value in rows])

    @staticmethod
    def _tag(connection, ns, key, tags: Iterable[str]):
        connection.execute("DELETE FROM tags WHERE ns = ? AND key = ?", (ns, key))
        connection.executemany("INSERT OR IGNORE INTO tags (ns, tag, key) VALUES (?, ?, ?)",
                               [(ns, tag, key) for tag in tags])

    # -- counters -----------------------------------------------------------------

    def incr(self, ns, key, window):
        now = self.clock()
        with self._errors():
            row = self._connection().execute(
                "INSERT INTO counters (ns, key, count, expires) VALUES (?, ?, 1, ?) "
                "ON CONFLICT (ns, key) DO UPDATE SET "
                "count = CASE WHEN counters.expires <= ? THEN 1 ELSE counters.count + 1 END, "
                "expires = CASE WHEN counters.expires <= ? THEN excluded.expires "
                "ELSE counters.expires END "
                "RETURNING count", (ns, key, now + window, now, now)).fetchone()
        return row[0]

    # -- housekeeping -------------------------------------------------------------

    def purge(self):
        now = self.clock()
        with self._errors():
            connection = self._connection()
            with transaction(connection):
                removed = connection.execute(
                    "DELETE FROM kv WHERE expires IS NOT NULL AND expires <= ?", (now,)).rowcount
                connection.execute(
                    "DELETE FROM tags WHERE NOT EXISTS "
                    "(SELECT 1 FROM kv WHERE kv.ns = tags.ns AND kv.key = tags.key)")
                removed += connection.execute(
                    "DELETE FROM counters WHERE expires <= ?", (now,)).rowcount
                removed += connection.execute(
                    "DELETE FROM events WHERE time < ?", (now - EVENT_RETENTION,)).rowcount
            # Give the space back: pages freed above (auto_vacuum=INCREMENTAL files), and
            # the WAL cut to zero when no reader holds it (else it is retried next time).
            connection.executescript("PRAGMA incremental_vacuum;")  # execute() would free one page only
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._purged = time.monotonic()
        return removed

    def _maybe_purge(self):
        self._writes += 1
        if self._writes % _PURGE_EVERY == 0 or time.monotonic() - self._purged >= PURGE_INTERVAL:
            self._purged = time.monotonic()
            try:
                self.purge()
            except StoreUnavailable:  # the write itself succeeded; housekeeping retries later
                pass
