"""Negotiated rejections (RFC 9457) and security events."""

import json
import logging

import pytest
from webtest import TestApp

from conftest import validated
from wsgisec import events
from wsgisec.responses import negotiate, problem, redirect


@pytest.mark.parametrize("accept, kind", [
    pytest.param(None, "json", id="absent"),
    pytest.param("*/*", "json", id="anything"),
    pytest.param("application/json", "json", id="json"),
    pytest.param("application/problem+json", "json", id="problem-json"),
    pytest.param("text/html,application/xhtml+xml,*/*;q=0.8", "html", id="browser"),
    pytest.param("text/plain", "text", id="text"),
    pytest.param("image/png", "json", id="nothing-we-offer"),
    pytest.param("text/html;q=0.1, text/plain;q=0.9", "text", id="q-values"),
    pytest.param(";;;garbage", "json", id="malformed"),
])
def test_negotiate(accept, kind):
    assert negotiate({"HTTP_ACCEPT": accept} if accept else {}) == kind


def rejecting(status, **kw):
    def app(environ, start_response):
        return problem(environ, status, "Generic <detail> & more.", **kw)(environ, start_response)
    return TestApp(validated(app))


def test_problem_json_follows_rfc_9457():
    response = rejecting(403, extra={"reason": "csrf-origin"}).get("/x", status=403)
    assert response.content_type == "application/problem+json"
    document = response.json
    assert document["type"] == "about:blank" and document["title"] == "Forbidden"
    assert document["status"] == 403 and document["detail"] == "Generic <detail> & more."
    assert document["reason"] == "csrf-origin"
    assert document["incident_id"] == response.headers["X-Incident-Id"]
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_problem_html_is_escaped():
    response = rejecting(400, extra={"field": "<script>"}).get("/x", headers={"Accept": "text/html"}, status=400)
    assert "<detail>" not in response.text and "&lt;detail&gt;" in response.text
    assert "<script>" not in response.text


def test_problem_text_and_extra_headers():
    response = rejecting(401, headers=[("WWW-Authenticate", 'Bearer realm="api"')]).get(
        "/x", headers={"Accept": "text/plain"}, status=401)
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="api"'
    assert response.text.startswith("401 Unauthorized\n")


def test_redirect_app():
    app = TestApp(validated(lambda environ, start_response: redirect("https://a.test/x", 308)(environ, start_response)))
    assert app.get("/", status=308).headers["Location"] == "https://a.test/x"


def test_incident_id_is_per_request_and_shared_by_its_events(caplog):
    caplog.set_level(logging.INFO, "wsgisec.events")
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/api/items", "QUERY_STRING": "token=secret",
               "REMOTE_ADDR": "198.51.100.4", "wsgisec.client": {"id": "c1", "name": "Acme"}}
    first = events.emit(environ, "demo-one", "first reason")
    second = events.emit(environ, "demo-two", "second reason")
    assert first == second == environ["wsgisec.incident_id"] and len(first) == 16
    record = json.loads(caplog.records[0].getMessage())
    assert record["client_id"] == "c1" and record["path"] == "/api/items"
    assert record["remote_addr"] == "198.51.100.4" and record["method"] == "POST"
    assert "secret" not in caplog.text  # the query string never reaches an event
    assert events.emit({}, "demo", "x") != first


def test_event_detail_values_are_cut_short(caplog):
    caplog.set_level(logging.INFO, "wsgisec.events")
    events.emit({}, "demo", "r", detail={"param": "p" * 1000})
    assert len(json.loads(caplog.records[0].getMessage())["detail"]["param"]) == 120


def test_store_failure_does_not_break_a_rejection(caplog, tmp_path):
    from wsgisec.store.sqlite import SQLiteStore

    store = SQLiteStore(str(tmp_path / "s.sqlite"))
    store._connection().execute("DROP TABLE events")
    incident = events.emit({}, "demo", "r", store=store)
    assert incident and "could not keep event" in caplog.text
