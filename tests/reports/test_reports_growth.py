"""Bounded growth: repeated events become one row with a count, new rows are capped per
window, retention purges; and a flood against the flagship stack stays within bounds."""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
import time

import pytest
from webtest import TestApp

from conftest import EXAMPLES, validated
from reports_support import csp_report, legacy_app, post_json
from wsgisec import events, pipeline
from wsgisec.cli import main
from wsgisec.reports import Reports
from wsgisec.token_auth import TokenAuth


def event(kind="token_auth.token-missing", addr="192.0.2.1", severity="warning", **extra):
    return dict({"kind": kind, "layer": kind.split(".")[0], "code": kind.split(".")[1],
                 "severity": severity, "time": time.time(), "incident_id": "0123456789abcdef",
                 "client_id": None, "remote_addr": addr, "reason": "no bearer token"}, **extra)


def test_repeats_within_the_window_are_one_row_with_a_count(store):
    results = [store.record_event_aggregated(event(), "k1", 60, 100) for _ in range(5)]
    assert results == ["stored"] + ["counted"] * 4
    store.record_event_aggregated(event(addr="192.0.2.2"), "k2", 60, 100)
    rows = store.events_counted()
    assert [(row["remote_addr"], row.get("count", 1)) for row in rows] == [("192.0.2.1", 5), ("192.0.2.2", 1)]
    assert "aggregate" not in json.dumps(rows)


def test_a_group_ends_with_its_window(store):
    store.record_event_aggregated(event(), "k", 0.05, 100)
    time.sleep(0.12)  # the store's own expiry, as in the store suite
    assert store.record_event_aggregated(event(), "k", 0.05, 100) == "stored"
    assert len(store.events_counted()) == 2


def test_new_rows_are_capped_per_window(store):
    results = [store.record_event_aggregated(event(addr=f"198.51.100.{n}"), f"k{n}", 60, 3)
               for n in range(10)]
    assert results.count("stored") == 3 and results.count("capped") == 7
    assert store.record_event_aggregated(event(addr="198.51.100.9"), "k9", 60, 3) == "capped"
    assert store.record_event_aggregated(event(addr="198.51.100.0"), "k0", 60, 3) == "counted"
    # key None: never merged, still within the cap.
    assert store.record_event_aggregated(event(severity="error"), None, 60, 3) == "capped"
    assert len(store.events_counted()) == 3


def test_purge_events_applies_retention(store):
    store.record_event(event())
    assert store.purge_events(time.time() - 3600) == 0
    assert store.purge_events(time.time() + 1) == 1
    assert store.events() == []


def test_emit_aggregates_warnings_and_keeps_every_error_and_log_line(store, caplog):
    caplog.set_level(logging.INFO, logger="wsgisec.events")
    layer = TokenAuth(legacy_app, store=store, require_tls=False)
    app = TestApp(validated(layer), extra_environ={"REMOTE_ADDR": "203.0.113.9"})
    for _ in range(50):
        app.get("/api/items", status=401)
    [row] = store.events_counted(kinds=["token_auth.token-missing"])
    assert row["count"] == 50
    assert sum('"token_auth.token-missing"' in r.getMessage() for r in caplog.records
               if r.name == "wsgisec.events.token_auth") == 50
    for _ in range(3):
        events.emit({"REMOTE_ADDR": "203.0.113.9"}, "exception-masked", "exception", severity="error",
                    store=store, logger=events.logger_for("error_masker"))
    assert len(store.events_counted(kinds=["error_masker.exception-masked"])) == 3


def test_housekeeping_purges_at_most_once_per_interval(store):
    from wsgisec.reports import timeline

    store.record_event(event(time=time.time() - 100 * 86400))
    assert timeline.housekeeping(store, 90 * 86400) == (1 if store.url.startswith("sqlite") else 0)
    assert timeline.housekeeping(store, 0) == 0  # another worker already purged this hour


# -- the flood ------------------------------------------------------------------------

@pytest.fixture
def ini(tmp_path):
    copy = tmp_path / "examples"
    shutil.copytree(EXAMPLES, copy, ignore=shutil.ignore_patterns("var", "__pycache__", "*.sqlite*"))
    return str(copy / "partner_api.ini")


def rows(store_path):
    with sqlite3.connect(store_path) as connection:
        return connection.execute("SELECT COUNT(*) FROM events").fetchone()[0]


def test_a_flood_of_reports_and_refused_requests_stays_bounded(ini, capsys):
    logging.disable(logging.CRITICAL)  # thousands of log lines are the point, not the output
    try:
        stack = pipeline.load(ini)
        store_path = pipeline.find_layer(stack, Reports).store.url[len("sqlite:///"):]
        app = TestApp(stack)
        statuses = {}
        reports = 2000
        for number in range(reports):
            # 200 addresses behind the trusted proxy, every report different.
            environ = {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_PROTO": "https",
                       "HTTP_X_FORWARDED_FOR": f"203.0.113.{number % 200}"}
            response = post_json(app, "/_wsgisec/reports/browser", csp_report(**{"line-number": number}),
                                 "application/csp-report", extra_environ=environ, expect_errors=True)
            statuses[response.status_int] = statuses.get(response.status_int, 0) + 1
        refused = 2500
        for number in range(refused):
            # 2000 requests from 40 addresses (aggregated), then 500 from distinct ones.
            address = f"198.51.100.{number % 40}" if number < 2000 else f"10.9.{number // 250}.{number % 250}"
            environ = {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_PROTO": "https",
                       "HTTP_X_FORWARDED_FOR": address}
            response = app.get("/api/items", extra_environ=environ, expect_errors=True)
            statuses[response.status_int] = statuses.get(response.status_int, 0) + 1
    finally:
        logging.disable(logging.NOTSET)

    assert not any(status >= 500 for status in statuses), statuses
    assert statuses[204] == 600 and statuses[429] == 1400  # rate_limit_global = 600/1m
    assert statuses[401] == refused
    stored = rows(store_path)
    # 600 accepted reports + 40 aggregated groups + 500 distinct refusals, not 4500 rows.
    assert stored == 600 + 40 + 500, stored
    counted = pipeline.find_layer(stack, Reports).store.events_counted(kinds=["token_auth.token-missing"],
                                                                      limit=10000)
    assert sum(row.get("count", 1) for row in counted) == refused
    assert main(["reports", "stats", "--config", ini, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["by_kind"]["token_auth.token-missing"] == refused
    assert result["by_kind"]["reports.csp-violation"] == 600
