"""Structure injection (issue 11): string-built JSON and XML that a value broke or forged.

Driven through the Flask legacy example (``tests/ini/escaping_flask.ini``), which builds
its JSON and XML by concatenation, and with stored values put into its ITEMS list as an
earlier request would have stored them.
"""

from __future__ import annotations

import json
import logging
import pathlib

import pytest
from webtest import TestApp

from conftest import validated
from wsgisec import pipeline
from wsgisec.escaping import Escaping, filter_factory
from wsgisec.escaping.structure import injected, is_structural, json_problem, xml_problem
from wsgisec.settings import ConfigurationError

INI = pathlib.Path(__file__).resolve().parents[1] / "ini"


@pytest.fixture
def flask_app(store_url):
    return pipeline.load(str(INI / "escaping_flask.ini"), global_conf={"wsgisec_store": store_url})


@pytest.fixture
def items(monkeypatch):
    """The example's ITEMS, restored after the test (a POST appends to it)."""
    import flask_legacy.app as legacy

    fresh = [dict(item) for item in legacy.ITEMS]
    monkeypatch.setattr(legacy, "ITEMS", fresh)
    return fresh


def events_of(caplog, kind):
    found = []
    for record in caplog.records:
        if record.name.startswith("wsgisec.events"):
            event = json.loads(record.getMessage())
            if event["kind"] == kind:
                found.append(event)
    return found


def assert_masked(response, reason):
    assert response.status_int == 500
    document = response.json
    assert document["reason"] == reason
    assert document["incident_id"] == response.headers["X-Incident-Id"]
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Frame-Options"] == "DENY"  # the safe headers, on a refusal too
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    return document


def test_stored_ampersand_makes_the_xml_endpoint_masked_not_ill_formed(flask_app, items, caplog):
    items.append({"id": 9, "name": "AT&T 3 < 5", "price": 1})
    caplog.set_level(logging.INFO, "wsgisec.events")
    response = TestApp(validated(flask_app)).get("/api/items.xml", expect_errors=True)
    document = assert_masked(response, "response-invalid")
    assert b"AT&T" not in response.body and b"<items" not in response.body  # no app content
    [event] = events_of(caplog, "escaping.response-invalid")
    assert event["incident_id"] == document["incident_id"]
    assert event["detail"] == {"check": "not-xml", "media_type": "application/xml"}


def test_well_formed_xml_passes_unchanged(flask_app, items):
    response = TestApp(validated(flask_app)).get("/api/items.xml")
    assert response.body.startswith(b'<?xml version="1.0"?><items query="">')
    assert response.headers["Content-Length"] == str(len(response.body))


def test_forged_object_in_stored_name_is_masked(flask_app, items, caplog):
    """The review's payload: the POST answer becomes two top-level values, not JSON."""
    caplog.set_level(logging.INFO, "wsgisec.events")
    payload = {"name": 'Evil", "price": 1}, {"id": 1, "name": "x', "price": 2}
    response = TestApp(validated(flask_app)).post_json("/api/items", payload, expect_errors=True)
    assert_masked(response, "response-invalid")
    assert b"Evil" not in response.body
    assert events_of(caplog, "escaping.response-invalid")


@pytest.mark.parametrize("request_kind, value", [
    pytest.param("json", 'x", "admin": "1', id="json-body-adds-a-member"),
    pytest.param("query", 'x", "items": [{"id": 1, "name": "forged"}], "q": "', id="query-forges-items"),
])
def test_request_value_outside_a_string_token_is_refused(flask_app, items, caplog, request_kind, value):
    caplog.set_level(logging.INFO, "wsgisec.events")
    web = TestApp(validated(flask_app))
    if request_kind == "json":
        response = web.post_json("/api/items", {"name": value}, expect_errors=True)
        parameter = "name"
    else:
        response = web.get("/api/items", params={"q": value}, expect_errors=True)
        parameter = "q"
    document = assert_masked(response, "structure-injection")
    assert b"admin" not in response.body and b"forged" not in response.body
    [event] = events_of(caplog, "escaping.structure-injection")
    assert event["detail"]["parameter"] == parameter and event["detail"]["source"] == request_kind
    assert event["incident_id"] == document["incident_id"]
    assert value not in json.dumps(event)  # the value itself never goes into an event


@pytest.mark.parametrize("params", [
    pytest.param({"q": "Widget"}, id="plain"),
    pytest.param({"q": "Tom, Jerry: [x]"}, id="commas-colons-brackets-inside-the-string"),
    pytest.param({"q": "<b>{x}</b>"}, id="markup-and-braces-inside-the-string"),
])
def test_values_inside_string_tokens_pass(flask_app, items, params):
    response = TestApp(validated(flask_app)).get("/api/items", params=params)
    assert json.loads(response.body)["query"] == params["q"]


