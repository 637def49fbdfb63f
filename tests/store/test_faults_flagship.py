"""The flagship (examples/partner_api.ini, every layer) over a faulty SQLite store.

What a partner and an operator rely on: a store fault answers 503 with an incident id
that is in the log with its cause, never a pass and never a 500; the health check keeps
answering without the store; the stack recovers when the fault clears.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sqlite3

import pytest

from store_servers import flagship_partner, own_redis, partner, stack  # noqa: F401 (fixtures)
from wsgisec.store import open_store
from wsgisec.store import sqlite_connection


@pytest.fixture
def path(store_url):
    return store_url[len("sqlite:///"):]


@contextlib.contextmanager
def write_lock_held(path):
    """Another process's connection holding the write lock (BEGIN IMMEDIATE)."""
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


@pytest.fixture
def checked_at_once(monkeypatch):
    """The file check runs on every call instead of once a second (no sleeping in tests)."""
    monkeypatch.setattr(sqlite_connection, "CHECK_EVERY", 0.0)


def remove_store_files(path):
    """What an operator's ``rm wsgisec.sqlite*`` does: the file and its WAL and index."""
    for name in (path, path + "-wal", path + "-shm"):
        if os.path.exists(name):
            os.remove(name)


def _logged_with_cause(caplog, incident):
    return [r.getMessage() for r in caplog.records if incident in r.getMessage()]


def test_a_locked_store_answers_503_with_a_logged_incident_and_healthz_still_answers(partner, path, caplog):
    assert partner.get("/api/items").status_int == 200
    with write_lock_held(path), caplog.at_level(logging.INFO):
        assert partner.get("/healthz").status_int == 200
        refused = partner.get("/api/items", status=503)  # the nonce cannot be written
        incident = refused.json["incident_id"]
        assert refused.headers["Retry-After"]
        assert refused.headers["X-Incident-Id"] == incident
        lines = _logged_with_cause(caplog, incident)
        assert any("store-unavailable" in line for line in lines)  # the event
        assert any("answered 503" in line and "database is locked" in line for line in lines)  # the cause
    assert partner.get("/api/items").status_int == 200  # lock gone: served again


def test_a_deleted_store_file_is_detected_reported_and_recovered(checked_at_once, partner, path, caplog):
    assert partner.get("/api/items").status_int == 200
    backup = path + ".backup"
    with contextlib.closing(sqlite3.connect(path)) as source, contextlib.closing(sqlite3.connect(backup)) as copy:
        source.backup(copy)
    remove_store_files(path)
    with caplog.at_level(logging.INFO):
        refused = partner.get("/api/items", status=503)  # never a pass on the unlinked file
        assert partner.get("/healthz").status_int == 200  # the health check needs no store
    critical = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert any("store.file-deleted" in r.getMessage() for r in critical)
    assert _logged_with_cause(caplog, refused.json["incident_id"])
    assert not os.path.exists(path)  # nobody created a new, empty store in its place
    shutil.move(backup, path)  # the operator restores the file
    for _ in range(10):  # the breaker may still be cooling down: it probes within seconds
        response = partner.get("/api/items", expect_errors=True)
        if response.status_int == 200:
            break
        assert response.status_int == 503
        _expire_cool_down(path)
    assert response.status_int == 200
    # the critical event was spooled while the store was gone, and is in it now
    assert open_store(f"sqlite:///{path}").events(kinds=["store.file-deleted"])


def _expire_cool_down(path_or_url):
    guard = open_store(path_or_url if "://" in path_or_url else f"sqlite:///{path_or_url}")
    guard.reads.expire_cool_down()  # what two seconds of waiting would do
    guard.writes.expire_cool_down()


def test_a_store_file_replaced_by_another_store_is_reported_and_used(checked_at_once, partner, path, tmp_path, caplog):
    from wsgisec.store.sqlite import SQLiteStore

    other = SQLiteStore(str(tmp_path / "other.sqlite"))
    other.put("marker", "m", {"from": "the replacement"})
    other.close()
    remove_store_files(path)  # a stale WAL must not be replayed over another database
    os.replace(tmp_path / "other.sqlite", path)
    with caplog.at_level(logging.INFO):
        # the old client and its token are gone with the old file: refused, not passed
        partner.get("/api/items", status=401)
    assert any("store.file-replaced" in r.getMessage() for r in caplog.records if r.levelno == logging.CRITICAL)
    assert open_store(f"sqlite:///{path}").get("marker", "m") == {"from": "the replacement"}


def test_a_store_file_replaced_by_something_else_is_refused_until_a_store_is_back(checked_at_once, partner, path, tmp_path):
    backup = tmp_path / "backup.sqlite"
    with contextlib.closing(sqlite3.connect(path)) as source, contextlib.closing(sqlite3.connect(backup)) as copy:
        source.backup(copy)
    remove_store_files(path)
    with open(path, "wb") as junk:
        junk.write(b"not a database" * 100)
    partner.get("/api/items", status=503)
    partner.get("/api/items", status=503)
    os.replace(backup, path)
    _expire_cool_down(path)
    assert partner.get("/api/items", expect_errors=True).status_int in (200, 401)


def test_the_flagship_on_a_frozen_redis_refuses_at_once_and_recovers(load_example, own_redis, caplog):
    """Issue 14: a frozen Redis took the flagship from ~290 to 2 requests/s. Now a call
    waits at most the timeout, then the breaker refuses at once; /healthz never waits."""
    import signal
    import time

    port, process = own_redis
    url = f"redis://127.0.0.1:{port}/0?timeout=100ms"
    partner = flagship_partner(load_example("partner_api.ini", wsgisec_store=url))
    assert partner.get("/api/items").status_int == 200
    process.send_signal(signal.SIGSTOP)
    try:
        refused = [partner.get("/api/items", status=503) for _ in range(6)]  # 5 timeouts open the breaker
        started = time.monotonic()
        for _ in range(20):
            partner.get("/api/items", status=503)
            assert partner.get("/healthz").status_int == 200
        assert time.monotonic() - started < 2  # 40 requests, none waiting for the server
        assert all(response.json["incident_id"] for response in refused)
    finally:
        process.send_signal(signal.SIGCONT)
    _expire_cool_down(url)
    assert partner.get("/api/items").status_int == 200
