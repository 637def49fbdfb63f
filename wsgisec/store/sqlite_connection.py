"""The SQLite store's connections, and the faults of the file under them.

One connection per thread (sqlite3 connections must not be shared between threads); a
forked worker opens its own (:func:`wsgisec.store.open_store` is keyed by process id).
Each connection gets WAL mode, ``busy_timeout`` = the store's timeout (a writer waits
that long for another process's lock, then the call fails with StoreUnavailable: 503, not
a stalled thread), and a bounded write-ahead log: ``wal_autocheckpoint`` of
:data:`WAL_PAGES` pages and ``journal_size_limit`` of :data:`WAL_LIMIT` bytes, so the
log cannot fill a small volume (the store also checkpoints with TRUNCATE when it purges).

The file itself can go wrong under a running server; each case fails closed:

* *deleted* or *replaced* (another inode at the path): found by comparing the path's
  device and inode with those of the file the connections were opened on, at most every
  :data:`CHECK_EVERY` seconds. A deleted file is reported once (``on_fault``: a critical
  event) and every call fails until a valid wsgisec store is at the path again; then
  every thread reconnects to it. A file replaced by a valid store is reported and used.
  A running server never creates a new empty file: it would answer "no such client" for
  every client and token.
* *read-only*, *full* (SQLITE_READONLY, SQLITE_FULL), *locked* past the timeout: the
  sqlite3 error becomes StoreUnavailable naming the file; the next call tries again, so
  the store recovers when the fault clears.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import urllib.parse

from . import StoreUnavailable
from . import sqlite_schema as schema

#: Seconds between two checks that the path still holds the file we opened.
CHECK_EVERY = 1.0
#: WAL pages after which SQLite checkpoints on its own (4 KiB pages: 1 MiB).
WAL_PAGES = 256
#: Bytes the WAL file is cut back to after a checkpoint.
WAL_LIMIT = 1024 * 1024


class Connections:
    """Per-thread connections to one SQLite file, with the file's identity watched."""

    def __init__(self, path: str, *, timeout: float, create: bool, on_fault=None):
        self.path, self.timeout = path, timeout
        #: ``on_fault(kind, reason)``: called once when the file is deleted or replaced.
        self.on_fault = on_fault
        self._local = threading.local()
        self._lock = threading.Lock()
        self._generation = 0
        self._lost: str | None = None
        self._next_check = time.monotonic() + CHECK_EVERY
        self._open_first(create)

    def _open_first(self, create: bool) -> None:
        directory = os.path.dirname(os.path.abspath(self.path))
        if not create and not os.path.exists(self.path):
            raise StoreUnavailable(f"sqlite store {self.path}: no such file; create it with "
                                   "`wsgisec store init --config INI` (or start `wsgisec serve`)")
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as error:
            # e.g. a path below a file, or a read-only disk: fail closed, with the path.
            raise StoreUnavailable(f"sqlite store {self.path}: cannot create {directory}: "
                                   f"{error.strerror or error}") from error
        with translate(self.path):
            connection = self._connect("rwc" if create else "rw")
            if create:
                schema.create(connection)
            else:
                schema.verify(connection, self.path)
            self._identity = self._stat()
            self._local.connection, self._local.generation = connection, self._generation

    def _connect(self, mode: str) -> sqlite3.Connection:
        uri = f"file:{urllib.parse.quote(os.path.abspath(self.path))}?mode={mode}"
        # isolation_level=None: autocommit; explicit transactions where several
        # statements must be atomic (see transaction()).
        connection = sqlite3.connect(uri, uri=True, timeout=self.timeout, isolation_level=None,
                                     check_same_thread=True)
        connection.execute(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")
        # Freed pages go back to the file system (purge runs incremental_vacuum), so the
        # file shrinks with the live data. Takes effect only in a new file, and only if
        # set before WAL mode writes its first page; elsewhere it changes nothing.
        connection.execute("PRAGMA auto_vacuum = INCREMENTAL")
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute(f"PRAGMA wal_autocheckpoint={WAL_PAGES}")
        connection.execute(f"PRAGMA journal_size_limit={WAL_LIMIT}")
        return connection

    def _stat(self):
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            return None
        return info.st_dev, info.st_ino

    def get(self) -> sqlite3.Connection:
        """This thread's connection to the file at the path (StoreUnavailable if it is gone)."""
        now = time.monotonic()
        if now >= self._next_check or self._lost:
            self._verify(now)
        local = self._local
        if getattr(local, "generation", None) != self._generation:
            self.close()
            with translate(self.path):
                local.connection = self._connect("rw")
            local.generation = self._generation
        return local.connection

    def _verify(self, now: float) -> None:
        fault = recovered = None
        with self._lock:
            if now >= self._next_check:
                self._next_check = now + CHECK_EVERY
                identity = self._stat()
                if identity != self._identity or self._lost:
                    if self._lost is None:
                        fault = ("store.file-deleted", "the store file was deleted") if identity is None else \
                            ("store.file-replaced", "the store file was replaced")
                        self._lost = (f"sqlite store {self.path}: {fault[1]} under the running server; "
                                      "waiting for a valid wsgisec store at that path")
                    if identity is not None and self._valid():
                        self._identity, self._lost = identity, None
                        self._generation += 1
                        recovered = identity
            lost = self._lost
        if fault and self.on_fault is not None:
            self.on_fault(*fault)
        elif fault:
            import logging

            logging.getLogger("wsgisec.ops").critical("%s", lost or fault[1])
        if recovered and not fault:
            import logging

            logging.getLogger("wsgisec.ops").warning("sqlite store %s: a valid store is back; reconnected",
                                                     self.path)
        if lost:
            raise StoreUnavailable(lost)

    def _valid(self) -> bool:
        try:
            connection = self._connect("rw")
            try:
                schema.verify(connection, self.path)
                return True
            finally:
                connection.close()
        except (sqlite3.Error, StoreUnavailable):
            return False

    def close(self) -> None:
        """Close this thread's connection (the next call opens a new one)."""
        connection = getattr(self._local, "connection", None)
        self._local.generation = None  # the next get() connects again
        if connection is not None:
            self._local.connection = None
            try:
                connection.close()
            except sqlite3.Error:  # pragma: no cover - closing a broken handle
                pass


class transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on error (autocommit connections)."""

    __slots__ = ("connection",)

    def __init__(self, connection):
        self.connection = connection

    def __enter__(self):
        self.connection.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                self.connection.execute("COMMIT")  # may fail too (a full disk): roll back
        finally:
            if self.connection.in_transaction:
                try:
                    self.connection.execute("ROLLBACK")
                except sqlite3.Error:  # the original error is the one to report
                    pass
        return False


class translate:
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
