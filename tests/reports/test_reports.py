"""The collector as browsers, partners and attackers meet it, on SQLite and on Redis."""

from __future__ import annotations

import json
import re
import time

import pytest
from webtest import TestApp

from conftest import validated
from reports_support import csp_report, legacy_app, make_reports, post_json, reports_of  # noqa: F401
from wsgisec.reports import Reports, filter_factory
from wsgisec.settings import ConfigurationError
from wsgisec.store.redis import RedisStore
from wsgisec.token_auth import TokenAuth

BROWSER = "/_wsgisec/reports/browser"
PARTNER = "/_wsgisec/reports"


# -- browser reports ------------------------------------------------------------------

def test_csp_report_is_stored_as_an_event_without_query_strings(make_reports, store):
    app = make_reports()
    response = post_json(app, BROWSER, csp_report(), "application/csp-report", status=204)
    assert response.body == b""
    [event] = reports_of(store)
    assert event["kind"] == "reports.csp-violation" and event["layer"] == "reports"
    assert event["code"] == "csp-violation" and event["remote_addr"] == "192.0.2.10"
    assert event["detail"]["document_url"] == "https://localhost/search"  # no ?q=secret-token
    assert event["detail"]["effective_directive"] == "script-src-elem"
    assert re.fullmatch(r"[0-9a-f]{16}", event["incident_id"])


def test_reporting_api_batch_keeps_known_types_and_drops_noise(make_reports, store):
    app = make_reports()
    batch = [
        {"type": "csp-violation", "age": 10, "url": "https://localhost/notes?x=1",
         "user_agent": "Chromium", "body": {"blockedURL": "https://evil.example/x.js?t=1",
                                            "effectiveDirective": "script-src-elem",
                                            "disposition": "report", "unknownField": "dropped"}},
        {"type": "deprecation", "age": 1, "url": "https://localhost/", "body": {
            "id": "UnloadHandler", "message": "unload is deprecated", "lineNumber": 4}},
        {"type": "csp-violation", "url": "https://localhost/", "body": {
            "blockedURL": "chrome-extension://abcdef/inject.js", "effectiveDirective": "script-src"}},
        {"type": "csp-violation", "url": "https://localhost/", "body": {
            "sourceFile": "moz-extension://1234/content.js", "effectiveDirective": "script-src"}},
        {"type": "made-up", "url": "https://localhost/", "body": {}},
    ]
    post_json(app, BROWSER, batch, "application/reports+json", status=204)
    kinds = sorted(event["kind"] for event in reports_of(store))
    assert kinds == ["reports.csp-violation", "reports.deprecation"]
    csp = reports_of(store, "reports.csp-violation")[0]["detail"]
    assert csp["blocked_url"] == "https://evil.example/x.js" and "unknownField" not in csp
    assert csp["document_url"] == "https://localhost/notes" and csp["user_agent"] == "Chromium"
    day = time.strftime("%Y-%m-%d", time.gmtime())
    assert store.get("reports.noise", f"{day}:extension") == {"count": 2}
    assert store.get("reports.noise", f"{day}:unknown-type") == {"count": 1}


def test_identical_reports_are_counted_not_stored_again(make_reports, store):
    app = make_reports()
    for _ in range(5):
        post_json(app, BROWSER, csp_report(), "application/csp-report", status=204)
    post_json(app, BROWSER, csp_report(**{"blocked-uri": "eval"}), "application/csp-report", status=204)
    assert len(reports_of(store)) == 2
    seen = [value for _key, value in store.items("reports.seen")]
    assert sorted(value["count"] for value in seen) == [1, 5]


def test_long_fields_are_cut_and_data_urls_reduced(make_reports, store):
    app = make_reports(max_field_length=64)
    post_json(app, BROWSER, csp_report(**{"original-policy": "x" * 5000,
                                          "blocked-uri": "data:text/html;base64," + "A" * 3000}),
              "application/csp-report", status=204)
    detail = reports_of(store)[0]["detail"]
    assert len(detail["original_policy"]) == 64 and detail["blocked_url"] == "data"


BAD_BROWSER = [
    pytest.param("application/csp-report", b"not json", 400, id="not-json"),
    pytest.param("application/csp-report", b"\xff\xfe", 400, id="not-utf8"),
    pytest.param("application/csp-report", b"[" * 50 + b"]" * 50, 400, id="too-deep"),
    pytest.param("application/csp-report", b"[" * 100000 + b"]" * 100000, 413, id="deep-and-large"),
    pytest.param("application/csp-report", json.dumps({"csp": {}}).encode(), 400, id="wrong-shape"),
    pytest.param("application/reports+json", b"{}", 400, id="batch-not-array"),
    pytest.param("application/reports+json", b"[1, 2]", 400, id="batch-items-not-objects"),
    pytest.param("text/plain", json.dumps(csp_report()).encode(), 415, id="wrong-media-type"),
    pytest.param("application/csp-report", b"x" * (64 * 1024 + 1), 413, id="over-64KB"),
]


