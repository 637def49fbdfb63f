"""``wsgisec reports ...`` on a copy of the flagship example, as an operator runs them."""

from __future__ import annotations

import csv
import io
import json
import logging
import shutil

import pytest

from conftest import EXAMPLES, init_store, validated
from reports_support import post_json
from wsgisec import pipeline
from wsgisec.cli import main
from wsgisec.reports import Reports
from wsgisec.testing import PartnerTestApp, partner_credentials
from wsgisec.token_auth import TokenAuth

# A partner calling https://localhost/ through the example's trusted local TLS proxy.
VIA_TLS_PROXY = {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_PROTO": "https", "HTTP_HOST": "localhost"}


@pytest.fixture
def ini(tmp_path):
    """A copy of the examples folder (the ini names files beside it), with its own store."""
    copy = tmp_path / "examples"
    shutil.copytree(EXAMPLES, copy, ignore=shutil.ignore_patterns("var", "__pycache__", "*.sqlite*"))
    init_store(copy / "partner_api.ini")
    return str(copy / "partner_api.ini")


@pytest.fixture
def stack(ini):
    return pipeline.load(ini)


@pytest.fixture
def partner(stack):
    token_auth = pipeline.find_layer(stack, TokenAuth)
    client, _secret = token_auth.registry.create("Acme", scopes=["items:read"])
    token = token_auth.issue_token(client["id"])["access_token"]
    app = PartnerTestApp(validated(stack), **partner_credentials(stack, client["id"]),
                         access_token=token, extra_environ=dict(VIA_TLS_PROXY))
    app.client_id = client["id"]
    return app


@pytest.fixture
def quiet_app_logs():
    # The legacy app logs its own exception; that is what the masker hides, not a failure.
    logging.disable(logging.CRITICAL)
    yield
    logging.disable(logging.NOTSET)


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_partner_report_is_joined_to_the_masked_error_it_quotes(ini, partner, capsys, quiet_app_logs):
    crashed = partner.get("/api/crash", status=500, expect_errors=True)
    incident = crashed.json["incident_id"]
    assert "ZeroDivisionError" not in crashed.text

    report = {"kind": "suspicious-error", "description": "Your API failed for us.",
              "incident_id": incident, "evidence": {"endpoint": "/api/crash"}}
    created = partner.post_json("/_wsgisec/reports", report, status=201)
    assert created.json["incident_id"] == incident

    code, out, _ = run(capsys, "reports", "show", incident, "--config", ini)
    assert code == 0
    assert f"incident {incident}: 2 event(s)" in out
    assert out.index("error_masker.exception-masked") < out.index("reports.partner-report")
    assert f"client_id: {partner.client_id}" in out and "detail.description: Your API failed for us." in out
    # The traceback error_masker kept, on the operator's command line (never over HTTP).
    assert "traceback (kept by error_masker" in out and "ZeroDivisionError" in out

    code, out, _ = run(capsys, "reports", "show", incident, "--config", ini, "--json")
    kinds = [json.loads(line)["kind"] for line in out.splitlines()]
    assert kinds == ["error_masker.exception-masked", "reports.partner-report"]
    assert "ZeroDivisionError" not in out  # --json is the events only: scripts get no traceback


def test_show_prints_the_original_body_of_a_masked_sql_error(ini, partner, capsys, quiet_app_logs):
    masked = partner.get("/api/lookup?name=O%27Brien", status=500)
    assert "sqlite3" not in masked.text
    code, out, _ = run(capsys, "reports", "show", masked.json["incident_id"], "--config", ini)
    assert code == 0 and "original body (kept by error_masker" in out and "sqlite3" in out


def test_show_unknown_or_malformed_incident(ini, stack, capsys):
    assert run(capsys, "reports", "show", "0123456789abcdef", "--config", ini)[0] == 3
    code, _, err = run(capsys, "reports", "show", "'; DROP TABLE", "--config", ini)
    assert code == 2 and "16 hex digits" in err


def test_list_is_newest_first_and_filters(ini, partner, capsys):
    partner.get("/api/items", extra_environ={"HTTP_AUTHORIZATION": ""}, status=401, expect_errors=True)
    partner.post_json("/_wsgisec/reports", {"kind": "abuse", "description": "scraping"}, status=201)
    code, out, _ = run(capsys, "reports", "list", "--config", ini)
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:3] == ["TIME", "KIND", "SEVERITY"]
    assert "reports.partner-report" in lines[1]  # newest first
    assert any("token_auth." in line for line in lines[2:])

    code, out, _ = run(capsys, "reports", "list", "--config", ini, "--kind", "token_auth.*", "--json")
    events = [json.loads(line) for line in out.splitlines()]
    assert events and all(event["kind"].startswith("token_auth.") for event in events)

    code, out, _ = run(capsys, "reports", "list", "--config", ini, "--client", partner.client_id, "--json")
    assert [json.loads(line)["kind"] for line in out.splitlines()] == ["reports.partner-report"]
    code, out, _ = run(capsys, "reports", "list", "--config", ini, "--since", "1h", "--client", "c_none")
    assert out == ""


