"""The SQLite store's schema: what a wsgisec file holds, and how a file is proven to be one.

``PRAGMA user_version`` is :data:`SCHEMA_VERSION` in a file this version wrote; a higher
number means a newer wsgisec wrote it, and this one must not guess at it. A file that is
a database but not a wsgisec store (other tables, other columns) is refused, not
"repaired": the store would otherwise be silently emptied.
"""

from __future__ import annotations

import sqlite3

from . import StoreUnavailable

SCHEMA = """
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

#: ``PRAGMA user_version`` of a file with the schema above.
SCHEMA_VERSION = 1
COLUMNS = {"kv": ["ns", "key", "value", "expires"], "tags": ["ns", "tag", "key"],
           "counters": ["ns", "key", "count", "expires"], "events": ["id", "time", "kind", "data"]}


def create(connection: sqlite3.Connection) -> None:
    """Give a new (empty) file the schema; a file that has one is left alone."""
    if connection.execute("PRAGMA user_version").fetchone()[0] != 0:
        return
    connection.executescript(SCHEMA)
    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def verify(connection: sqlite3.Connection, path: str) -> None:
    """Raise StoreUnavailable unless the file has exactly this version's schema."""
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StoreUnavailable(f"sqlite store {path}: schema version {version} was written by a "
                               f"newer wsgisec (this one knows {SCHEMA_VERSION}); upgrade wsgisec")
    for table, columns in COLUMNS.items():
        found = [row[1] for row in connection.execute(f"PRAGMA table_info({table})")]
        if found != columns:
            raise StoreUnavailable(f"sqlite store {path}: table {table} has columns {found}, "
                                   f"expected {columns}; not a wsgisec {SCHEMA_VERSION} store")
