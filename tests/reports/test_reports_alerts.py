"""Alerts: a threshold per kind pattern and window raises one alert on ``wsgisec.alerts``
and POSTs it to a webhook (a real HTTP server on 127.0.0.1, in a thread)."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from webtest import TestApp

from conftest import validated
from reports_support import legacy_app, wait_for
from wsgisec.reports import Reports, alerts, filter_factory
from wsgisec.settings import ConfigurationError, Secret
from wsgisec.token_auth import TokenAuth


class Receiver:
    """A webhook receiver: answers each POST with the next status of ``statuses``."""

    def __init__(self, statuses=(200,)):
        self.statuses, self.received, self.attempts = list(statuses), [], 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.attempts += 1
                status = receiver.statuses.pop(0) if len(receiver.statuses) > 1 else receiver.statuses[0]
                if status == 200:
                    receiver.received.append((dict(self.headers), body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def receiver():
    made = []

    def make(statuses=(200,)):
        made.append(Receiver(statuses))
        return made[-1]

    yield make
    for server in made:
        server.close()


@pytest.fixture(autouse=True)
def no_watcher_left():
    yield
    alerts.install(None)


def protected(store, **kw):
    token_auth = TokenAuth(legacy_app, store=store, require_tls=False)
    layer = Reports(token_auth, store=store, **kw)
    return layer, TestApp(validated(layer), extra_environ={"REMOTE_ADDR": "203.0.113.5"})


def alert_lines(caplog):
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "wsgisec.alerts"]


def test_threshold_per_address_raises_one_alert_and_posts_it(store, receiver, caplog):
    caplog.set_level(logging.INFO)
    hook = receiver()
    layer, app = protected(store, alerts="token_auth.* 5/5m per address", alert_webhook=hook.url,
                           alert_webhook_secret=Secret("s" * 32, "env"))
    for _ in range(4):
        app.get("/api/items", status=401)
    assert alert_lines(caplog) == []
    for _ in range(3):  # the 5th crosses the threshold; the 6th and 7th do not alert again
        app.get("/api/items", status=401)
    [alert] = alert_lines(caplog)
    assert alert["alert"] == "token_auth.* 5/5m per address" and alert["group"] == "203.0.113.5"
    assert alert["threshold"] == 5 and alert["kind"] == "token_auth.token-missing"
    assert layer.watcher.webhook.flush()
    [(headers, body)] = hook.received
    assert json.loads(body) == alert
    expected = "sha256=" + hmac.new(b"s" * 32, body, hashlib.sha256).hexdigest()
    assert headers["X-Wsgisec-Signature"] == expected and headers["Content-Type"] == "application/json"
    # Another address has its own count.
    other = TestApp(validated(layer), extra_environ={"REMOTE_ADDR": "198.51.100.1"})
    for _ in range(4):
        other.get("/api/items", status=401)
    assert len(alert_lines(caplog)) == 1


def test_webhook_retries_then_succeeds(store, receiver):
    hook = receiver(statuses=(503, 500, 200))
    layer, app = protected(store, alerts="token_auth.* 1/1m", alert_webhook=hook.url,
                           alert_webhook_retries=3)
    layer.watcher.webhook.backoff = 0.01
    app.get("/api/items", status=401)
    assert layer.watcher.webhook.flush()
    assert hook.attempts == 3 and len(hook.received) == 1


def test_an_unreachable_webhook_never_fails_a_request(store, caplog):
    caplog.set_level(logging.INFO)
    layer, app = protected(store, alerts="token_auth.* 1/1m", alert_webhook="http://127.0.0.1:1/hook",
                           alert_webhook_retries=1, alert_webhook_timeout=1)
    layer.watcher.webhook.backoff = 0.01
    app.get("/api/items", status=401)
    assert len(alert_lines(caplog)) == 1
    assert layer.watcher.webhook.flush()
    assert wait_for(lambda: any("failed after 2 attempts" in r.getMessage() for r in caplog.records
                                if r.name == "wsgisec.ops"))


def test_per_client_and_partner_reports(store, caplog):
    caplog.set_level(logging.INFO)
    layer, app = protected(store, alerts="reports.partner-report 2/1h per client\nreports.* 100/1m")
    client, _ = layer.app.registry.create("Acme", scopes=[])
    headers = {"Authorization": "Bearer " + layer.app.issue_token(client["id"])["access_token"],
               "Content-Type": "application/json"}
    for number in range(2):
        app.post("/_wsgisec/reports", json.dumps({"kind": "abuse", "description": f"n{number}"}),
                 headers=headers, status=201)
    [alert] = alert_lines(caplog)
    assert alert["group"] == client["id"] and alert["per"] == "client"
    assert "description" not in json.dumps(alert)  # never a report's text


@pytest.mark.parametrize("text, message", [
    pytest.param("token_auth.* 20", "a rate such as 60/1m", id="no-window"),
    pytest.param("token_auth.* 20/5m per host", "rules such as", id="bad-group"),
    pytest.param("token_auth.* 0/5m", "at least 1", id="zero"),
    pytest.param("token_auth.$ 5/5m", "kind pattern", id="bad-pattern"),
])
def test_bad_rules_fail_at_start_up(tmp_path, text, message):
    with pytest.raises(ConfigurationError, match=message):
        filter_factory({"here": str(tmp_path)}, alerts=text)


def test_a_webhook_needs_rules_and_plain_http_is_warned(tmp_path):
    with pytest.raises(ConfigurationError, match="needs alerts"):
        filter_factory({"here": str(tmp_path)}, alert_webhook="https://hooks.example.com/x")
    layer = Reports(None, store="sqlite:///" + str(tmp_path / "s.sqlite"), alerts="x.* 1/1m",
                    alert_webhook="http://hooks.example.com/x")
    assert any("plain http" in text for text in layer.warnings())