def test_properly_encoded_quotes_pass():
    def app(environ, start_response):
        body = json.dumps({"q": 'say "hi", {x}', "n": [1, 2]}).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    response = TestApp(validated(Escaping(app))).get("/", params={"q": 'say "hi", {x}'})
    assert response.json == {"q": 'say "hi", {x}', "n": [1, 2]}


def test_html_negotiated_masked_page():
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b'{"a": 1', b"}}"]

    response = TestApp(validated(Escaping(app))).get("/", headers={"Accept": "text/html"}, expect_errors=True)
    assert response.status_int == 500 and response.content_type == "text/html"
    assert b"Incident id" in response.body and b'"a"' not in response.body


def test_entity_declarations_in_xml_are_masked():
    body = b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "lol">]><a>&x;</a>'

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
        return [body]

    response = TestApp(validated(Escaping(app))).get("/", expect_errors=True)
    assert response.status_int == 500 and response.json["reason"] == "response-invalid"


def test_check_structure_off_passes_everything(items):
    items.append({"id": 9, "name": "AT&T 3 < 5", "price": 1})
    from flask_legacy.app import create_app

    layer = filter_factory({}, check_structure="false")(create_app())
    assert layer.settings["check_structure"] is False
    assert any("check_structure is off" in w for w in layer.warnings())
    response = TestApp(validated(layer)).get("/api/items.xml")
    assert b"AT&T 3 < 5" in response.body


def test_check_structure_is_a_boolean():
    with pytest.raises(ConfigurationError, match="check_structure"):
        filter_factory({}, check_structure="maybe")


def test_empty_json_body_and_head_pass():
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "0")])
        return [b""]

    web = TestApp(validated(Escaping(app)))
    assert web.get("/").status_int == 200


@pytest.mark.parametrize("body, problem", [
    (b'{"a": [1, 2]}', None), (b"  ", None), (b'{"a": 1}, {"b": 2}', "not-json"), (b'{"a": "x"y"}', "not-json"),
])
def test_json_problem(body, problem):
    assert json_problem(body) == problem


@pytest.mark.parametrize("text, problem", [
    ('<a b="1">x &amp; y</a>', None), ("<a>AT&T</a>", "not-xml"), ("<a><b></a>", "not-xml"),
    ('<!DOCTYPE a [<!ENTITY e SYSTEM "file:///etc/passwd">]><a>&e;</a>', "xml-entities"),
])
def test_xml_problem(text, problem):
    assert xml_problem(text) == problem


class Value:
    def __init__(self, value):
        self.value = value


@pytest.mark.parametrize("body, value, found", [
    pytest.param(b'{"q": "a\\"b"}', 'a"b', False, id="escaped-is-not-raw"),
    pytest.param(b'{"q": "x", "admin": "1"}', 'x", "admin": "1', True, id="spans-tokens"),
    pytest.param(b'{"q": "x"}', 'x"', True, id="closes-the-string"),
    pytest.param(b'{"q": "[1]", "r": [1]}', "[1]", True, id="inside-once-outside-once"),
    pytest.param(b'{"q": "{x}"}', "{x}", False, id="inside"),
])
def test_injected(body, value, found):
    assert is_structural(value)
    assert bool(injected(body, [Value(value)])) is found


# -- the shortcut: a request with nothing structural is not parsed for it -------------

from hypothesis import given, settings as hsettings, strategies as st  # noqa: E402

from wsgisec.escaping.candidates import collect, may_hold  # noqa: E402
from wsgisec.escaping.structure import STRUCTURAL_CHARS  # noqa: E402

_SOURCES = ("query", "form", "json", "path", "headers")
_HEADERS = (("HTTP_REFERER", "Referer"), ("HTTP_USER_AGENT", "User-Agent"))
_RAW = st.text(st.sampled_from('ab=&+%2227BD5"{}[]/é\u00e9 '), max_size=24)


@hsettings(max_examples=300, deadline=None)
@given(query=_RAW, path=_RAW, referer=_RAW, form=st.none() | _RAW)
def test_may_hold_is_false_only_when_collect_finds_nothing_structural(query, path, referer, form):
    environ = {"QUERY_STRING": query, "PATH_INFO": "/" + path, "HTTP_REFERER": referer}
    body = None if form is None else ("form", form.encode("utf-8"))
    found = collect(environ, body, sources=_SOURCES, minimum=1, header_keys=_HEADERS, rule=is_structural)
    if not may_hold(environ, body, STRUCTURAL_CHARS, sources=_SOURCES, header_keys=_HEADERS):
        assert found == []


def test_structural_value_in_the_query_is_still_refused_after_the_shortcut():
    # %22 decodes to a quote: the raw check must not skip it.
    environ = {"QUERY_STRING": "q=%22%7D", "PATH_INFO": "/x"}
    assert may_hold(environ, None, STRUCTURAL_CHARS, sources=_SOURCES, header_keys=_HEADERS)
    assert not may_hold({"QUERY_STRING": "id=42", "PATH_INFO": "/api/items"}, None, STRUCTURAL_CHARS,
                        sources=_SOURCES, header_keys=_HEADERS)
