"""Responses checked against the OpenAPI document's response schemas (issue 11).

Driven through ``tests/ini/escaping_response_schemas.ini`` (one pipeline per mode, loaded
by PasteDeploy around the Flask legacy example, which builds its JSON by hand) and its
document ``escaping_response_schemas.openapi.yaml``; stored values are put into the
example's ITEMS list as an earlier request would have stored them. Every app is wrapped
in ``wsgiref.validate``.
"""

from __future__ import annotations

import json
import logging
import pathlib

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from webtest import TestApp

from conftest import validated
from wsgisec import openapi, pipeline
from wsgisec.escaping import Escaping, filter_factory
from wsgisec.settings import ConfigurationError

INI = pathlib.Path(__file__).resolve().parents[1] / "ini"
DOC = INI / "escaping_response_schemas.openapi.yaml"


def load(store_url, name="main"):
    return TestApp(validated(pipeline.load(str(INI / "escaping_response_schemas.ini"), name=name,
                                           global_conf={"wsgisec_store": store_url})))


@pytest.fixture
def items():
    """The example's ITEMS (conftest restores them after every test)."""
    import flask_legacy.app as legacy

    return legacy.ITEMS


def events_of(caplog, kind="escaping.response-schema"):
    return [json.loads(r.getMessage()) for r in caplog.records
            if r.name.startswith("wsgisec.events") and json.loads(r.getMessage())["kind"] == kind]


def assert_masked(response):
    assert response.status_int == 500
    assert response.json["reason"] == "response-invalid"
    assert response.json["incident_id"] == response.headers["X-Incident-Id"]
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    return response.json["incident_id"]


# -- the three modes ---------------------------------------------------------------------

def test_enforce_masks_a_response_that_breaks_its_schema(store_url, items, caplog):
    items.append({"id": 7, "name": "Cheap", "price": '"cheap"'})  # a price stored as text
    caplog.set_level(logging.INFO, "wsgisec.events")
    response = load(store_url).get("/api/items", expect_errors=True)
    incident = assert_masked(response)
    assert b"Cheap" not in response.body and b"Widget" not in response.body  # none of the app's content
    [event] = events_of(caplog)
    assert event["severity"] == "error" and event["incident_id"] == incident
    assert event["path"] == "/api/items"
    assert event["detail"] == {
        "status": "200", "media_type": "application/json", "check": "schema", "keyword": "type",
        "keyword_location": "#/components/schemas/Item/properties/price/type",
        "instance_location": "/items/3/price"}
    assert "cheap" not in json.dumps(event)  # never the value
    assert not events_of(caplog, "escaping.response-invalid")  # one event, not two


def test_report_lets_it_through_with_a_warning(store_url, items, caplog):
    items.append({"id": 7, "name": "Cheap", "price": '"cheap"'})
    caplog.set_level(logging.INFO, "wsgisec.events")
    response = load(store_url, "report").get("/api/items")
    assert response.json["items"][3]["price"] == "cheap"
    assert response.headers["Content-Length"] == str(len(response.body))
    [event] = events_of(caplog)
    assert event["severity"] == "warning"
    assert event["detail"]["keyword_location"] == "#/components/schemas/Item/properties/price/type"
    assert event["detail"]["instance_location"] == "/items/3/price"


def test_off_looks_nothing_up(store_url, items, caplog):
    items.append({"id": 7, "name": "Cheap", "price": '"cheap"'})
    caplog.set_level(logging.INFO, "wsgisec.events")
    assert load(store_url, "off").get("/api/items").json["items"][3]["price"] == "cheap"
    assert not events_of(caplog)


def test_a_valid_response_passes_unchanged(store_url, items, caplog):
    caplog.set_level(logging.INFO, "wsgisec.events")
    response = load(store_url).get("/api/items")
    assert [item["name"] for item in response.json["items"]] == ["Widget", "Gadget", "O'Brien's sprocket"]
    assert response.headers["Content-Length"] == str(len(response.body))
    assert not events_of(caplog)


