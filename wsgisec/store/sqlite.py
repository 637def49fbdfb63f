"""The embedded default store: one SQLite file, safe for several processes on one host.

WAL journal mode lets readers run while one process writes; ``busy_timeout`` makes a
writer wait for the lock instead of failing. Each thread gets its own connection
(sqlite3 connections must not be shared between threads), and a forked worker opens
new ones (:func:`wsgisec.store.open_store` is keyed by process id).

Opening the file is where a deployment mistake shows (a directory that cannot be made, a
file that is not a database, a read-only disk): every such failure is a
:class:`~wsgisec.store.StoreUnavailable` naming the path, so the layers answer 503 and log
it, never the server's generic 500. :meth:`SQLiteStore.check` proves the file is writable
and has this version's schema (``PRAGMA user_version`` = :data:`SCHEMA_VERSION`).

Expiry is checked on every read, so an expired row is never returned; :meth:`purge`
removes such rows, and events older than :data:`EVENT_RETENTION`, and is called on about
one write in a thousand.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from typing import Iterable

from . import Store, StoreUnavailable

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    ns TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, expires REAL,
    PRIMARY KEY (ns, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tags (
    ns TEXT NOT NULL, tag TEXT NOT NULL, key TEXT NOT NULL,
    PRIMARY KEY (ns, tag, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS counters (
    ns TEXT NOT NULL, key TEXT NOT NULL, count INTEGER NOT NULL, expires REAL NOT NULL,
    PRIMARY KEY (ns, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY, time REAL NOT NULL, kind TEXT NOT NULL,
    data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_time ON events (time);
"""

#: ``PRAGMA user_version`` of a file with the schema above; a newer number means a newer
#: wsgisec wrote the file, and this one must not guess at it.
SCHEMA_VERSION = 1
_COLUMNS = {"kv": ["ns", "key", "value", "expires"], "tags": ["ns", "tag", "key"],
            "counters": ["ns", "key", "count", "expires"], "events": ["id", "time", "kind", "data"]}

# Purge expired rows on roughly one write in this many, so the file does not grow
# without anyone running a cron job.
_PURGE_EVERY = 1000

#: Security events older than this are dropped by purge() (the Redis store keeps the
#: newest 100,000 instead): long enough for the report collector and an investigation.
EVENT_RETENTION = 90 * 86400


