"""The whole flagship stack (examples/partner_api.ini) as partners and browsers meet it.

Every layer is in front of the legacy Flask app, loaded by PasteDeploy as `wsgisec serve`
loads it. These tests check what no single layer's tests can: that the layers compose
(no request slips between two of them) and that a real client gets through.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import ssl
import threading
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from webtest import TestApp

from conftest import skip_without_chromium, validated
from wsgisec import credentials, pipeline
from wsgisec.testing import PartnerTestApp, partner_credentials
from wsgisec.token_auth import TokenAuth

# The example trusts a TLS-terminating proxy on 127.0.0.1; WebTest plays it.
VIA_TLS_PROXY = {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_PROTO": "https", "HTTP_HOST": "localhost"}


@pytest.fixture
def stack(load_example):
    return load_example("partner_api.ini")


@pytest.fixture
def partner(stack):
    """A partner client with scopes, a bearer token, a request token and a signing key."""
    token_auth = pipeline.find_layer(stack, TokenAuth)
    client, _secret = token_auth.registry.create("Acme", scopes=["items:read", "items:write"])
    access_token = token_auth.issue_token(client["id"])["access_token"]
    app = PartnerTestApp(validated(stack), **partner_credentials(stack, client["id"]),
                         access_token=access_token, extra_environ=dict(VIA_TLS_PROXY))
    app.access = access_token
    return app


def test_a_signed_partner_reaches_the_legacy_app(partner):
    items = partner.get("/api/items?q=Wid")
    assert items.json["items"][0]["name"] == "Widget"
    assert items.headers["Strict-Transport-Security"] == "max-age=31536000"
    assert items.headers["X-Content-Type-Options"] == "nosniff"
    assert "X-Powered-By" not in items.headers and "Server" not in items.headers
    created = partner.post_json("/api/items", {"name": "Sprocket XL", "price": 4.5}, status=201)
    assert created.json["name"] == "Sprocket XL"


def test_json_the_legacy_app_concatenates_is_escaped_for_html_parsers(partner):
    """A name with an apostrophe (allowed text) comes back escaped as \\u0027."""
    response = partner.get("/api/items?q=O%27Brien")
    assert b"O\\u0027Brien" in response.body and response.json["items"][0]["name"] == "O'Brien's sprocket"


@pytest.mark.parametrize("path", ["/api/items", "/api/whoami", "/api/items.xml"])
def test_a_bearer_token_alone_is_refused_everywhere(partner, path):
    plain = TestApp(validated(partner.app), extra_environ=dict(VIA_TLS_PROXY))
    response = plain.get(path, headers={"Authorization": f"Bearer {partner.access}"}, status=401)
    assert response.json["reason"] == "signature-missing"


def test_signed_requests_are_still_checked_by_the_allowlist(partner):
    response = partner.get("/api/items?q=%27%20OR%201%3D1--", status=400)
    assert response.json["detail"].startswith('query parameter "q"')
    assert "OR 1=1" not in response.text
    partner.get("/api/items?debug=1", status=400)
    partner.get("/api/admin", status=404)


def test_insufficient_scope_is_refused_before_the_signature_matters(stack):
    token_auth = pipeline.find_layer(stack, TokenAuth)
    client, _ = token_auth.registry.create("Reader", scopes=["items:read"])
    app = PartnerTestApp(validated(stack), **partner_credentials(stack, client["id"]),
                         access_token=token_auth.issue_token(client["id"])["access_token"],
                         extra_environ=dict(VIA_TLS_PROXY))
    denied = app.post_json("/api/items", {"name": "x"}, status=403)
    assert 'error="insufficient_scope"' in denied.headers["WWW-Authenticate"]


def test_a_crash_is_masked_for_a_partner_and_kept_for_the_operator(partner, caplog):
    caplog.set_level(logging.ERROR, "wsgisec")
    response = partner.get("/api/crash", status=500, expect_errors=True)
    assert "ZeroDivisionError" not in response.text and "Traceback" not in response.text
    incident = response.json["incident_id"]
    assert any(incident in record.getMessage() and record.exc_info for record in caplog.records)


def test_the_sql_error_the_legacy_app_returns_is_masked(partner, caplog):
    caplog.set_level(logging.ERROR, "wsgisec")
    # The allowlist lets O'Brien through (it is a name); the legacy SQL breaks on it.
    response = partner.get("/api/lookup?name=O%27Brien", status=500)
    assert "sqlite3" not in response.text and "SELECT" not in response.text
    assert "leak-masked" in caplog.text


SAFE_HEADERS = {"Strict-Transport-Security": "max-age=31536000", "X-Content-Type-Options": "nosniff"}


@pytest.mark.parametrize("case", ["masked-crash", "masked-sql-error", "no-token", "unsigned",
                                  "allowlist-refusal", "undeclared-path", "insufficient-scope"])
def test_every_response_over_tls_keeps_the_safe_headers(partner, stack, case):
    """Masked errors and every layer's refusals carry HSTS and the safe headers, like any
    other response (issue 11: the masker used to rebuild a 500 without them)."""
    plain = TestApp(validated(stack), extra_environ=dict(VIA_TLS_PROXY))
    response = {
        "masked-crash": lambda: partner.get("/api/crash", status=500, expect_errors=True),
        "masked-sql-error": lambda: partner.get("/api/lookup?name=O%27Brien", status=500),
        "no-token": lambda: plain.get("/api/items", status=401),
        "unsigned": lambda: plain.get("/api/items", headers={"Authorization": f"Bearer {partner.access}"},
                                      status=401),
        "allowlist-refusal": lambda: partner.get("/api/items?debug=1", status=400),
        "undeclared-path": lambda: partner.get("/api/admin", status=404),
        "insufficient-scope": lambda: partner.delete("/api/items", status=(403, 405)),
    }[case]()
    for name, value in SAFE_HEADERS.items():
        assert response.headers.get(name) == value, name
    assert response.headers["X-Frame-Options"] in ("DENY", "SAMEORIGIN")
    assert "Referrer-Policy" in response.headers


def test_a_token_sent_over_plain_http_is_refused_and_revoked(partner, stack):
    plain_http = TestApp(validated(stack), extra_environ={"REMOTE_ADDR": "203.0.113.7", "HTTP_HOST": "localhost"})
    plain_http.get("/api/items", headers={"Authorization": f"Bearer {partner.access}"}, status=403)
    store = pipeline.find_layer(stack, TokenAuth).store
    assert store.get(credentials.TOKENS, credentials.digest(partner.access)) is None
    refused = partner.get("/api/items", status=401)  # signed, but the token is gone
    assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]


def test_replaying_a_captured_signed_request_is_refused(partner):
    captured = {}

    def capture(environ, start_response):
        captured.update({key: value for key, value in environ.items() if key.startswith("HTTP_")})
        return app(environ, start_response)

    app = partner.app
    partner.app = capture
    partner.get("/api/items")
    partner.app = app
    replay = TestApp(validated(app), extra_environ=dict(VIA_TLS_PROXY))
    response = replay.get("/api/items", headers={key[5:].replace("_", "-").title(): value
                                                 for key, value in captured.items() if key != "HTTP_HOST"},
                          status=401)
    assert response.json["reason"] == "replayed"


# -- a real browser through the whole stack, over real TLS --------------------------------


def self_signed_certificate(directory):
    """A certificate for 127.0.0.1 and localhost, made with the cryptography package."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "wsgisec test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                               x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                  critical=False)
                   .sign(key, hashes.SHA256()))
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