def test_an_undeclared_property_breaks_a_closed_object(store_url, items, caplog):
    """Objects are closed unless the document says otherwise: a leaked column is caught."""
    items[0]["name"] = 'Widget", "secret": "s3cr3t'  # the string-built JSON grows a member
    caplog.set_level(logging.INFO, "wsgisec.events")
    response = load(store_url).get("/api/items/1", expect_errors=True)
    assert_masked(response)
    assert b"s3cr3t" not in response.body
    [event] = events_of(caplog)
    assert event["detail"]["keyword"] == "additionalProperties"
    assert event["detail"]["keyword_location"] == "#/components/schemas/ItemRef/additionalProperties"
    # An undeclared member's name is the response's data (a map keyed by e-mail addresses,
    # tokens): shown as "*", like every name the document does not declare.
    assert event["detail"]["instance_location"] == "/*"
    assert "s3cr3t" not in json.dumps(event) and "secret" not in json.dumps(event["detail"])


# -- which schema applies ----------------------------------------------------------------

def test_the_exact_status_beats_its_range_and_ref_to_components_responses_resolves(store_url):
    # 200 is {$ref: components/responses/Item}; the 2XX range (an array) would refuse it.
    assert load(store_url).get("/api/items/2").json == {"id": 2, "name": "Gadget"}


def test_a_range_applies_to_a_status_without_its_own_entry(store_url, caplog):
    caplog.set_level(logging.INFO, "wsgisec.events")
    response = load(store_url).get("/api/items/99", status=404)  # 4XX, not default
    assert response.json == {"error": "no item 99"}
    assert not events_of(caplog)


def test_nullable_admits_null(store_url, items, caplog):
    items.append({"id": 8, "name": "Unpriced", "price": "null"})
    caplog.set_level(logging.INFO, "wsgisec.events")
    assert load(store_url).get("/api/items").json["items"][3]["price"] is None
    assert not events_of(caplog)


@pytest.mark.parametrize("path", [
    pytest.param("/api/whoami", id="status-declared-without-content"),
    pytest.param("/api/lookup?name=Widget", id="schema-for-another-media-type-only"),
    pytest.param("/api/export.csv", id="path-not-in-the-document"),
])
def test_no_schema_means_it_passes(store_url, caplog, path):
    caplog.set_level(logging.INFO, "wsgisec.events")
    assert load(store_url).get(path).status_int == 200
    assert not events_of(caplog)


def test_a_response_that_is_not_json_goes_to_the_structure_check(store_url, items, caplog):
    caplog.set_level(logging.INFO, "wsgisec.events")
    web = load(store_url)
    # Well-formed XML passes (the application/json schema of the status is not for it) ...
    assert web.get("/api/items.xml").body.startswith(b'<?xml version="1.0"?><items')
    # ... and ill-formed XML is masked by the structure check, not by a schema.
    items.append({"id": 9, "name": "AT&T 3 < 5", "price": 1})
    response = web.get("/api/items.xml", expect_errors=True)
    assert_masked(response)
    assert events_of(caplog, "escaping.response-invalid")[0]["detail"]["check"] == "not-xml"
    assert not events_of(caplog)


def test_json_that_does_not_parse_is_masked_once(store_url, items, caplog):
    items.append({"id": 9, "name": "x", "price": "None"})  # Python's None, not JSON
    caplog.set_level(logging.INFO, "wsgisec.events")
    assert_masked(load(store_url).get("/api/items", expect_errors=True))
    assert events_of(caplog, "escaping.response-invalid")  # the structure check's event
    assert not events_of(caplog)


# -- over the hold limit -----------------------------------------------------------------

def many_items(items, count=60):
    items.extend({"id": 10 + n, "name": f"Item number {n}", "price": n} for n in range(count))


def test_over_max_buffer_enforce_refuses_what_it_cannot_check(store_url, items, caplog):
    many_items(items)  # about 2.5KB, over the 1KB hold
    caplog.set_level(logging.INFO, "wsgisec.events")
    response = load(store_url, "small-enforce").get("/api/items?limit=100", expect_errors=True)
    assert_masked(response)
    [event] = events_of(caplog)
    assert event["detail"]["check"] == "too-large"


