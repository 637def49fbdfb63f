"""Faults of a real store: fail fast, fail closed, recover, lose nothing acknowledged (issue 14).

Every fault here is real: a redis-server of the test's own, stopped with SIGSTOP (the
socket stays open, as with a frozen host); an SQLite file locked by another connection
with BEGIN IMMEDIATE, a table dropped under the store. The bounds on elapsed time are
generous (several times the configured timeout, far below the 2-5 s the stores used to
wait), so they fail only if a call waits for something it should not.
"""

from __future__ import annotations

import logging
import signal
import sqlite3
import time

import pytest

from store_servers import own_redis  # noqa: F401 (a fixture)
from wsgisec.store import StoreUnavailable, open_backend, open_store, parse_timeout, with_timeout
from wsgisec.store.guard import CircuitOpen, GuardedStore
from wsgisec.store.sqlite import SQLiteStore


@pytest.mark.parametrize("text, seconds", [("250ms", 0.25), ("0.5s", 0.5), ("2", 2.0), (" 1s ", 1.0)])
def test_timeout_spellings(text, seconds):
    assert parse_timeout(text) == seconds


@pytest.mark.parametrize("text", ["0", "0ms", "-1", "61s", "1m", "soon", ""])
def test_bad_timeouts_are_refused(text):
    with pytest.raises(ValueError):
        parse_timeout(text)


def test_with_timeout_keeps_other_options_and_refuses_a_contradiction():
    assert with_timeout("redis://h:6379/0?prefix=a:", 0.5) == "redis://h:6379/0?prefix=a:&timeout=0.5"
    assert with_timeout("sqlite:////srv/x.sqlite?timeout=500ms", 0.5) == "sqlite:////srv/x.sqlite?timeout=0.5"
    with pytest.raises(ValueError, match="keep one of them"):
        with_timeout("sqlite:////srv/x.sqlite?timeout=1s", 0.25)


def test_sqlite_store_waits_at_most_its_timeout_for_another_process_lock(tmp_path):
    path = str(tmp_path / "locked.sqlite")
    store = open_backend(f"sqlite:///{path}?timeout=100ms")
    store.put("clients", "c", {"name": "kept"})
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's write lock, held
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="locked"):
            store.put("clients", "d", {})
        assert time.monotonic() - started < 2  # was 5 s (the old busy timeout)
        assert store.get("clients", "c") == {"name": "kept"}  # WAL: readers are not blocked
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    store.put("clients", "d", {})  # the lock is gone: writes work again
    assert store.keys("clients") == ["c", "d"]


def test_frozen_redis_costs_a_call_at_most_its_timeout_then_recovers(own_redis):
    port, process = own_redis
    store = open_backend(f"redis://127.0.0.1:{port}/0?timeout=200ms")
    store.put("clients", "c", {"name": "kept"})
    process.send_signal(signal.SIGSTOP)  # socket open, nobody answering
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="Timeout"):
            store.get("clients", "c")
        assert time.monotonic() - started < 1.5  # was 2 s per call, plus retries
    finally:
        process.send_signal(signal.SIGCONT)
    assert store.get("clients", "c") == {"name": "kept"}


def test_the_default_timeout_is_well_under_a_second(tmp_path, own_redis):
    sqlite_store = open_backend("sqlite:///" + str(tmp_path / "d.sqlite"))
    assert sqlite_store._connection().execute("PRAGMA busy_timeout").fetchone()[0] == 250
    redis_store = open_backend(f"redis://127.0.0.1:{own_redis[0]}/0")
    kwargs = redis_store.client.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == kwargs["socket_connect_timeout"] == 0.25


# -- the circuit breaker -------------------------------------------------------------


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def _broken(tmp_path):
    """A real SQLite store whose kv table is gone (every get fails), and a way to repair it."""
    backend = SQLiteStore(str(tmp_path / "broken.sqlite"))
    backend.put("clients", "c", {"ok": True})
    backend._connection().execute("ALTER TABLE kv RENAME TO kv_away")

    def repair():
        backend._connection().execute("ALTER TABLE kv_away RENAME TO kv")

    return backend, repair


def test_breaker_opens_after_repeated_failures_then_one_probe_closes_it(tmp_path, caplog):
    backend, repair = _broken(tmp_path)
    clock = Clock()
    store = GuardedStore(backend, failures=3, cool_down=2.0, clock=clock)
    for _ in range(3):
        with pytest.raises(StoreUnavailable) as info:
            store.get("clients", "c")
        assert not isinstance(info.value, CircuitOpen)
    repair()  # fixed, but the breaker does not know yet: it does not ask during the cool-down
    with pytest.raises(CircuitOpen, match="reads not tried after 3 failures within 5s"):
        store.get("clients", "c")
    assert "reads failed 3 times within 5s" in caplog.text and "failing fast for 2s" in caplog.text
    clock.now += 2.1
    with caplog.at_level(logging.WARNING, logger="wsgisec.ops"):
        assert store.get("clients", "c") == {"ok": True}  # the probe, and it succeeds
    assert "circuit closed" in caplog.text
    assert store.get("clients", "c") == {"ok": True}