def serve_tls(app, directory):
    """Serve ``app`` over HTTPS on 127.0.0.1 (wsgiref with a TLS socket, in a thread)."""
    cert_file, key_file = self_signed_certificate(directory)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)

    def tls(environ, start_response):
        environ["wsgi.url_scheme"] = "https"  # this server terminates TLS itself
        return app(environ, start_response)

    server = make_server("127.0.0.1", 0, tls, server_class=_Server, handler_class=_Quiet)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def serve_plain(app):
    server = make_server("127.0.0.1", 0, app, server_class=_Server, handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.mark.browser
@skip_without_chromium
def test_a_browser_uses_the_legacy_form_through_every_layer_and_a_cross_site_post_fails(stack, tmp_path, browser):
    site = serve_tls(stack, tmp_path)
    origin = f"https://127.0.0.1:{site.server_address[1]}"
    attack = (f'<!DOCTYPE html><html><body><form id="f" method="post" action="{origin}/notes">'
              f'<input name="note" value="forged from another site"></form>'
              f'<script>document.getElementById("f").submit()</script></body></html>').encode()
    evil = serve_plain(lambda environ, start_response: (
        start_response("200 OK", [("Content-Type", "text/html")]), [attack])[1])
    context = browser.new_context(ignore_https_errors=True)
    try:
        page = context.new_page()
        page.set_default_timeout(15000)
        first = page.goto(f"{origin}/notes")
        assert first.headers["strict-transport-security"] == "max-age=31536000"
        page.fill("input[name=note]", "O'Brien & AT&T <3")
        with page.expect_navigation():
            page.click("button[type=submit]")
        # Passed the allowlist (real text), the CSRF check (injected token) and the
        # escaping layer (shown as typed, not as markup).
        assert page.locator("li").last.inner_text() == "O'Brien & AT&T <3"

        with page.expect_response(lambda r: r.url == f"{origin}/notes"
                                  and r.request.method == "POST") as posted:
            page.goto(f"http://localhost:{evil.server_address[1]}/")
        assert posted.value.status == 403
        assert "csrf-cross-site" in posted.value.text()
        page.goto(f"{origin}/notes")
        assert "forged from another site" not in page.content()
    finally:
        context.close()
        site.shutdown()
        site.server_close()
        evil.shutdown()
        evil.server_close()