def test_over_max_buffer_report_streams_it_with_an_event(store_url, items, caplog):
    many_items(items)
    caplog.set_level(logging.INFO, "wsgisec.events")
    response = load(store_url, "small-report").get("/api/items?limit=100")
    assert len(response.json["items"]) == 63
    assert "Content-Length" not in response.headers  # streamed, escaped chunk by chunk
    [event] = events_of(caplog)
    assert event["severity"] == "warning" and event["detail"]["check"] == "too-large"


def test_a_streamed_body_that_grows_past_the_hold_is_refused_under_enforce(caplog):
    """No Content-Length: the layer learns the size only while holding the chunks."""
    document = openapi.load({"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "paths": {
        "/big": {"get": {"responses": {"200": {"description": "d", "content": {
            "application/json": {"schema": {"type": "array"}}}}}}}}}, responses=True)

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/json")])
        yield b"["
        for n in range(400):
            yield b"%d, " % n
        yield b"0]"

    caplog.set_level(logging.INFO, "wsgisec.events")
    web = TestApp(validated(Escaping(app, max_buffer=1024, response_schemas="enforce", rules=document)))
    assert_masked(web.get("/big", expect_errors=True))
    assert events_of(caplog)[0]["detail"]["check"] == "too-large"


# -- OpenAPI 3.1 and the Python API ------------------------------------------------------

DOC_31 = {"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "paths": {"/thing": {"get": {
    "responses": {
        "2xx": {"description": "a range, lower case", "content": {"application/vnd.thing+json": {
            "schema": {"type": "object", "required": ["id", "name", "price"], "properties": {
                "id": {"type": "integer", "minimum": 1},
                "name": {"type": "string", "maxLength": 8},
                "price": {"type": ["number", "null"]}}}}}},
        "default": {"description": "any media type", "content": {"*/*": {"schema": {
            "type": "object", "required": ["ok"], "properties": {"ok": {"type": "boolean"}}}}}}}}}}}


def thing_app(body: bytes, status="200 OK", ctype="application/vnd.thing+json"):
    def app(environ, start_response):
        start_response(status, [("Content-Type", ctype), ("Content-Length", str(len(body)))])
        return [body]
    return app


@pytest.mark.parametrize("body, ok", [
    pytest.param(b'{"id": 1, "name": "a", "price": null}', True, id="type-list-with-null"),
    pytest.param(b'{"id": 1, "name": "a", "price": 2.5}', True, id="number"),
    pytest.param(b'{"id": 1, "name": "a", "price": "2"}', False, id="string-is-not-in-the-list"),
    pytest.param(b'{"id": 0, "name": "a", "price": 1}', False, id="minimum"),
    pytest.param(b'{"id": 1, "name": "a"}', False, id="required"),
    pytest.param(b'', False, id="empty-body"),
])
def test_openapi_31_type_lists_and_plus_json(body, ok):
    document = openapi.load(DOC_31, responses=True)
    web = TestApp(validated(Escaping(thing_app(body), response_schemas="enforce", rules=document)))
    response = web.get("/thing", expect_errors=True)
    assert response.status_int == (200 if ok else 500)


def test_default_applies_when_no_range_matches_and_media_ranges_match():
    document = openapi.load(DOC_31, responses=True)
    app = thing_app(b'[1]', status="503 Service Unavailable", ctype="application/problem+json")
    response = TestApp(validated(Escaping(app, response_schemas="enforce", rules=document))).get(
        "/thing", expect_errors=True)
    assert response.status_int == 500  # default (*/*) wants an object
    app = thing_app(b'{"ok": true}', status="503 Service Unavailable", ctype="application/problem+json")
    response = TestApp(validated(Escaping(app, response_schemas="enforce", rules=document))).get(
        "/thing", expect_errors=True)
    assert response.status_int == 503


# -- configuration -------------------------------------------------------------------------

def test_a_mode_without_a_document_is_refused_at_start_up():
    with pytest.raises(ConfigurationError, match="response_schemas = enforce needs rules"):
        filter_factory({}, response_schemas="enforce")


def test_an_unknown_mode_is_refused_at_start_up():
    with pytest.raises(ConfigurationError, match="response_schemas"):
        filter_factory({}, response_schemas="strict", rules=str(DOC))


