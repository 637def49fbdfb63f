"""whitelist learn mode and ``wsgisec learn``: learn the example's traffic, then enforce it."""

import io
import pathlib
import shutil
from contextlib import redirect_stderr, redirect_stdout

import pytest
import yaml
from webtest import TestApp

from conftest import init_store, validated
from test_whitelist_example import ATTACKS, TRAFFIC, request
from wsgisec import cli, pipeline
from wsgisec.whitelist.learning import NAMESPACE, Learner, infer_document
from wsgisec.settings import ConfigurationError
from wsgisec.whitelist import Whitelist

INI = pathlib.Path(__file__).resolve().parents[1] / "ini"


def run_cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            status = cli.main(list(argv))
        except SystemExit as exit:
            status = exit.code
    return status, out.getvalue(), err.getvalue()


@pytest.fixture
def learn_ini(tmp_path):
    # A copy, so %(here)s (and the store beside it) is the test's own directory.
    shutil.copy(INI / "whitelist_learn.ini", tmp_path / "whitelist_learn.ini")
    init_store(tmp_path / "whitelist_learn.ini")
    return tmp_path / "whitelist_learn.ini"


def test_learn_the_example_traffic_then_enforce_it(learn_ini, tmp_path):
    learning = TestApp(validated(pipeline.load(str(learn_ini))))
    for row in TRAFFIC:
        request(learning, *row)
    # Learning does not block: an attack passes (and is learned from; review the output).
    status, document_text, err = run_cli("learn", "--config", str(learn_ini), "--min-samples", "1")
    assert status == 0, err
    learned = tmp_path / "learned.openapi.yaml"
    learned.write_text(document_text)
    document = yaml.safe_load(document_text)
    assert document["openapi"] == "3.1.0"
    assert "/api/items/{item_id}" in document["paths"]
    item_id = document["paths"]["/api/items/{item_id}"]["get"]["parameters"][0]
    assert item_id["in"] == "path" and item_id["schema"]["type"] == "integer"
    limit = next(p for p in document["paths"]["/api/items"]["get"]["parameters"] if p["name"] == "limit")
    assert limit["schema"]["type"] == "integer" and limit["required"] is False
    order = document["paths"]["/api/orders.xml"]["post"]["requestBody"]["content"]["application/xml"]["schema"]
    assert order["xml"] == {"name": "order"} and order["properties"]["quantity"]["type"] == "integer"

    from flask_legacy.app import create_app

    enforced = TestApp(validated(Whitelist(create_app(), rules=str(learned))))
    for row in TRAFFIC:
        request(enforced, *row)
    refused = 0
    for attack in ATTACKS:
        method, path, body, content_type, status, _ = attack.values
        response = enforced.request(path, method=method, body=body or b"", expect_errors=True,
                                    headers={"Content-Type": content_type} if content_type else {})
        if attack.id in ("body-size", "xml-depth"):
            continue  # limits come from the ini, not the document
        if attack.id == "limit-range":
            # Learning infers no upper bound from a handful of samples (only minimum 0):
            # the operator adds "maximum: 100" when reviewing.
            assert response.status_int == 200
            continue
        assert 400 <= response.status_int < 500, (attack.id, response.status)
        refused += 1
    assert refused == len(ATTACKS) - 3
    assert enforced.get("/api/items?limit=-1", status=400).json["detail"] == 'query parameter "limit": must be >= 0'



def test_learned_values_are_recorded_per_route_and_field(store):
    from flask_legacy.app import create_app

    app = TestApp(validated(Whitelist(create_app(), mode="learn", store=store)))
    for query in ("q=Widget&limit=5", "q=gad&limit=10", "limit=3"):
        app.get("/api/items?" + query)
    app.get("/api/items/2")
    record = store.get(NAMESPACE, "GET /api/items")
    assert record["n"] == 3
    limit = record["query"]["p"]["limit"]
    assert limit["t"] == {"integer": 3} and limit["vmin"] == 3 and limit["vmax"] == 10
    assert sorted(limit["vals"]) == ["10", "3", "5"]
    assert record["query"]["p"]["q"]["lmax"] == 6 and set(record["query"]["p"]["q"]["cc"]) == {"l", "u"}
    assert store.get(NAMESPACE, "GET /api/items/{item_id}")["params"]["item_id"]["t"] == {"integer": 1}


def test_secret_looking_fields_never_keep_values(store):
    def ok(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b""]

    app = TestApp(validated(Whitelist(ok, mode="learn", store=store)))
    app.post("/login", {"api_key": "k1", "csrf_token": "abc", "name": "n"})
    node = store.get(NAMESPACE, "POST /login")["bodies"]["application/x-www-form-urlencoded"]["p"]
    assert node["api_key"]["vals"] is None and node["csrf_token"]["vals"] is None
    assert node["name"]["vals"] == ["n"]