class SQLiteStore(Store):
    def __init__(self, path: str, *, timeout: float = 5.0, clock=time.time):
        self.path = path
        self.url = "sqlite:///" + path
        self.timeout = timeout
        self.clock = clock
        self._local = threading.local()
        self._writes = 0
        directory = os.path.dirname(os.path.abspath(path))
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as error:
            # e.g. a path below a file, or a read-only disk: fail closed, with the path.
            raise StoreUnavailable(f"sqlite store {path}: cannot create {directory}: "
                                   f"{error.strerror or error}") from error
        with self._errors():
            connection = self._connection()
            connection.executescript(_SCHEMA)
            if connection.execute("PRAGMA user_version").fetchone()[0] == 0:
                connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @classmethod
    def from_url(cls, url: str) -> "SQLiteStore":
        path = url[len("sqlite:///"):]
        if not path:
            raise ValueError("sqlite URL without a path; write sqlite:////absolute/path.sqlite")
        return cls(path)

    # -- connections --------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            # isolation_level=None: autocommit; we open explicit transactions where
            # several statements must be atomic.
            connection = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None,
                                         check_same_thread=True)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")
            self._local.connection = connection
        return connection

    def _errors(self):
        return _TranslateErrors(self.path)

    def check(self) -> str:
        """The resolved path, once it is proven writable with the current schema."""
        with self._errors():
            connection = self._connection()
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreUnavailable(f"sqlite store {self.path}: schema version {version} was written by a "
                                       f"newer wsgisec (this one knows {SCHEMA_VERSION}); upgrade wsgisec")
            for table, columns in _COLUMNS.items():
                found = [row[1] for row in connection.execute(f"PRAGMA table_info({table})")]
                if found != columns:
                    raise StoreUnavailable(f"sqlite store {self.path}: table {table} has columns {found}, "
                                           f"expected {columns}; not a wsgisec {SCHEMA_VERSION} store")
            # A real write, rolled back: proves the file, its directory (WAL) and the lock work.
            connection.execute("BEGIN IMMEDIATE")
            try:
                connection.execute("INSERT OR REPLACE INTO kv (ns, key, value) VALUES ('wsgisec.check', 'probe', '{}')")
            finally:
                connection.execute("ROLLBACK")
        return self.path

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    # -- key/value ----------------------------------------------------------------

    def get(self, ns, key):
        with self._errors():
            row = self._connection().execute(
                "SELECT value, expires FROM kv WHERE ns = ? AND key = ?", (ns, key)).fetchone()
        if row is None or (row[1] is not None and row[1] <= self.clock()):
            return None
        return json.loads(row[0])

    def put(self, ns, key, value, ttl=None, tags=()):
        expires = None if ttl is None else self.clock() + ttl
        with self._errors():
            connection = self._connection()
            with _transaction(connection):
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
                with _transaction(connection):
                    won = connection.execute(self._ADD, args).rowcount == 1
                    if won:
                        self._tag(connection, ns, key, tags)
        self._maybe_purge()
        return won

    def update(self, ns, key, fields):
        with self._errors():
            connection = self._connection()
            with _transaction(connection):
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
            with _transaction(connection):
                cursor = connection.execute("DELETE FROM kv WHERE ns = ? AND key = ?", (ns, key))
                connection.execute("DELETE FROM tags WHERE ns = ? AND key = ?", (ns, key))
        return cursor.rowcount > 0

    def delete_tagged(self, ns, tag):
        with self._errors():
            connection = self._connection()
            with _transaction(connection):
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

    # -- events -------------------------------------------------------------------

    def record_event(self, event):
        with self._errors():
            self._connection().execute(
                "INSERT INTO events (time, kind, data) VALUES (?, ?, ?)",
                (event["time"], event["kind"], json.dumps(event, separators=(",", ":"))))
        self._maybe_purge()

    def events(self, since=None, until=None, kinds=None, limit=1000):
        query = "SELECT data FROM events WHERE 1 = 1"
        args: list = []
        if since is not None:
            query += " AND time >= ?"
            args.append(since)
        if until is not None:
            query += " AND time < ?"
            args.append(until)
        kinds = list(kinds or ())
        if kinds:
            query += f" AND kind IN ({', '.join('?' * len(kinds))})"
            args.extend(kinds)
        query += " ORDER BY id DESC LIMIT ?"
        args.append(int(limit))
        with self._errors():
            rows = self._connection().execute(query, args).fetchall()
        return [json.loads(row[0]) for row in reversed(rows)]

    # -- housekeeping -------------------------------------------------------------

    def purge(self):
        now = self.clock()
        with self._errors():
            connection = self._connection()
            with _transaction(connection):
                removed = connection.execute(
                    "DELETE FROM kv WHERE expires IS NOT NULL AND expires <= ?", (now,)).rowcount
                connection.execute(
                    "DELETE FROM tags WHERE NOT EXISTS "
                    "(SELECT 1 FROM kv WHERE kv.ns = tags.ns AND kv.key = tags.key)")
                removed += connection.execute(
                    "DELETE FROM counters WHERE expires <= ?", (now,)).rowcount
                removed += connection.execute(
                    "DELETE FROM events WHERE time < ?", (now - EVENT_RETENTION,)).rowcount
        return removed

    def _maybe_purge(self):
        self._writes += 1
        if self._writes % _PURGE_EVERY == 0:
            self.purge()


    # -- bounded event growth (additive; see Store.record_event_aggregated) ---------

    _AGGREGATES = "events.aggregate"  # kv: aggregation key -> {"id": events row or None}

    def record_event_aggregated(self, event, key, window, cap):
        now = self.clock()
        with self._errors():
            connection = self._connection()
            with _transaction(connection):
                if key is not None:
                    row = connection.execute(
                        "SELECT value FROM kv WHERE ns = ? AND key = ? AND expires > ?",
                        (self._AGGREGATES, key, now)).fetchone()
                    if row is not None:
                        event_id = json.loads(row[0]).get("id")
                        if event_id is None:
                            return "capped"
                        # One row, its count raised in place: a flood is an UPDATE, not rows.
                        if connection.execute(
                                "UPDATE events SET data = json_set(data, '$.count', "
                                "coalesce(json_extract(data, '$.count'), 1) + 1, '$.last_time', ?) "
                                "WHERE id = ?", (event["time"], event_id)).rowcount:
                            return "counted"
                rows = connection.execute(
                    "INSERT INTO counters (ns, key, count, expires) VALUES ('events', 'rows', 1, ?) "
                    "ON CONFLICT (ns, key) DO UPDATE SET "
                    "count = CASE WHEN counters.expires <= ? THEN 1 ELSE counters.count + 1 END, "
                    "expires = CASE WHEN counters.expires <= ? THEN excluded.expires "
                    "ELSE counters.expires END RETURNING count", (now + window, now, now)).fetchone()[0]
                event_id = None
                if rows <= cap:
                    event_id = connection.execute(
                        "INSERT INTO events (time, kind, data) VALUES (?, ?, ?)",
                        (event["time"], event["kind"], json.dumps(event, separators=(",", ":")))).lastrowid
                if key is not None:
                    connection.execute(
                        "INSERT OR REPLACE INTO kv (ns, key, value, expires) VALUES (?, ?, ?, ?)",
                        (self._AGGREGATES, key, json.dumps({"id": event_id}), now + window))
        self._maybe_purge()
        return "stored" if event_id is not None else "capped"

    def purge_events(self, before):
        with self._errors():
            return self._connection().execute("DELETE FROM events WHERE time < ?", (before,)).rowcount


class _transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on error (autocommit connections)."""

    __slots__ = ("connection",)

    def __init__(self, connection):
        self.connection = connection

    def __enter__(self):
        self.connection.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.connection.execute("COMMIT")
        else:
            self.connection.execute("ROLLBACK")
        return False


class _TranslateErrors:
    """Turn sqlite3 errors into StoreUnavailable (naming the file) so callers fail closed."""

    __slots__ = ("path",)

    def __init__(self, path: str):
        self.path = path

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and issubclass(exc_type, sqlite3.Error):
            raise StoreUnavailable(f"sqlite store {self.path}: {exc}") from exc
        return False