@pytest.mark.parametrize("responses, message", [
    pytest.param({"299x": {"description": "d"}}, "not a status code", id="bad-status-key"),
    pytest.param({"200": {"description": "d", "content": {"application/json": {
        "schema": {"type": "string", "contentSchema": {}}}}}}, "not supported", id="unknown-keyword"),
    pytest.param({"200": {"$ref": "#/components/responses/Missing"}}, "does not resolve", id="dangling-ref"),
])
def test_a_response_schema_we_cannot_enforce_is_a_start_up_error(responses, message):
    document = {"openapi": "3.0.3", "info": {"title": "t", "version": "1"},
                "paths": {"/x": {"get": {"responses": responses}}}}
    with pytest.raises(ConfigurationError, match=message):
        openapi.load(document, responses=True)
    openapi.load(document)  # the whitelist never reads them: its document still loads


def test_the_effective_settings_name_the_document(store_url):
    layer = pipeline.load(str(INI / "escaping_response_schemas.ini"), global_conf={"wsgisec_store": store_url})
    assert layer.settings["response_schemas"] == "enforce"
    assert layer.settings["rules"] == str(DOC)


# -- a property ------------------------------------------------------------------------------

def _oracle(value) -> bool:
    """DOC_31's 2XX schema, written out by hand."""
    def integer(v):  # JSON Schema: 1.0 is an integer, true is not
        return type(v) is int or (type(v) is float and v.is_integer())

    return (isinstance(value, dict) and set(value) == {"id", "name", "price"}
            and integer(value["id"]) and value["id"] >= 1
            and isinstance(value["name"], str) and len(value["name"]) <= 8
            and (value["price"] is None or type(value["price"]) in (int, float)))


_scalars = st.none() | st.booleans() | st.integers(-3, 3) | st.floats(allow_nan=False, allow_infinity=False) \
    | st.text(max_size=10)
_values = st.fixed_dictionaries({}, optional={"id": _scalars, "name": _scalars, "price": _scalars,
                                              "extra": _scalars}) | _scalars


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=_values)
def test_enforce_passes_exactly_the_responses_the_schema_admits(value):
    body = json.dumps(value).encode()
    document = openapi.load(DOC_31, responses=True)
    web = TestApp(validated(Escaping(thing_app(body), response_schemas="enforce", rules=document)))
    response = web.get("/thing", expect_errors=True)
    if _oracle(value):
        assert response.status_int == 200 and json.loads(response.body) == value
    else:
        assert response.status_int == 500 and response.json["reason"] == "response-invalid"


# -- the flagship (examples/partner_api.ini: response_schemas = report) ---------------------

@pytest.fixture
def flagship_partner(load_example):
    from wsgisec.testing import PartnerTestApp, partner_credentials
    from wsgisec.token_auth import TokenAuth

    stack = load_example("partner_api.ini")
    token_auth = pipeline.find_layer(stack, TokenAuth)
    client, _secret = token_auth.registry.create("Acme", scopes=["items:read", "items:write"])
    return PartnerTestApp(validated(stack), **partner_credentials(stack, client["id"]),
                          access_token=token_auth.issue_token(client["id"])["access_token"],
                          extra_environ={"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_PROTO": "https",
                                         "HTTP_HOST": "localhost"})


def test_the_flagship_reports_the_legacy_sql_error_against_its_schema(flagship_partner, caplog):
    caplog.set_level(logging.INFO, "wsgisec.events")
    assert flagship_partner.get("/api/items?q=Wid").json["items"][0]["name"] == "Widget"
    assert flagship_partner.post_json("/api/items", {"name": "Sprocket XL", "price": 4.5}, status=201)
    assert not events_of(caplog)  # the documented answers meet their schemas
    masked = flagship_partner.get("/api/lookup?name=O%27Brien", status=500)  # error_masker masks the leak
    [event] = events_of(caplog)
    assert event["severity"] == "warning" and event["incident_id"] == masked.json["incident_id"]
    assert event["detail"]["keyword_location"] == \
        "#/paths/~1api~1lookup/get/responses/200/content/application~1json/schema/required"
    assert event["detail"]["instance_location"] == "/count"
