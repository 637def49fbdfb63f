"""Fixtures and helpers shared by the reports tests.

Not a ``tests/reports/conftest.py``: pytest imports a directory's conftest (no
``__init__.py``) as the module ``conftest``, replacing ``tests/conftest.py`` in
``sys.modules``, and every later ``from conftest import ...`` in other directories would
then find this file. Test modules import the fixtures from here instead.
"""

from __future__ import annotations

import json
import time
from wsgiref.validate import validator

import pytest
from webtest import TestApp


def legacy_app(environ, start_response):
    """Stands for the legacy app: says which path reached it."""
    body = json.dumps({"path": environ["PATH_INFO"]}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def post_json(app, path, document, content_type="application/json", **kw):
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    headers = dict(kw.pop("headers", {}), **{"Content-Type": content_type})
    return app.post(path, body, headers=headers, **kw)


def csp_report(**fields):
    report = {"document-uri": "https://localhost/search?q=secret-token#frag", "referrer": "",
              "violated-directive": "script-src-elem", "effective-directive": "script-src-elem",
              "original-policy": "default-src 'self'", "disposition": "report",
              "blocked-uri": "inline", "line-number": 3, "status-code": 200}
    report.update(fields)
    return {"csp-report": report}


def reports_of(store, kind=None):
    return [event for event in store.events(limit=100000)
            if event["layer"] == "reports" and (kind is None or event["kind"] == kind)]


def wait_for(predicate, timeout=15.0, interval=0.05):
    """Poll ``predicate`` until it returns something true (no fixed sleeps in tests)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


@pytest.fixture
def make_reports(store):
    """``make_reports(app=legacy_app, **settings)``: a WebTest app of the collector on the
    ``store`` fixture (SQLite and Redis), validated by ``wsgiref.validate``."""
    from wsgisec.reports import Reports

    def make(app=legacy_app, **kw):
        kw.setdefault("store", store)
        layer = Reports(app, **kw)
        test_app = TestApp(validator(layer), extra_environ={"REMOTE_ADDR": "192.0.2.10"})
        test_app.layer = layer
        return test_app

    return make
