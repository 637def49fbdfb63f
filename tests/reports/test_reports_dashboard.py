"""The operators' dashboard: off by default, admin only, escaped, strict CSP; and a
screenshot of it in a real Chromium with its chart."""

from __future__ import annotations

import shutil
import time

import pytest
from webtest import TestApp

from conftest import EXAMPLES, skip_without_chromium, validated
from reports_support import csp_report, legacy_app, make_reports, post_json  # noqa: F401
from wsgisec import pipeline
from wsgisec.reports import Reports
from wsgisec.settings import Secret
from wsgisec.token_auth import TokenAuth

DASHBOARD = "/_wsgisec/dashboard"
ADMIN_TOKEN = "an-admin-token-of-enough-length-0123456789"


@pytest.fixture
def admin_stack(store):
    token_auth = TokenAuth(legacy_app, store=store, require_tls=False)
    layer = Reports(token_auth, store=store, dashboard=True, anonymous_reports=True,
                    dashboard_token=Secret(ADMIN_TOKEN, "env"))
    app = TestApp(validated(layer), extra_environ={"REMOTE_ADDR": "203.0.113.7"})
    admin, _ = token_auth.registry.create("Ops", scopes=["wsgisec:admin"])
    partner, _ = token_auth.registry.create("Acme", scopes=["items:read"])
    app.admin = {"Authorization": "Bearer " + token_auth.issue_token(admin["id"])["access_token"]}
    app.partner = {"Authorization": "Bearer " + token_auth.issue_token(partner["id"])["access_token"]}
    return app


def test_off_unless_enabled(make_reports):
    assert make_reports().get(DASHBOARD).json == {"path": DASHBOARD}


def test_admin_scope_or_admin_token_only(admin_stack, store):
    app = admin_stack
    refused = app.get(DASHBOARD, status=401)
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    denied = app.get(DASHBOARD, headers=app.partner, status=403)
    assert 'scope="wsgisec:admin"' in denied.headers["WWW-Authenticate"]
    app.get(DASHBOARD, headers={"Authorization": "Bearer wrong-token"}, status=401)
    assert app.get(DASHBOARD, headers=app.admin).content_type == "text/html"
    assert app.get(DASHBOARD, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).status_int == 200
    app.post(DASHBOARD, headers=app.admin, status=405)
    assert store.events_counted(kinds=["reports.dashboard-denied"])


def test_page_and_json_twin(admin_stack):
    app = admin_stack
    for number in range(3):
        post_json(app, "/_wsgisec/reports/browser", csp_report(**{"line-number": number}),
                  "application/csp-report", status=204)
    app.get("/api/items", status=401)
    page = app.get(DASHBOARD, headers=app.admin)
    policy = page.headers["Content-Security-Policy"]
    assert policy.startswith("default-src 'none'; style-src 'sha256-") and "script" not in policy
    assert page.headers["Cache-Control"] == "no-store" and page.headers["X-Frame-Options"] == "DENY"
    assert "<svg" in page.text and "<script" not in page.text and "reports.csp-violation" in page.text
    data = app.get(DASHBOARD + ".json", headers=app.admin).json
    assert data["by_kind"]["reports.csp-violation"] == 3
    assert data["by_kind"]["token_auth.token-missing"] >= 1
    assert sum(row.get("reports.csp-violation", 0) for row in data["over_time"]) == 3
    assert data["top_addresses"]["203.0.113.7"] >= 4 and len(data["latest"]) >= 2


def test_everything_shown_is_escaped(admin_stack, store):
    store.record_event({"kind": "x.<img src=x onerror=alert(1)>", "layer": "x", "code": "c",
                        "severity": "warning", "time": time.time(), "incident_id": "0123456789abcdef",
                        "client_id": "<script>alert(1)</script>", "remote_addr": "\"><svg onload=alert(1)>",
                        "reason": "</td><script>alert(2)</script>"})
    page = admin_stack.get(DASHBOARD, headers=admin_stack.admin).text
    assert "<script" not in page and "<img" not in page and "<svg onload" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


# -- the screenshot -------------------------------------------------------------------

@pytest.mark.browser
@skip_without_chromium
def test_dashboard_screenshot_shows_the_chart(tmp_path, browser):
    from test_stack import serve_tls

    copy = tmp_path / "examples"
    shutil.copytree(EXAMPLES, copy, ignore=shutil.ignore_patterns("var", "__pycache__", "*.sqlite*"))
    stack = pipeline.load(str(copy / "partner_api.ini"))
    token_auth = pipeline.find_layer(stack, TokenAuth)
    admin, _ = token_auth.registry.create("Ops", scopes=["wsgisec:admin"])
    token = token_auth.issue_token(admin["id"])["access_token"]
    via_proxy = {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_PROTO": "https", "HTTP_HOST": "localhost"}
    traffic = TestApp(stack, extra_environ=via_proxy)
    for number in range(12):
        traffic.get("/api/items", extra_environ={"HTTP_X_FORWARDED_FOR": f"198.51.100.{number % 3}"},
                    status=401)
        post_json(traffic, "/_wsgisec/reports/browser", csp_report(**{"line-number": number}),
                  "application/csp-report", status=204)
    site = serve_tls(stack, tmp_path)
    violations = []
    try:
        context = browser.new_context(ignore_https_errors=True, viewport={"width": 900, "height": 900},
                                      extra_http_headers={"Authorization": f"Bearer {token}"})
        page = context.new_page()
        page.on("console", lambda message: violations.append(message.text)
                if "Content Security Policy" in message.text else None)
        response = page.goto(f"https://127.0.0.1:{site.server_address[1]}{DASHBOARD}")
        assert response.status == 200
        assert page.locator("svg rect").count() >= 3  # bars and legend
        assert page.inner_text("h1") == "Security events"
        # The hashed stylesheet applied: the CSP let it through.
        assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(250, 250, 250)"
        shot = tmp_path / "dashboard.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
        context.close()
    finally:
        site.shutdown()
    assert violations == []