def test_a_failed_probe_opens_the_breaker_again(tmp_path):
    backend, repair = _broken(tmp_path)
    clock = Clock()
    store = GuardedStore(backend, failures=2, cool_down=1.0, clock=clock)
    for _ in range(2):
        with pytest.raises(StoreUnavailable):
            store.get("clients", "c")
    clock.now += 1.5
    with pytest.raises(StoreUnavailable) as info:
        store.get("clients", "c")  # the probe reaches the store, which still fails
    assert not isinstance(info.value, CircuitOpen)
    with pytest.raises(CircuitOpen):
        store.get("clients", "c")  # open again at once
    repair()
    clock.now += 1.5
    assert store.get("clients", "c") == {"ok": True}


def test_an_open_breaker_answers_at_once_on_a_frozen_redis(own_redis):
    port, process = own_redis
    store = GuardedStore(open_backend(f"redis://127.0.0.1:{port}/0?timeout=100ms"), failures=2)
    process.send_signal(signal.SIGSTOP)
    try:
        for _ in range(2):
            with pytest.raises(StoreUnavailable):
                store.get("clients", "c")
        started = time.monotonic()
        for _ in range(50):
            with pytest.raises(CircuitOpen):
                store.get("clients", "c")
        assert time.monotonic() - started < 0.5  # 50 calls, none waiting for the server
    finally:
        process.send_signal(signal.SIGCONT)


def test_successes_in_between_do_not_hide_a_store_whose_writes_keep_failing(tmp_path):
    """A write lock held elsewhere: reads work (WAL), every write waits out the timeout.
    The write breaker opens anyway, and reads go on."""
    path = str(tmp_path / "w.sqlite")
    clock = Clock()
    store = GuardedStore(open_backend(f"sqlite:///{path}?timeout=20ms"), failures=3, clock=clock)
    store.put("clients", "c", {"ok": True})
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        for _ in range(3):
            assert store.get("clients", "c") == {"ok": True}
            with pytest.raises(StoreUnavailable) as info:
                store.add("nonces", "n", {}, ttl=60)
            assert not isinstance(info.value, CircuitOpen)
            clock.now += 1
        with pytest.raises(CircuitOpen, match="writes not tried"):
            store.add("nonces", "n", {}, ttl=60)
        assert store.get("clients", "c") == {"ok": True}  # the read breaker is closed
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    clock.now += 2.1
    assert store.add("nonces", "n", {}, ttl=60)  # the probe: the lock is gone


def test_failures_far_apart_do_not_open_the_breaker(tmp_path):
    backend, _repair = _broken(tmp_path)
    clock = Clock()
    store = GuardedStore(backend, failures=3, window=5.0, clock=clock)
    for _ in range(6):
        with pytest.raises(StoreUnavailable) as info:
            store.get("clients", "c")
        assert not isinstance(info.value, CircuitOpen)
        clock.now += 3  # one failure every 3 s: never 3 within 5 s


def test_open_store_hands_out_a_guarded_store(tmp_path):
    store = open_store("sqlite:///" + str(tmp_path / "g.sqlite"))
    assert isinstance(store, GuardedStore)
    assert store.path == str(tmp_path / "g.sqlite")  # the backend's own attributes show through
    store.put("clients", "c", {})
    assert [key for key, _ in store.items("clients")] == ["c"]


def test_a_closed_sqlite_store_reconnects_on_next_use(tmp_path):
    store = SQLiteStore(str(tmp_path / "c.sqlite"))
    store.put("clients", "c", {})
    store.close()
    assert store.get("clients", "c") == {}


# -- wsgisec check and Redis persistence ----------------------------------------------


def _redis_ini(tmp_path, port):
    ini = tmp_path / "api.ini"
    ini.write_text(f"[pipeline:main]\npipeline = https app\n\n[filter:https]\nuse = egg:wsgisec#https\n"
                   f"store = redis://127.0.0.1:{port}/0\nallowed_hosts = api.example.com\n\n"
                   "[app:app]\nuse = egg:wsgisec#app\napplication = json:dumps\n")
    return str(ini)


def test_check_warns_when_redis_keeps_nothing_on_disk(tmp_path, own_redis, capsys):
    from wsgisec.cli import main

    port, _process = own_redis  # started with save "" and appendonly no
    assert main(["check", _redis_ini(tmp_path, port)]) == 1
    out = capsys.readouterr().out
    assert f"store redis://127.0.0.1:{port}/0: keeps nothing on disk" in out and "appendonly yes" in out


def test_check_is_quiet_about_redis_with_append_only_persistence(tmp_path, own_redis, capsys):
    import redis

    from wsgisec.cli import main

    port, _process = own_redis
    redis.Redis(port=port).config_set("appendonly", "yes")
    assert main(["check", _redis_ini(tmp_path, port)]) == 0
    assert "keeps nothing on disk" not in capsys.readouterr().out


def test_the_file_follows_the_live_data_after_a_purge(tmp_path):
    """Expired nonces are deleted and their pages given back (auto_vacuum = INCREMENTAL),
    and the WAL is truncated: the store's size is the live data's, not the traffic's."""
    import os

    now = [1000.0]
    path = tmp_path / "size.sqlite"
    store = SQLiteStore(str(path), clock=lambda: now[0])
    for number in range(3000):
        store.add("nonces", f"n{number}", {"pad": "x" * 1000}, ttl=60)
    store.purge()
    full = os.path.getsize(path)
    assert full > 3_000_000
    now[0] += 61
    assert store.purge() == 3000
    assert os.path.getsize(path) < full / 10
    assert os.path.getsize(str(path) + "-wal") == 0