def test_inference_rules(store):
    learner = Learner(store)
    for value in ("red", "green", "red", "red", "green", "red"):
        learner.observe({"PATH_INFO": "/paint", "QUERY_STRING": f"colour={value}&n=1", "REQUEST_METHOD": "GET"}, b"")
    learner_records = list(store.items(NAMESPACE))
    document, skipped = infer_document(learner_records, min_samples=1)
    [colour, n] = document["paths"]["/paint"]["get"]["parameters"]
    assert colour["schema"] == {"type": "string", "maxLength": 16, "pattern": "^[A-Za-z0-9_.-]*$",
                                "x-enum-candidates": ["green", "red"]}
    assert colour["required"] is True and n["schema"] == {"type": "integer", "minimum": 0,
                                                          "x-enum-candidates": [1]}
    document, skipped = infer_document(learner_records, min_samples=10)
    assert document["paths"] == {} and skipped == ["GET /paint"]


def test_learn_cli_errors(tmp_path, learn_ini):
    status, out, err = run_cli("learn", "--config", str(learn_ini))
    assert status == 2 and "nothing learned yet" in err
    status, out, err = run_cli("learn", "--config", str(INI / "check_clean.ini"))
    assert status == 2 and "no whitelist layer" in err


def test_min_samples_leaves_rare_operations_out(learn_ini):
    app = TestApp(validated(pipeline.load(str(learn_ini))))
    app.get("/api/items")
    app.get("/api/items")
    app.get("/healthz")
    status, out, err = run_cli("learn", "--config", str(learn_ini), "--min-samples", "2")
    assert status == 0
    assert "/api/items" in yaml.safe_load(out)["paths"] and "/healthz" not in yaml.safe_load(out)["paths"]
    assert "left out GET /healthz" in err


def test_learn_mode_needs_a_store():
    with pytest.raises(ConfigurationError, match="needs a store"):
        Whitelist(lambda e, s: [], mode="learn", store=None)


def test_learn_with_a_document_uses_its_templates_and_reports(store):
    from flask_legacy.app import create_app

    rules = str(pathlib.Path(__file__).resolve().parents[2] / "examples" / "partner_api.openapi.yaml")
    app = TestApp(validated(Whitelist(create_app(), rules=rules, mode="learn", store=store)))
    app.get("/api/items?debug=1")  # passes (learning), but is reported
    assert store.get(NAMESPACE, "GET /api/items")["query"]["p"]["debug"]["n"] == 1
    [event] = store.events(kinds=["whitelist.input-invalid"])
    assert event["detail"]["mode"] == "learn" and event["severity"] == "info"


@pytest.mark.parametrize("body, content_type", [
    pytest.param(b"{not json", "application/json", id="bad-json"),
    pytest.param(b"[" * 100000 + b"]" * 100000, "application/json", id="deep-json"),
    pytest.param(b"<a><b></a>", "application/xml", id="bad-xml"),
    pytest.param(b'<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>', "application/xml", id="dtd"),
    pytest.param(b"\xff\xfe", "application/x-www-form-urlencoded", id="bad-form"),
])
def test_learning_skips_what_it_cannot_parse_and_still_passes_it_on(store, body, content_type):
    def ok(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))]

    app = TestApp(validated(Whitelist(ok, mode="learn", store=store)))
    assert app.post("/x", body, content_type=content_type).body == body
    assert store.get(NAMESPACE, "POST /x") is None


def test_learning_fails_closed_when_the_store_is_down():
    pytest.importorskip("redis")
    from flask_legacy.app import create_app

    # Nothing listens on port 1: every store call raises StoreUnavailable.
    app = TestApp(validated(Whitelist(create_app(), mode="learn", store="redis://127.0.0.1:1/15")))
    response = app.get("/api/items", status=503)
    assert response.json["status"] == 503


def test_a_parameter_seen_once_and_repeated_is_learned_as_a_list(store):
    learner = Learner(store)
    for query in ("tag=a", "tag=b&tag=c", "tag=d"):
        learner.observe({"PATH_INFO": "/t", "QUERY_STRING": query, "REQUEST_METHOD": "GET"}, b"")
    document, _ = infer_document(list(store.items(NAMESPACE)))
    [tag] = document["paths"]["/t"]["get"]["parameters"]
    assert tag["schema"]["type"] == "array" and tag["schema"]["items"]["type"] == "string"
    assert tag["schema"]["items"]["pattern"] == "^[A-Za-z0-9_.-]*$"

    def ok(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    app = TestApp(validated(Whitelist(ok, rules=document)))
    app.get("/t?tag=a", status=200)
    app.get("/t?tag=b&tag=c", status=200)