@pytest.mark.parametrize("content_type, body, status", BAD_BROWSER)
def test_hostile_browser_bodies_get_a_clear_error(make_reports, store, content_type, body, status):
    app = make_reports()
    response = post_json(app, BROWSER, body, content_type, status=status)
    assert response.content_type == "application/problem+json"
    assert response.json["status"] == status and "Traceback" not in response.text
    assert reports_of(store, "reports.csp-violation") == []


def test_a_body_without_length_is_still_capped(make_reports, store):
    app = make_reports(max_report_size=1024)
    response = app.post(BROWSER, b"{" * 5000, headers={"Content-Type": "application/csp-report"},
                        extra_environ={"CONTENT_LENGTH": "", "HTTP_TRANSFER_ENCODING": "chunked"},
                        status=413)
    assert response.json["reason"] == "report-too-large"


def test_only_post_and_cors_preflight(make_reports):
    app = make_reports(browser_origins=("https://app.example.com",))
    assert app.get(BROWSER, status=405).headers["Allow"] == "POST"
    preflight = app.options(BROWSER, headers={"Origin": "https://app.example.com",
                                              "Access-Control-Request-Method": "POST"}, status=204)
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert preflight.headers["Access-Control-Allow-Methods"] == "POST"
    app.options(BROWSER, headers={"Origin": "https://evil.example"}, status=403)
    sent = post_json(app, BROWSER, csp_report(), "application/csp-report",
                     headers={"Origin": "https://app.example.com"}, status=204)
    assert sent.headers["Access-Control-Allow-Origin"] == "https://app.example.com"


def test_rate_limits_per_address_and_in_total(make_reports, store):
    app = make_reports(rate_limit_address="3/1m", rate_limit_global="5/1m")
    for number in range(3):
        post_json(app, BROWSER, csp_report(**{"line-number": number}), "application/csp-report", status=204)
    refused = post_json(app, BROWSER, csp_report(), "application/csp-report", status=429)
    assert refused.headers["Retry-After"] == "60" and refused.json["reason"] == "rate-limited"
    other = {"REMOTE_ADDR": "198.51.100.7"}
    for number in range(2):
        post_json(app, BROWSER, csp_report(**{"line-number": 10 + number}), "application/csp-report",
                  extra_environ=other, status=204)
    post_json(app, BROWSER, csp_report(**{"line-number": 99}), "application/csp-report",
              extra_environ=other, status=429)  # the global limit
    # Refusals are logged, not stored: a flood does not become rows.
    assert [e["kind"] for e in reports_of(store)] == ["reports.csp-violation"] * 5


def test_store_unavailable_is_503_and_nothing_is_acknowledged():
    # A real Redis client pointed at a port where nothing listens: StoreUnavailable.
    down = RedisStore.from_url("redis://127.0.0.1:1/0")
    app = TestApp(validated(Reports(legacy_app, store=down, anonymous_reports=True)))
    browser = post_json(app, BROWSER, csp_report(), "application/csp-report", status=503)
    assert browser.headers["Retry-After"] == "5"
    partner = post_json(app, PARTNER, {"kind": "abuse", "description": "x"}, status=503)
    assert partner.json["status"] == 503 and "redis" not in partner.text.lower()


def test_a_503_logs_the_incident_id_the_reporter_sees_with_its_cause(caplog):
    down = RedisStore.from_url("redis://127.0.0.1:1/0")
    app = TestApp(validated(Reports(legacy_app, store=down, anonymous_reports=True)))
    refused = post_json(app, BROWSER, csp_report(), "application/csp-report", status=503)
    incident = refused.headers["X-Incident-Id"]
    assert any(incident in r.getMessage() and "ConnectionError" in r.getMessage() and r.name == "wsgisec.ops"
               for r in caplog.records)


# -- partner reports ------------------------------------------------------------------

@pytest.fixture
def partner_stack(store):
    """Reports outside a real token_auth layer, as in the flagship pipeline."""
    token_auth = TokenAuth(legacy_app, store=store, require_tls=False)
    layer = Reports(token_auth, store=store, authenticate_with=("token_auth",))
    client, _secret = token_auth.registry.create("Acme", scopes=["items:read"])
    token = token_auth.issue_token(client["id"])["access_token"]
    app = TestApp(validated(layer), extra_environ={"REMOTE_ADDR": "192.0.2.20"})
    app.client_id, app.token = client["id"], token
    return app


def bearer(app):
    return {"Authorization": f"Bearer {app.token}"}


