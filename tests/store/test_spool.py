"""Events the store cannot take wait in a bounded spool and reach the store when it is
back; overflow is counted and logged; reports (committed before their 2xx) are never
spooled. The store is a real SQLite file whose events table is taken away and given back.
"""

from __future__ import annotations

import logging

import pytest

from wsgisec import events
from wsgisec.store import StoreUnavailable
from wsgisec.store.guard import GuardedStore
from wsgisec.store.sqlite import SQLiteStore

ENVIRON = {"REQUEST_METHOD": "GET", "PATH_INFO": "/api/items", "REMOTE_ADDR": "192.0.2.7"}


@pytest.fixture
def broken(tmp_path):
    """(guarded store, repair): events cannot be written until repair() is called."""
    backend = SQLiteStore(str(tmp_path / "spool.sqlite"))
    connection = backend._connection()
    connection.execute("ALTER TABLE events RENAME TO events_away")

    def repair():
        connection.execute("ALTER TABLE events_away RENAME TO events")

    return GuardedStore(backend, failures=1000, spool_size=3), repair


def _emit(store, number):
    return events.emit(dict(ENVIRON), "token_auth.invalid-token", f"refusal {number}", severity="error",
                       store=store, logger=events.logger_for("token_auth"))


def test_an_event_the_store_cannot_take_is_spooled_logged_and_written_later(broken, caplog):
    store, repair = broken
    with caplog.at_level(logging.INFO):
        incident = _emit(store, 1)
    ops = [r.getMessage() for r in caplog.records if r.name == "wsgisec.ops"]
    assert any(incident in line and "not stored" in line and "spool" in line for line in ops)
    assert store.spooled_events == 1
    repair()
    store.get("clients", "any")  # the next call that succeeds writes the spool
    assert store.spooled_events == 0
    assert [event["incident_id"] for event in store.events()] == [incident]


def test_a_full_spool_drops_the_oldest_counts_and_logs_it(broken, caplog):
    store, repair = broken
    with caplog.at_level(logging.INFO):
        incidents = [_emit(store, number) for number in range(5)]
    assert store.dropped_events == 2 and store.spooled_events == 3
    dropped_lines = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert any(incidents[0] in line for line in dropped_lines)
    assert any(incidents[1] in line for line in dropped_lines)
    repair()
    store.get("clients", "any")
    assert [event["incident_id"] for event in store.events()] == incidents[2:]


def test_a_report_commit_is_never_spooled(broken):
    """The reports endpoint acknowledges a report only once it is committed: a failure
    must reach it (503), not vanish into memory."""
    store, _repair = broken
    with pytest.raises(StoreUnavailable):
        store.record_event({"kind": "reports.report", "time": 1.0, "incident_id": "0" * 16})
    assert store.spooled_events == 0


def test_events_spooled_while_the_breaker_is_open_arrive_after_the_probe(tmp_path):
    backend = SQLiteStore(str(tmp_path / "b.sqlite"))
    connection = backend._connection()
    connection.execute("ALTER TABLE kv RENAME TO kv_away")
    now = [0.0]
    store = GuardedStore(backend, failures=2, cool_down=1.0, clock=lambda: now[0])
    for _ in range(2):
        with pytest.raises(StoreUnavailable):
            store.put("clients", "c", {})
    incident = _emit(store, 1)  # the write breaker is open: spooled at once, the store not asked
    assert store.spooled_events == 1
    connection.execute("ALTER TABLE kv_away RENAME TO kv")
    now[0] += 1.5
    store.put("clients", "c", {})  # the probe succeeds and flushes
    assert [event["incident_id"] for event in store.events()] == [incident]
