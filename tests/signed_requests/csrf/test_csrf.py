"""BrowserCSRF: Fetch Metadata / Origin checks, the signed double-submit token, injection.

The legacy Flask app's ``/notes`` page (an HTML form posted with a ``session`` cookie)
is the victim throughout; every refusal is also checked to have kept the attacker's note
out of the app.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import logging
import os
import pathlib
import re
import time

import pytest
from webtest import TestApp

from conftest import ClosingBody, exc_info_app, validated
from flask_legacy.app import create_app
from wsgisec import pipeline
from wsgisec.signed_requests.csrf import BrowserCSRF, inject
from wsgisec.settings import ConfigurationError, Secret

INI = pathlib.Path(__file__).resolve().parents[2] / "ini"
KEY = Secret("csrf-test-key-0123456789abcdef0123", "env")
OLD_KEY = Secret("csrf-old-key-0123456789abcdef01234", "env")
OTHER_KEY = Secret("somebody-elses-key-0123456789abcdef", "env")
TOKEN_FIELD = re.compile(r'<input type="hidden" name="csrf_token" value="([A-Za-z0-9_-]+)">')
META = re.compile(r'<meta name="csrf-token" content="([A-Za-z0-9_-]+)">'
                  r'<meta name="csrf-header" content="X-CSRF-Token">')


def layer(app=None, **kw):
    kw.setdefault("secret_keys", (KEY,))
    kw.setdefault("csrf_session_cookie", "session")
    return BrowserCSRF(app if app is not None else create_app(), **kw)


def client(app, **extra_environ):
    return TestApp(validated(app), extra_environ=extra_environ)


class Browser:
    """A browser that loaded /notes: its cookies and the token in the page's form."""

    def __init__(self, csrf, session=None):
        self.csrf = csrf
        app = client(csrf)
        if session:
            app.set_cookie("session", session)
        page = app.get("/notes")
        self.token = page.forms[0]["csrf_token"].value
        self.cookies = dict(app.cookies)

    def cookie_header(self, **override):
        cookies = dict(self.cookies, **override)
        return "; ".join(f"{name}={value}" for name, value in cookies.items() if value is not None)

    def post(self, params=None, headers=None, cookies=None, status=None, **kw):
        headers = dict(headers or {})
        headers.setdefault("Cookie", cookies if cookies is not None else self.cookie_header())
        if not headers["Cookie"]:
            del headers["Cookie"]
        return client(self.csrf).post("/notes", params if params is not None else
                                      {"note": "attack", "csrf_token": self.token},
                                      headers=headers, status=status, **kw)


def notes(csrf):
    return client(csrf).get("/notes", headers={"Cookie": "session=legacy-session-id"}).text


@pytest.fixture
def clock():
    now = [time.time()]
    return now


@pytest.fixture
def csrf(clock):
    return layer(clock=lambda: clock[0], csrf_max_age=3600)


# -- refusals -----------------------------------------------------------------------

def _other_session(ctx):
    attacker = Browser(ctx.csrf, session="attacker-session")
    # The attacker's own valid token pair, planted next to the victim's session cookie.
    return {"params": {"note": "attack", "csrf_token": attacker.token},
            "cookies": ctx.victim.cookie_header(csrf=attacker.cookies["csrf"])}


def _unknown_key(ctx):
    forger = Browser(layer(secret_keys=(OTHER_KEY,)))
    return {"params": {"note": "attack", "csrf_token": forger.token},
            "cookies": ctx.victim.cookie_header(csrf=forger.cookies["csrf"])}


def _expired(ctx):
    ctx.clock[0] += 3601
    return {}


