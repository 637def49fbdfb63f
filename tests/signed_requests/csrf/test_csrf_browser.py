"""A real browser against BrowserCSRF: Debian's chromium driven by Playwright for Python.

The legacy Flask app (its ``/notes`` form, cookie session) is served by waitress behind
BrowserCSRF on ``127.0.0.1:<port>``. A second waitress server on ``localhost:<other
port>`` (another *site* for the browser: ``localhost`` and ``127.0.0.1`` are different
hosts) serves an attacker's page whose form posts itself to the notes page.
"""

from __future__ import annotations

import pytest

from conftest import needs_chromium

from flask_legacy.app import create_app
from wsgisec.signed_requests.csrf import BrowserCSRF
from wsgisec.settings import Secret

pytestmark = needs_chromium

@pytest.fixture
def victim(wsgi_server):
    csrf = BrowserCSRF(create_app(), secret_keys=(Secret("browser-test-key-0123456789abcdef", "env"),),
                       store=None, csrf_session_cookie="session")
    return wsgi_server(csrf, clear_untrusted_proxy_headers=True).url


@pytest.fixture
def attacker(victim, wsgi_server):
    page = (f'<!DOCTYPE html><html><head><title>Win a prize</title></head><body>'
            f'<form id="f" method="post" action="{victim}/notes">'
            f'<input name="note" value="attack from another site"></form>'
            f'<script>document.getElementById("f").submit()</script></body></html>').encode()

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                                  ("Content-Length", str(len(page)))])
        return [page]

    # "localhost" is another site than "127.0.0.1" for the browser.
    return f"http://localhost:{wsgi_server(app).port}"


@pytest.fixture
def page(browser):
    context = browser.new_context()
    context.set_default_timeout(15000)
    yield context.new_page()
    context.close()


def test_legacy_form_submits_and_cross_site_post_is_refused(victim, attacker, page):
    page.goto(f"{victim}/notes")
    page.fill("input[name=note]", "hello from chromium")
    with page.expect_navigation():
        page.click("button[type=submit]")
    assert "<li>hello from chromium</li>" in page.content()

    # A script on the page reads the token and header name from the <meta> tags.
    status = page.evaluate("""async () => {
        const header = document.querySelector('meta[name="csrf-header"]').content;
        const token = document.querySelector('meta[name="csrf-token"]').content;
        const response = await fetch('/notes', {method: 'POST', headers: {[header]: token},
                                     body: new URLSearchParams({note: 'hello from fetch'})});
        return response.status;
    }""")
    assert status == 200

    # Without the token the same script is refused.
    status = page.evaluate("""async () => (await fetch('/notes', {method: 'POST',
        body: new URLSearchParams({note: 'no token'})})).status""")
    assert status == 403

    # The attacker's page posts its form to the notes page as soon as it loads.
    with page.expect_response(lambda r: r.url == f"{victim}/notes" and r.request.method == "POST") as posted:
        page.goto(attacker)
    response = posted.value
    assert response.status == 403
    assert response.request.all_headers().get("sec-fetch-site") == "cross-site"
    assert "csrf-cross-site" in response.text()

    page.goto(f"{victim}/notes")
    text = page.content()
    assert "attack from another site" not in text and "no token" not in text
    assert "<li>hello from chromium</li>" in text and "<li>hello from fetch</li>" in text