def test_partner_report_with_a_bearer_token_is_created(partner_stack, store):
    app = partner_stack
    report = {"kind": "suspicious-error", "description": "Your API showed us an odd error.",
              "observed_at": "2026-01-02T03:04:05Z", "incident_id": "0123456789abcdef",
              "evidence": {"status": 500, "endpoint": "/api/items", "auth_token": "abc"}}
    response = post_json(app, PARTNER, report, headers=bearer(app), status=201)
    assert re.fullmatch(r"r_[0-9a-f]{16}", response.json["id"])
    assert response.json["incident_id"] == "0123456789abcdef"
    [event] = reports_of(store, "reports.partner-report")
    assert event["client_id"] == app.client_id and event["incident_id"] == "0123456789abcdef"
    assert event["detail"]["report_id"] == response.json["id"]
    assert event["detail"]["evidence"]["auth_token"] == "<redacted>"
    assert event["detail"]["observed_at"] == 1767323045.0
    assert "Authorization" not in json.dumps(event)


def test_partner_report_needs_credentials(partner_stack, store):
    response = post_json(partner_stack, PARTNER, {"kind": "abuse", "description": "x"}, status=401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    bad = post_json(partner_stack, PARTNER, {"kind": "abuse", "description": "x"},
                    headers={"Authorization": "Bearer not-a-token"}, status=401)
    assert "invalid_token" in bad.headers["WWW-Authenticate"]
    assert reports_of(store, "reports.partner-report") == []


def test_without_an_auth_layer_partner_reports_are_refused_unless_anonymous(make_reports, store):
    post_json(make_reports(), PARTNER, {"kind": "abuse", "description": "x"}, status=401)
    app = make_reports(anonymous_reports=True, rate_limit_anonymous="2/1m")
    first = post_json(app, PARTNER, {"kind": "abuse", "description": "one"}, status=201)
    post_json(app, PARTNER, {"kind": "abuse", "description": "two"}, status=201)
    post_json(app, PARTNER, {"kind": "abuse", "description": "three"}, status=429)
    event = reports_of(store, "reports.partner-report")[0]
    assert event["client_id"] is None and event["detail"]["anonymous"] is True
    assert event["incident_id"] == first.json["incident_id"]


def test_identical_partner_reports_are_counted(partner_stack, store):
    report = {"kind": "abuse", "description": "Someone is scraping with our key."}
    first = post_json(partner_stack, PARTNER, report, headers=bearer(partner_stack), status=201)
    again = post_json(partner_stack, PARTNER, report, headers=bearer(partner_stack), status=200)
    assert again.json == {"id": first.json["id"], "status": "duplicate", "count": 2}
    assert len(reports_of(store, "reports.partner-report")) == 1


BAD_PARTNER = [
    pytest.param({"kind": "abuse"}, "description", id="no-description"),
    pytest.param({"kind": "hack", "description": "x"}, "kind must be", id="unknown-kind"),
    pytest.param({"kind": "abuse", "description": "x", "admin": True}, "outside the schema", id="extra-field"),
    pytest.param({"kind": "abuse", "description": "x", "incident_id": "../../etc"}, "incident_id", id="bad-incident"),
    pytest.param({"kind": "abuse", "description": "x", "observed_at": "yesterday"}, "observed_at", id="bad-time"),
    pytest.param({"kind": "abuse", "description": "x", "evidence": {"a": {"b": 1}}}, "evidence", id="nested-evidence"),
    pytest.param({"kind": "abuse", "description": "x", "evidence": {"<script>": "1"}}, "evidence keys",
                 id="evidence-key"),
    pytest.param([1, 2, 3], "JSON object", id="not-an-object"),
]


@pytest.mark.parametrize("document, message", BAD_PARTNER)
def test_partner_reports_outside_the_schema_are_400(partner_stack, document, message):
    response = post_json(partner_stack, PARTNER, document, headers=bearer(partner_stack), status=400)
    assert message in response.json["detail"] and response.json["reason"] == "report-invalid"
    assert "<script>" not in response.text and "admin" not in response.json["detail"]


def test_partner_report_is_truncated_and_pasted_tokens_redacted(partner_stack, store):
    description = "Saw Bearer abcdefghijklmnop123 in a log. " + "x" * 6000
    post_json(partner_stack, PARTNER, {"kind": "compromise", "description": description},
              headers=bearer(partner_stack), status=201)
    [event] = reports_of(store, "reports.partner-report")
    assert event["severity"] == "critical" and event["detail"]["truncated"] is True
    assert len(event["detail"]["description"]) == 4000
    assert "abcdefghijklmnop123" not in event["detail"]["description"]


def test_partner_reports_are_rate_limited_per_client(store):
    token_auth = TokenAuth(legacy_app, store=store, require_tls=False)
    app = TestApp(validated(Reports(token_auth, store=store, rate_limit_client="2/1h")))
    client, _ = token_auth.registry.create("Acme", scopes=[])
    headers = {"Authorization": "Bearer " + token_auth.issue_token(client["id"])["access_token"]}
    for number in range(2):
        post_json(app, PARTNER, {"kind": "abuse", "description": f"n{number}"}, headers=headers, status=201)
    refused = post_json(app, PARTNER, {"kind": "abuse", "description": "n3"}, headers=headers, status=429)
    assert refused.headers["Retry-After"] == "3600"


# -- security.txt and the app's responses ---------------------------------------------

def test_security_txt_has_contact_and_a_rolling_expiry(make_reports):
    app = make_reports(security_contact=("mailto:security@example.com", "https://example.com/report"),
                       security_policy=("https://example.com/policy",), security_languages=("en", "de"))
    response = app.get("/.well-known/security.txt")
    assert response.content_type == "text/plain"
    lines = response.text.splitlines()
    assert lines[:2] == ["Contact: mailto:security@example.com", "Contact: https://example.com/report"]
    assert "Policy: https://example.com/policy" in lines and "Preferred-Languages: en, de" in lines
    expires = [line for line in lines if line.startswith("Expires: ")][0][9:]
    seconds = time.mktime(time.strptime(expires, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert 29 * 86400 < seconds - time.time() <= 30 * 86400
    app.post("/.well-known/security.txt", status=405)
    assert app.head("/.well-known/security.txt").body == b""


def test_without_contact_security_txt_is_the_apps(make_reports):
    assert make_reports().get("/.well-known/security.txt").json == {"path": "/.well-known/security.txt"}


def test_app_responses_name_the_reporting_endpoint(make_reports):
    app = make_reports()
    response = app.get("/api/items")
    assert response.json == {"path": "/api/items"}
    assert response.headers["Reporting-Endpoints"] == \
        'default="/_wsgisec/reports/browser", wsgisec-csp="/_wsgisec/reports/browser"'


def test_an_existing_reporting_endpoints_header_is_extended_not_duplicated(make_reports):
    def app_with_header(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Reporting-Endpoints", 'wsgisec-csp="/_wsgisec/reports/browser"')])
        return [b"ok"]

    response = make_reports(app_with_header).get("/")
    assert response.headers.getall("Reporting-Endpoints") == [
        'wsgisec-csp="/_wsgisec/reports/browser", default="/_wsgisec/reports/browser"']


# -- settings -------------------------------------------------------------------------

@pytest.mark.parametrize("local_conf, message", [
    pytest.param({"rate_limit_clients": "1/1m"}, "unknown setting", id="typo"),
    pytest.param({"rate_limit_client": "fast"}, "a rate such as 60/1m", id="bad-rate"),
    pytest.param({"security_contact": "security@example.com"}, "absolute URIs", id="contact-not-uri"),
    pytest.param({"browser_path": "reports"}, "starting with /", id="relative-path"),
    pytest.param({"browser_origins": "https://a.example/path"}, "origins", id="origin-with-path"),
    pytest.param({"anonymous_reports": "ture"}, "true or false", id="lenient-boolean"),
    pytest.param({"browser_path": "/r", "partner_path": "/r"}, "must differ", id="same-paths"),
    pytest.param({"security_expires": "400d"}, "less than a year", id="expires-over-a-year"),
    pytest.param({"retention": "1h"}, "at least 1d", id="retention-too-short"),
    pytest.param({"dashboard_path": "/_wsgisec/reports"}, "must differ", id="dashboard-on-intake"),
])
def test_bad_settings_fail_at_start_up(tmp_path, local_conf, message):
    with pytest.raises(ConfigurationError, match=message):
        filter_factory({"here": str(tmp_path)}, **local_conf)


def test_filter_factory_builds_the_layer_with_the_default_store(tmp_path):
    layer = filter_factory({"here": str(tmp_path)}, security_contact="mailto:s@example.com",
                           rate_limit_global="100/1h")(legacy_app)
    assert isinstance(layer, Reports) and layer.store.url.endswith("wsgisec.sqlite")
    assert layer.settings["rate_limit_global"] == "100/3600s"
    assert layer.warnings() == ["no authentication layer (token_auth, signed_requests) inside this "
                                "one: partner reports are refused unless another layer sets wsgisec.client"]


def test_every_setting_is_documented_and_in_the_flagship_ini():
    import wsgisec.reports
    from conftest import EXAMPLES, ROOT

    docstring = wsgisec.reports.__doc__
    readme = (ROOT / "README.md").read_text()
    ini = (EXAMPLES / "partner_api.ini").read_text()
    layer = Reports(None)
    for key in wsgisec.reports.SETTINGS:
        assert f"``{key}``" in docstring, key
        assert f"`{key}`" in readme, key
        assert f"\n{key} =" in ini or f"\n# {key} =" in ini or key == "store", key
        assert key in layer.settings, key