ATTACKS = [
    pytest.param(lambda ctx: {"headers": {"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}},
                 "csrf-cross-site", id="cross-site-fetch-metadata"),
    pytest.param(lambda ctx: {"headers": {"Sec-Fetch-Site": "cross-site"}},
                 "csrf-cross-site", id="cross-site-without-origin"),
    pytest.param(lambda ctx: {"headers": {"Sec-Fetch-Site": "same-site", "Origin": "http://evil.localhost"}},
                 "csrf-same-site", id="same-site-untrusted-origin"),
    pytest.param(lambda ctx: {"headers": {"Sec-Fetch-Site": "sideways"}},
                 "csrf-fetch-site-invalid", id="unknown-sec-fetch-site"),
    pytest.param(lambda ctx: {"headers": {"Origin": "https://evil.example"}},
                 "csrf-origin-mismatch", id="bad-origin"),
    pytest.param(lambda ctx: {"headers": {"Origin": "http://localhost:8080"}},
                 "csrf-origin-mismatch", id="origin-other-port"),
    pytest.param(lambda ctx: {"headers": {"Origin": "https://localhost"}},
                 "csrf-origin-mismatch", id="origin-other-scheme"),
    pytest.param(lambda ctx: {"headers": {"Origin": "http://localhost.evil.example"}},
                 "csrf-origin-mismatch", id="origin-suffix-trick"),
    pytest.param(lambda ctx: {"headers": {"Origin": "not an origin"}},
                 "csrf-origin-mismatch", id="malformed-origin"),
    pytest.param(lambda ctx: {"headers": {"Origin": "null"}},
                 "csrf-origin-null", id="null-origin"),
    pytest.param(lambda ctx: {"headers": {"Referer": "https://evil.example/page"}},
                 "csrf-referer-mismatch", id="bad-referer-without-origin"),
    pytest.param(lambda ctx: {"params": {"note": "attack"}},
                 "csrf-token-missing", id="missing-token"),
    pytest.param(lambda ctx: {"params": {"note": "attack", "csrf_token": ""}},
                 "csrf-token-missing", id="empty-token"),
    pytest.param(lambda ctx: {"cookies": "session=legacy-session-id"},
                 "csrf-cookie-missing", id="missing-cookie"),
    pytest.param(lambda ctx: {"params": {"note": "attack", "csrf_token": base64.urlsafe_b64encode(
                     os.urandom(len(ctx.victim.token) * 3 // 4)).decode().rstrip("=")}},
                 "csrf-token-mismatch", id="forged-token"),
    pytest.param(lambda ctx: {"params": {"note": "attack", "csrf_token": ctx.victim.cookies["csrf"]}},
                 "csrf-token-invalid", id="unmasked-cookie-value-as-token"),
    pytest.param(lambda ctx: {"params": {"note": "attack", "csrf_token": "!!!"}},
                 "csrf-token-invalid", id="malformed-token"),
    pytest.param(lambda ctx: {"cookies": ctx.victim.cookie_header(csrf="forged.value.sig")},
                 "csrf-token-invalid", id="forged-cookie"),
    pytest.param(_unknown_key, "csrf-token-invalid", id="token-pair-signed-with-unknown-key"),
    pytest.param(_other_session, "csrf-session-mismatch", id="token-from-another-session"),
    pytest.param(lambda ctx: {"params": {"note": "attack"},
                              "headers": {"X-CSRF-Token": Browser(ctx.csrf).token}},
                 "csrf-token-mismatch", id="header-token-of-another-browser"),
    pytest.param(_expired, "csrf-token-expired", id="expired"),
]


class Ctx:
    def __init__(self, csrf, clock):
        self.csrf = csrf
        self.clock = clock
        self.victim = Browser(csrf)


@pytest.mark.parametrize("attack, reason", ATTACKS)
def test_forged_request_is_refused(csrf, clock, attack, reason, caplog):
    ctx = Ctx(csrf, clock)
    request = attack(ctx)
    caplog.set_level(logging.INFO, logger="wsgisec.events")
    response = ctx.victim.post(request.get("params"), request.get("headers"), request.get("cookies"),
                               status=403)
    assert response.json["reason"] == reason
    assert response.headers["X-Incident-Id"] == response.json["incident_id"]
    assert "attack" not in notes(csrf)
    [record] = [r for r in caplog.records if r.name == "wsgisec.events.csrf"]
    event = json.loads(record.getMessage())
    assert event["code"] == reason and event["incident_id"] == response.json["incident_id"]
    # Never a token or a cookie in the event.
    assert ctx.victim.token not in record.getMessage()
    assert ctx.victim.cookies["csrf"] not in record.getMessage()


def test_browser_gets_an_html_refusal(csrf):
    victim = Browser(csrf)
    response = victim.post(headers={"Origin": "null", "Accept": "text/html"}, status=403)
    assert response.content_type == "text/html"
    assert "csrf-origin-null" in response.text


def test_refusal_is_recorded_in_the_store(store):
    csrf = layer(store=store)
    Browser(csrf).post(headers={"Sec-Fetch-Site": "cross-site"}, status=403)
    [event] = store.events(kinds=["csrf.csrf-cross-site"])
    assert event["path"] == "/notes" and event["method"] == "POST"


@pytest.mark.filterwarnings("ignore:Unknown REQUEST_METHOD")
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "PROPFIND"])
def test_every_unsafe_method_is_protected(csrf, method):
    victim = Browser(csrf)
    response = client(csrf).request("/notes", method=method, headers={"Cookie": victim.cookie_header()},
                                    status=403)
    assert response.json["reason"] == "csrf-token-missing"


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS", "TRACE"])
def test_safe_methods_need_no_token(method):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"" if method == "HEAD" else b"ok"]

    client(layer(app)).request("/x", method=method, headers={
        "Cookie": "session=s", "Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}, status=200)


# -- requests that pass -------------------------------------------------------------

def test_valid_form_post_reaches_the_app(csrf):
    app = client(csrf)
    page = app.get("/notes")
    form = page.forms[0]
    form["note"] = "hello from the form"
    response = form.submit(headers={"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"})
    assert response.status_int == 200
    assert "<li>hello from the form</li>" in response.text
    # The page that comes back carries a token again, so the next post works too.
    form = response.forms[0]
    form["note"] = "second"
    assert "<li>second</li>" in form.submit().text


def test_valid_header_post_from_javascript(csrf):
    app = client(csrf)
    page = app.get("/notes")
    token = META.search(page.text).group(1)
    response = app.post("/notes", {"note": "from fetch"}, headers={
        "X-CSRF-Token": token, "Origin": "http://localhost", "Sec-Fetch-Site": "same-origin",
        "Sec-Fetch-Mode": "cors"})
    assert "<li>from fetch</li>" in response.text


def test_valid_multipart_post_keeps_the_body_for_the_app(csrf):
    app = client(csrf)
    token = app.get("/notes").forms[0]["csrf_token"].value
    response = app.post("/notes", [("csrf_token", token), ("note", "multipart note")],
                        content_type="multipart/form-data")
    assert "<li>multipart note</li>" in response.text



@pytest.mark.parametrize("part_head, status", [
    pytest.param(b'Content-Disposition: form-data; name="csrf_token"', 200, id="plain-field"),
    pytest.param(b'Content-Disposition: form-data; name="csrf_token"; filename="t.txt"', 403,
                 id="token-in-a-file-part"),
    pytest.param(b'Content-Disposition: form-data; name="csrf_token"\r\n'
                 b'Content-Disposition: form-data; name="csrf_token"', 403, id="repeated-disposition"),
])
def test_multipart_token_is_read_by_the_one_strict_reader(csrf, part_head, status):
    """A part the app's parser could read differently carries no token (wsgisec.multipart)."""
    app = client(csrf)
    token = app.get("/notes").forms[0]["csrf_token"].value
    body = (b"--b0undary\r\n" + part_head + b"\r\n\r\n" + token.encode() + b"\r\n"
            b"--b0undary\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nx\r\n--b0undary--\r\n")
    response = app.post("/notes", body, headers={"Content-Type": "multipart/form-data; boundary=b0undary"},
                        status=status)
    if status == 403:
        assert response.json["reason"] == "csrf-token-missing"

def test_body_is_intact_for_the_app():
    seen = []

    def app(environ, start_response):
        seen.append(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    csrf = layer(app, csrf_session_cookie=None)
    token = csrf.issue()
    from wsgisec.signed_requests.csrf import _mask
    body = f"a=1&csrf_token={_mask(token)}&b=%C3%A9".encode()
    client(csrf).post("/x", body, headers={"Cookie": f"csrf={token}"},
                      content_type="application/x-www-form-urlencoded")
    assert seen == [body]


def test_post_without_cookies_passes(csrf):
    # No cookie, no browser-held credential: nothing ambient to abuse (see the module doc).
    response = client(csrf).post("/notes", {"note": "anonymous"})
    assert "<li>anonymous</li>" in response.text


def test_cross_site_post_without_cookies_is_still_refused(csrf):
    # Fetch Metadata is checked for every unsafe request: login CSRF needs no cookie.
    response = client(csrf).post("/notes", {"note": "attack"}, headers={
        "Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}, status=403)
    assert response.json["reason"] == "csrf-cross-site"
    assert "attack" not in notes(csrf)


def test_basic_auth_is_ambient_authority_too(csrf):
    response = client(csrf).post("/notes", {"note": "attack"}, headers={
        "Authorization": "Basic dXNlcjpwYXNz"}, status=403)
    assert response.json["reason"] == "csrf-cookie-missing"


def test_trusted_origin_may_post_cross_site(clock):
    csrf = layer(csrf_trusted_origins=("https://www.example.com",))
    victim = Browser(csrf)
    response = victim.post({"note": "from www", "csrf_token": victim.token},
                           {"Sec-Fetch-Site": "cross-site", "Origin": "https://www.example.com:443"})
    assert "<li>from www</li>" in response.text
    victim.post(headers={"Sec-Fetch-Site": "same-site", "Origin": "https://other.example.com"}, status=403)


def test_exempt_paths_are_left_alone():
    csrf = layer(csrf_exempt_paths=("/notes",))
    page = client(csrf).get("/notes")
    assert "csrf_token" not in page.text and not _csrf_cookie(page, "csrf")
    client(csrf).post("/notes", {"note": "hook"}, headers={"Cookie": "session=s",
                                                            "Origin": "https://evil.example"})


def test_key_rotation_accepts_tokens_of_the_older_key(clock):
    old = layer(secret_keys=(OLD_KEY,))
    victim = Browser(old)
    rotated = layer(old.app, secret_keys=(OLD_KEY, KEY))
    victim.csrf = rotated
    assert "<li>rotated</li>" in victim.post({"note": "rotated", "csrf_token": victim.token}).text
    victim.csrf = layer(old.app, secret_keys=(KEY,))
    assert victim.post(status=403).json["reason"] == "csrf-token-invalid"


def test_form_body_over_the_limit_is_413(csrf):
    small = layer(csrf_max_body_size=100)
    victim = Browser(small)
    response = victim.post({"note": "x" * 200, "csrf_token": victim.token}, status=413)
    assert response.json["reason"] == "csrf-body-too-large"


def test_bad_content_length_is_400(csrf):
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/notes", "SERVER_NAME": "localhost",
               "SERVER_PORT": "80", "HTTP_HOST": "localhost", "wsgi.url_scheme": "http",
               "HTTP_COOKIE": "csrf=x", "CONTENT_TYPE": "application/x-www-form-urlencoded",
               "CONTENT_LENGTH": "ten", "wsgi.input": io.BytesIO(b"")}
    status = []
    body = b"".join(csrf(environ, lambda s, h, e=None: status.append(s)))
    assert status == ["400 Bad Request"] and b"csrf-body-invalid" in body


# -- the cookie ---------------------------------------------------------------------

def _csrf_cookie(response, name):
    return [value for value in response.headers.getall("Set-Cookie") if value.startswith(name + "=")]


def test_cookie_over_https_is_host_prefixed_and_secure():
    app = client(layer(), **{"wsgi.url_scheme": "https", "HTTP_HOST": "localhost"})
    [cookie] = _csrf_cookie(app.get("/notes"), "__Host-csrf")
    attributes = [part.strip() for part in cookie.split(";")][1:]
    assert "Secure" in attributes and "Path=/" in attributes and "HttpOnly" in attributes
    assert "SameSite=Lax" in attributes and not any(a.lower().startswith("domain") for a in attributes)
    # And a post over https works with it.
    form = app.get("/notes").forms[0]
    form["note"] = "tls note"
    assert "<li>tls note</li>" in form.submit(headers={"Origin": "https://localhost"}).text


def test_cookie_over_plain_http_has_no_secure_flag():
    [cookie] = _csrf_cookie(client(layer()).get("/notes"), "csrf")
    assert "Secure" not in cookie and "Max-Age=43200" in cookie


def test_cookie_is_kept_while_valid_and_renewed_after_half_its_age(clock):
    csrf = layer(clock=lambda: clock[0], csrf_max_age=3600)
    victim = Browser(csrf)
    again = client(csrf).get("/notes", headers={"Cookie": victim.cookie_header()})
    assert not _csrf_cookie(again, "csrf")
    clock[0] += 1801
    renewed = client(csrf).get("/notes", headers={"Cookie": victim.cookie_header()})
    assert _csrf_cookie(renewed, "csrf")


def test_a_new_session_gets_a_new_token(csrf):
    victim = Browser(csrf)
    # Same CSRF cookie, another session (a login): the old token is not reused.
    response = client(csrf).get("/notes", headers={"Cookie": victim.cookie_header(session="new-session")})
    [cookie] = _csrf_cookie(response, "csrf")
    assert cookie.split(";")[0] != "csrf=" + victim.cookies["csrf"]


def test_token_is_bound_to_a_session_set_by_the_same_response(csrf):
    # First visit: no session yet; Flask sets one in the response and the token follows it.
    victim = Browser(csrf)
    assert victim.cookies["session"] == "legacy-session-id"
    assert "<li>first</li>" in victim.post({"note": "first", "csrf_token": victim.token}).text


def test_masked_token_differs_on_every_page(csrf):
    victim = Browser(csrf)
    page = client(csrf).get("/notes", headers={"Cookie": victim.cookie_header()})
    again = client(csrf).get("/notes", headers={"Cookie": victim.cookie_header()})
    first, second = TOKEN_FIELD.search(page.text).group(1), TOKEN_FIELD.search(again.text).group(1)
    assert first != second
    for token in (first, second):
        victim.post({"note": "ok", "csrf_token": token})


# -- injection ----------------------------------------------------------------------



def html_app(chunks, headers=(), content_type="text/html; charset=utf-8", status="200 OK", length=True):
    bodies = []

    def app(environ, start_response):
        response_headers = [("Content-Type", content_type)] + list(headers)
        if length:
            response_headers.append(("Content-Length", str(sum(map(len, chunks)))))
        start_response(status, response_headers)
        body = ClosingBody(chunks)
        bodies.append(body)
        return body

    app.bodies = bodies
    return app


FORMS = [
    pytest.param(b'<form method="post">', True, id="double-quotes"),
    pytest.param(b"<FORM METHOD='Post' action=/x>", True, id="upper-case-single-quotes"),
    pytest.param(b'<form action="/a" method=post>', True, id="unquoted-after-action"),
    pytest.param(b'<form\n  class="f"\n  method = "POST"\n>', True, id="newlines"),
    pytest.param(b'<form data-x="a>b" method="post">', True, id="gt-inside-quoted-attribute"),
    pytest.param(b'<form action="/x"method="post">', True, id="no-space-after-quote"),
    pytest.param(b'<form method="get">', False, id="get-form"),
    pytest.param(b"<form>", False, id="default-method-is-get"),
    pytest.param(b'<form method="dialog">', False, id="dialog-form"),
    pytest.param(b'<form data-method="post">', False, id="data-method-attribute"),
    pytest.param(b'<form title="method=post">', False, id="method-inside-a-value"),
    pytest.param(b'<form method="get" method="post">', False, id="first-method-wins"),
    pytest.param(b'<formula method="post">', False, id="not-a-form-tag"),
]


@pytest.mark.parametrize("tag, injected", FORMS)
def test_token_goes_into_post_forms_only(tag, injected):
    page = b"<html><head><title>t</title></head><body>" + tag + b"<input name=a></form></body></html>"
    response = client(layer(html_app([page]))).get("/")
    hidden = TOKEN_FIELD.findall(response.text)
    assert len(hidden) == (1 if injected else 0)
    if injected:
        assert response.body.index(b'<input type="hidden"') == response.body.index(tag) + len(tag)
    assert META.search(response.text)
    assert response.headers["Content-Length"] == str(len(response.body))


def test_tags_split_across_chunks_are_found():
    page = (b"<!DOCTYPE html><html><he", b"ad lang=en><title>x</title></head><body><fo",
            b"rm action='/a' meth", b"od=\"po", b"st\"><input name=a></form>",
            b"<form method=post><input name=b></form><form method=get></form></body></html>")
    app = html_app(page)
    response = client(layer(app)).get("/")
    assert len(TOKEN_FIELD.findall(response.text)) == 2
    head = response.text.index("<head lang=en>")
    assert response.text.index('<meta name="csrf-token"') == head + len("<head lang=en>")
    assert response.headers["Content-Length"] == str(len(response.body))
    assert app.bodies[0].closed


def test_rewritten_page_drops_etag_and_varies_on_cookie():
    app = html_app([b'<html><head></head><form method="post"></form></html>'],
                   headers=[("ETag", '"v1"'), ("Vary", "Accept-Encoding")])
    response = client(layer(app)).get("/")
    assert "ETag" not in response.headers
    assert response.headers.getall("Vary") == ["Accept-Encoding", "Cookie"]


def test_page_without_forms_is_not_changed():
    page = b"<html><head></head><body>no forms here</body></html>".replace(b"<head></head>", b"")
    app = html_app([page], headers=[("ETag", '"v1"')])
    response = client(layer(app)).get("/")
    assert response.body == page and response.headers["ETag"] == '"v1"'


def test_large_response_still_gets_its_token_in_a_window():
    """Issue 11: growing a page past csrf_max_rewrite_size must not switch the defence off
    (it used to stream through untouched, and every logged-in user got 403)."""
    chunks = [b"<html><head></head><body>", b'<form method="post"></form>', b"x" * 300, b"</body></html>"]
    app = html_app(chunks, length=False)
    response = client(layer(app, csrf_max_rewrite_size=100)).get("/")
    assert len(TOKEN_FIELD.findall(response.text)) == 1
    assert '<meta name="csrf-token"' in response.text
    assert response.body.replace(TOKEN_FIELD.search(response.text).group(0).encode(), b"") \
        .startswith(b"<html><head>")
    assert "Cookie" in response.headers["Vary"]  # (WebTest adds a Content-Length itself)
    assert app.bodies[0].closed


def test_large_response_with_content_length_is_not_buffered_but_injected():
    app = html_app([b"<html><head></head>", b"<form method=post></form>" * 10])
    csrf = layer(app, csrf_max_rewrite_size=100)
    seen = []
    result = csrf(_environ(), lambda s, h, e=None: seen.append(h))
    first = next(iter(result))  # headers went out with the first chunk: nothing held
    assert seen and not any(k.lower() == "content-length" for k, _ in seen[0])
    body = first + b"".join(result)
    result.close()
    assert body.count(b'name="csrf_token"') == 10 and app.bodies[0].closed


def test_compressed_html_is_not_touched():
    page = gzip.compress(b'<html><head></head><form method="post"></form></html>')
    app = html_app([page], headers=[("Content-Encoding", "gzip")])
    seen = []
    result = layer(app)(_environ(), lambda status, headers, exc_info=None: seen.append(headers))
    assert result is app.bodies[0]  # streamed as it is
    assert ("Content-Encoding", "gzip") in seen[0] and ("Content-Length", str(len(page))) in seen[0]
    # WebTest decompresses for us: the page inside was not changed either.
    assert client(layer(app)).get("/").body.count(b"csrf_token") == 0


@pytest.mark.parametrize("content_type, body", [
    pytest.param("application/json", b'{"html": "<form method=\\"post\\">"}', id="json"),
    pytest.param("text/plain", b'<form method="post"><head>', id="text"),
    pytest.param("application/xhtml+xml", b'<html><head/><form method="post"/></html>', id="xhtml"),
    pytest.param("image/png", bytes(range(256)), id="binary"),
])
def test_non_html_is_byte_identical_and_not_buffered(content_type, body):
    app = html_app([body[:10], body[10:]], content_type=content_type, headers=[("ETag", '"e"')])
    csrf = layer(app)
    response = client(csrf).get("/", headers={"Cookie": "session=s"})
    assert response.body == body
    assert "Set-Cookie" not in response.headers and response.headers["ETag"] == '"e"'
    seen = []
    result = csrf(_environ(), lambda s, h, e=None: seen.append(h))
    assert result is app.bodies[-1]
    assert seen[0] == [("Content-Type", content_type), ("ETag", '"e"'), ("Content-Length", str(len(body)))]


def test_utf16_html_is_not_touched():
    page = '<html><head></head><form method="post"></form></html>'.encode("utf-16")
    response = client(layer(html_app([page], content_type="text/html; charset=UTF-16"))).get("/")
    assert response.body == page


def test_head_request_gets_the_cookie_and_is_not_rewritten():
    page = b'<html><head></head><form method="post"></form></html>'
    response = client(layer(html_app([page]))).head("/")
    assert _csrf_cookie(response, "csrf") and response.headers["Content-Length"] == str(len(page))


def test_lazy_start_response_and_write_callable():
    def app(environ, start_response):
        write = start_response("200 OK", [("Content-Type", "text/html")])
        write(b"<html><head></head><body>")
        yield b'<form method="post"></form>'
        yield b"</body></html>"

    response = client(layer(app)).get("/")
    assert response.text.startswith('<html><head><meta name="csrf-token"')
    assert len(TOKEN_FIELD.findall(response.text)) == 1


def test_generator_app_that_starts_lazily():
    def app(environ, start_response):
        def body():
            start_response("200 OK", [("Content-Type", "text/html")])
            yield b'<form method="post"></form>'
        return body()

    assert len(TOKEN_FIELD.findall(client(layer(app)).get("/").text)) == 1


def test_exc_info_is_passed_on():
    calls = []
    body = layer(exc_info_app)(_environ(), lambda status, headers, exc_info=None: calls.append((status, exc_info)))
    assert b"".join(body) == b"error"
    [(status, exc_info)] = calls
    assert status.startswith("500") and exc_info[0] is RuntimeError


def test_inject_off_leaves_html_alone_but_offers_the_token():
    def app(environ, start_response):
        state = environ["wsgisec.csrf"]
        start_response("200 OK", [("Content-Type", "text/html")])
        return [f'<form method="post"><input type="hidden" name="{state.field_name}" '
                f'value="{state.masked_token()}"></form>'.encode()]

    csrf = layer(app, csrf_inject=False, csrf_session_cookie=None)
    app_client = client(csrf)
    page = app_client.get("/")
    assert len(TOKEN_FIELD.findall(page.text)) == 1 and "csrf-token" not in page.text
    page.forms[0].submit()


def test_inject_function_is_linear_on_broken_markup():
    # 20 000 unterminated form tags: a naive regex would take minutes.
    page = b"<form \"" * 20000
    start = time.perf_counter()
    assert inject(page, "t", "csrf_token", "X-CSRF-Token") == page
    assert time.perf_counter() - start < 5  # generous: this is a complexity guard, not a benchmark


def _environ(method="GET", path="/"):
    return {"REQUEST_METHOD": method, "PATH_INFO": path, "SERVER_NAME": "localhost", "SERVER_PORT": "80",
            "HTTP_HOST": "localhost", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(b""),
            "QUERY_STRING": ""}


# -- configuration ------------------------------------------------------------------

@pytest.fixture
def keys_env(monkeypatch):
    monkeypatch.setenv("WSGISEC_TEST_CSRF_KEY", KEY.reveal())
    monkeypatch.setenv("WSGISEC_TEST_CSRF_KEY_OLD", OLD_KEY.reveal())


def test_ini_file_builds_the_layer_with_every_setting(keys_env, store_url):
    app = pipeline.load(str(INI / "csrf_flask.ini"), global_conf={"wsgisec_store": store_url})
    csrf = pipeline.find_layer(app, BrowserCSRF)
    assert csrf is app and csrf.wsgisec_layer == "signed_requests.csrf"
    assert csrf.settings == {
        "csrf_cookie_name": "__Host-csrf", "csrf_field_name": "csrf_token",
        "csrf_header_name": "X-CSRF-Token", "csrf_session_cookie": "session", "csrf_max_age": 7200,
        "csrf_trusted_origins": ["https://shop.example.com:8443", "https://www.example.com"],
        "csrf_max_rewrite_size": 256 * 1024, "csrf_max_body_size": 64 * 1024,
        "csrf_exempt_paths": ["/healthz", "/hooks"], "csrf_inject": True}
    assert csrf.warnings() == []
    browser = TestApp(validated(app), extra_environ={"wsgi.url_scheme": "https", "HTTP_HOST": "localhost"})
    form = browser.get("/notes").forms[0]
    form["note"] = "via ini"
    assert "<li>via ini</li>" in form.submit(headers={"Origin": "https://shop.example.com:8443",
                                                      "Sec-Fetch-Site": "same-site"}).text
    refused = browser.post("/notes", {"note": "x"}, headers={"Origin": "https://evil.example"}, status=403)
    assert refused.json["reason"] == "csrf-origin-mismatch"
    # The refusal went to the configured store.
    from wsgisec.store import open_store
    assert open_store(store_url).events(kinds=["csrf.csrf-origin-mismatch"])
    # A token pair signed with the older key alone is still accepted (secret_keys lists it).
    https = {"wsgi.url_scheme": "https", "HTTP_HOST": "localhost"}
    old = TestApp(validated(layer(csrf.app, secret_keys=(OLD_KEY,), csrf_cookie_name="__Host-csrf")),
                  extra_environ=https)
    token = old.get("/notes").forms[0]["csrf_token"].value
    cookie = "; ".join(f"{name}={value}" for name, value in old.cookies.items())
    response = TestApp(validated(app), extra_environ=https).post(
        "/notes", {"note": "old key", "csrf_token": token}, headers={"Cookie": cookie})
    assert "<li>old key</li>" in response.text
    # csrf_exempt_paths: /hooks is not checked at all.
    TestApp(validated(app)).post("/hooks/x", headers={"Cookie": cookie, "Origin": "null"}, status=404)


@pytest.mark.parametrize("ini, message", [
    pytest.param("csrf_bad_origin.ini", "csrf_trusted_origins = 'https://www.example.com/login' is not valid",
                 id="origin-with-path"),
    pytest.param("csrf_no_keys.ini", "secret_keys is required", id="no-secret-keys"),
])
def test_bad_configuration_fails_at_start_up(keys_env, store_url, ini, message):
    with pytest.raises(ConfigurationError) as error:
        pipeline.load(str(INI / ini), global_conf={"wsgisec_store": store_url})
    assert message in str(error.value)
    assert str(INI / ini) in str(error.value)


@pytest.mark.parametrize("kw, needle", [
    pytest.param({"csrf_cookie_name": "csrftoken"}, "__Host- prefix", id="cookie-without-host-prefix"),
    pytest.param({"csrf_session_cookie": None}, "not bound to the session", id="unbound-tokens"),
    pytest.param({"csrf_trusted_origins": ("http://www.example.com",)}, "plain-HTTP page", id="http-origin"),
    pytest.param({"csrf_max_age": 30 * 86400}, "csrf_max_age", id="long-max-age"),
])
def test_insecure_choices_are_warned_about(kw, needle):
    assert any(needle in warning for warning in layer(**kw).warnings())


def test_default_configuration_has_one_warning_only_when_unbound():
    assert layer().warnings() == []


@pytest.mark.parametrize("kw", [
    pytest.param({"csrf_max_age": 0}, id="zero-max-age"),
    pytest.param({"csrf_trusted_origins": ("www.example.com",)}, id="origin-without-scheme"),
    pytest.param({"csrf_field_name": 'a"b'}, id="field-name-with-quote"),
    pytest.param({"csrf_header_name": "X CSRF"}, id="header-name-with-space"),
    pytest.param({"secret_keys": ()}, id="no-keys"),
])
def test_python_callers_get_configuration_errors_too(kw):
    with pytest.raises(ConfigurationError):
        layer(**kw)


# -- properties of the injector -----------------------------------------------------

from hypothesis import given, settings as hsettings, strategies as st  # noqa: E402

_QUOTES = st.sampled_from(['"{}"', "'{}'", "{}"])
_OTHER_ATTRIBUTE = st.sampled_from(['action="/a>b"', "class='x y'", "data-method=post", "novalidate",
                                    'title="method=post"', "id=f", "enctype='multipart/form-data'"])


@st.composite
def form_tags(draw):
    method = draw(st.sampled_from(["post", "POST", "Post", " post ", "get", "GET", "dialog", "", None]))
    attributes = draw(st.lists(_OTHER_ATTRIBUTE, max_size=3))
    if method is not None:
        quote = draw(_QUOTES) if method.strip() == method and method else '"{}"'
        attributes.insert(draw(st.integers(0, len(attributes))),
                          draw(st.sampled_from(["method", "METHOD", "Method"])) + "=" + quote.format(method))
    space = draw(st.sampled_from([" ", "\n", "\t ", "  "]))
    tag = "<" + draw(st.sampled_from(["form", "FORM", "Form"])) + "".join(space + a for a in attributes) + ">"
    return tag.encode(), method is not None and method.strip().lower() == "post"


@hsettings(max_examples=150, deadline=None)
@given(forms=st.lists(form_tags(), min_size=1, max_size=4),
       filler=st.text(alphabet="ab <>/=\"'\n", max_size=20).map(str.encode), head=st.booleans())
def test_injector_marks_exactly_the_post_forms_and_changes_nothing_else(forms, filler, head):
    page = (b"<html><head>" if head else b"<html>") + b"".join(
        b"<p>" + filler.replace(b"<", b"&lt;") + b"</p>" + tag + b"<input name=a></form>" for tag, _ in forms)
    out = inject(page, "TOKEN", "csrf_token", "X-CSRF-Token")
    hidden = b'<input type="hidden" name="csrf_token" value="TOKEN">'
    meta = b'<meta name="csrf-token" content="TOKEN"><meta name="csrf-header" content="X-CSRF-Token">'
    assert out.replace(hidden, b"").replace(meta, b"") == page
    assert out.count(hidden) == sum(post for _, post in forms)
    assert out.count(meta) == (1 if head else 0)
    for tag, post in forms:
        assert (tag + hidden in out) == post


def test_custom_cookie_field_and_header_names():
    csrf = layer(csrf_cookie_name="__Host-xsrf", csrf_field_name="authenticity_token",
                 csrf_header_name="X-XSRF-Token")
    app = client(csrf, **{"wsgi.url_scheme": "https", "HTTP_HOST": "localhost"})
    page = app.get("/notes")
    assert _csrf_cookie(page, "__Host-xsrf") and '<meta name="csrf-header" content="X-XSRF-Token">' in page.text
    form = page.forms[0]
    token = form["authenticity_token"].value
    form["note"] = "custom names"
    assert "<li>custom names</li>" in form.submit().text
    assert "<li>by header</li>" in app.post("/notes", {"note": "by header"},
                                            headers={"X-XSRF-Token": token}).text
    # The default names mean nothing to this layer.
    refused = app.post("/notes", {"note": "x", "csrf_token": token}, headers={"X-CSRF-Token": token},
                       status=403)
    assert refused.json["reason"] == "csrf-token-missing"
