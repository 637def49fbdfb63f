"""A real Chromium reports a CSP violation on a page of the flagship example, and the
operator sees it with ``wsgisec reports list``.

The flagship stack is served over TLS (the https layer refuses anything else) on
127.0.0.1; the page's CSP comes from the escaping layer, with ``report-uri`` and
``report-to`` naming the reports layer's browser intake. The test waits by polling the
store for the report, never by a fixed sleep.
"""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import EXAMPLES, needs_chromium
from reports_support import reports_of, wait_for
from test_stack import serve_tls
from wsgisec import pipeline
from wsgisec.cli import main
from wsgisec.reports import Reports

pytestmark = needs_chromium

# The certificate is self-signed: the browser's own network service (which uploads
# reports) must accept it too, not only the page's context. A short reporting delay
# makes Chromium send Reporting API batches at once instead of after about a minute.
EXTRA_FLAGS = ("--ignore-certificate-errors", "--short-reporting-delay")


@pytest.fixture
def ini(tmp_path):
    copy = tmp_path / "examples"
    shutil.copytree(EXAMPLES, copy, ignore=shutil.ignore_patterns("var", "__pycache__", "*.sqlite*"))
    return str(copy / "partner_api.ini")


def test_a_csp_violation_in_chromium_reaches_reports_list(ini, tmp_path, capsys, chromium_with):
    stack = pipeline.load(ini)
    store = pipeline.find_layer(stack, Reports).store
    site = serve_tls(stack, tmp_path)
    origin = f"https://127.0.0.1:{site.server_address[1]}"
    try:
        page = chromium_with(*EXTRA_FLAGS).new_context(ignore_https_errors=True).new_page()
        page.set_default_timeout(15000)
        response = page.goto(f"{origin}/search?q=widgets")
        policy = response.headers["content-security-policy-report-only"]
        assert "report-uri /_wsgisec/reports/browser" in policy
        assert "wsgisec-csp=" in response.headers["reporting-endpoints"]
        # An inline script: default-src 'self' does not allow it (report-only, so it
        # still runs, and the browser reports the violation).
        page.add_script_tag(content="window.__inline = 1")
        assert page.evaluate("window.__inline") == 1
        found = wait_for(lambda: reports_of(store, "reports.csp-violation"), timeout=30)
    finally:
        site.shutdown()
    assert found, "no CSP report reached the store"
    detail = found[0]["detail"]
    assert detail["document_url"] == f"{origin}/search"  # without ?q=widgets
    assert detail["effective_directive"].startswith("script-src")
    assert detail["blocked_url"] == "inline"

    assert main(["reports", "list", "--config", ini, "--kind", "reports.csp-violation"]) == 0
    out = capsys.readouterr().out
    assert "reports.csp-violation" in out and "browser report: csp-violation" in out
    assert main(["reports", "list", "--config", ini, "--json"]) == 0
    kinds = [json.loads(line)["kind"] for line in capsys.readouterr().out.splitlines()]
    assert "reports.csp-violation" in kinds