def test_terminal_escapes_in_reports_never_reach_the_operator(ini, stack, capsys):
    reports = pipeline.find_layer(stack, Reports)
    from webtest import TestApp

    app = TestApp(validated(stack), extra_environ=dict(VIA_TLS_PROXY))
    hostile = {"csp-report": {"document-uri": "https://localhost/\x1b]0;pwned\x07",
                              "effective-directive": "script-src\x1b[2J", "blocked-uri": "inline"}}
    post_json(app, reports.browser_path, hostile, "application/csp-report", status=204)
    code, out, _ = run(capsys, "reports", "list", "--config", ini)
    assert code == 0 and "reports.csp-violation" in out and "\x1b" not in out
    event = json.loads(run(capsys, "reports", "list", "--config", ini, "--json")[1].splitlines()[0])
    code, out, _ = run(capsys, "reports", "show", event["incident_id"], "--config", ini)
    assert "\x1b" not in out and "\x07" not in out and "script-src?[2J" in out


def test_export_csv_is_formula_safe(ini, partner, capsys, tmp_path):
    partner.post_json("/_wsgisec/reports", {"kind": "abuse", "description": "=HYPERLINK(\"http://x\")",
                                             "evidence": {"cell": "+1+cmd|' /C calc'!A0"}}, status=201)
    output = tmp_path / "events.csv"
    code, _, err = run(capsys, "reports", "export", "--config", ini, "--format", "csv", "--output", str(output))
    assert code == 0 and "wrote 1 events" in err
    rows = list(csv.DictReader(io.StringIO(output.read_text())))
    assert rows[0]["kind"] == "reports.partner-report"
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), value
    assert json.loads(rows[0]["detail"])["description"] == '=HYPERLINK("http://x")'

    code, out, _ = run(capsys, "reports", "export", "--config", ini, "--format", "jsonl", "--kind", "reports.*")
    assert [json.loads(line)["detail"]["evidence"]["cell"] for line in out.splitlines()] == ["+1+cmd|' /C calc'!A0"]


def test_stats_counts_per_kind_client_and_time(ini, partner, capsys):
    for number in range(3):
        partner.post_json("/_wsgisec/reports", {"kind": "abuse", "description": f"n{number}"}, status=201)
    code, out, _ = run(capsys, "reports", "stats", "--config", ini, "--json")
    result = json.loads(out)
    assert code == 0 and result["by_kind"]["reports.partner-report"] == 3
    assert result["by_client"][partner.client_id] == 3
    assert sum(row.get("reports.partner-report", 0) for row in result["over_time"]) == 3
    code, out, _ = run(capsys, "reports", "stats", "--config", ini)
    assert "by kind:" in out and "reports.partner-report  3" in out
    assert run(capsys, "reports", "stats", "--config", ini, "--bucket", "0")[0] == 2


def test_a_config_without_the_layer_is_a_clear_error(capsys):
    from conftest import ROOT

    with pytest.raises(SystemExit) as exited:
        main(["reports", "list", "--config", str(ROOT / "tests" / "ini" / "check_clean.ini")])
    assert exited.value.code == 2 and "has no reports layer" in capsys.readouterr().err


def test_check_warns_without_a_contact(ini, capsys):
    text = open(ini).read().replace("security_contact = mailto:security@example.com\n", "")
    with open(ini, "w") as handle:
        handle.write(text)
    code, out, _ = run(capsys, "check", ini)
    assert code == 1 and "reports: security_contact is not set" in out


def test_in_the_flagship_a_partner_report_must_be_signed_too(partner, stack):
    # A valid bearer token without the request token and signature signed_requests wants.
    unsigned = partner.post_json("/_wsgisec/reports", {"kind": "abuse", "description": "x"},
                                 headers={"Authorization": f"Bearer {partner.access_token}"},
                                 extra_environ={"wsgisec.testing.unsigned": True}, expect_errors=True)
    assert unsigned.status_int in (400, 401) and unsigned.json["reason"].startswith(("signature", "request-token"))
    anonymous = partner.post_json("/_wsgisec/reports", {"kind": "abuse", "description": "x"},
                                  extra_environ={"wsgisec.testing.unsigned": True, "HTTP_AUTHORIZATION": ""},
                                  expect_errors=True)
    assert anonymous.status_int == 401
    store = pipeline.find_layer(stack, Reports).store
    assert store.events(kinds=["reports.partner-report"]) == []


def test_the_installed_command_runs_the_verbs(ini, partner):
    import subprocess
    import sys

    partner.post_json("/_wsgisec/reports", {"kind": "abuse", "description": "scraping"}, status=201)
    done = subprocess.run([sys.executable, "-m", "wsgisec.cli", "reports", "list", "--config", ini, "--json"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["kind"] for line in done.stdout.splitlines()] == ["reports.partner-report"]
