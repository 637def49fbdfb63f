"""Every example ini loads as a user would load it, builds the stack it declares, and serves.

The legacy apps are real Flask, Pyramid and Bottle apps; nothing here is mocked.
"""

import configparser
import logging

import pytest
from webtest import TestApp

from conftest import EXAMPLES, validated
from wsgisec import pipeline

EXAMPLE_INIS = sorted(path.name for path in EXAMPLES.glob("*.ini"))
PROXY = {"REMOTE_ADDR": "127.0.0.1"}
TLS = {"X-Forwarded-Proto": "https"}


def declared_pipeline(ini):
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(EXAMPLES / ini)
    return parser["pipeline:main"]["pipeline"].split()


@pytest.mark.parametrize("ini", EXAMPLE_INIS)
def test_example_builds_the_declared_stack(ini, load_example):
    app = load_example(ini)
    chain = pipeline.layers(app)
    names = [type(layer).wsgisec_layer for layer in chain[:-1]]
    declared = declared_pipeline(ini)
    assert names == declared[:-1], "layers differ from [pipeline:main]"
    assert not hasattr(type(chain[-1]), "wsgisec_layer")  # the legacy app itself


@pytest.mark.parametrize("ini", EXAMPLE_INIS)
def test_example_health_check_and_redirect(ini, load_example):
    app = TestApp(validated(load_example(ini)), extra_environ=PROXY)
    assert app.get("/healthz").text == "ok\n"
    response = app.get("/api/anything?x=1", status=(301, 308))
    assert response.headers["Location"] == "https://localhost/api/anything?x=1"
    app.get("/healthz", headers={"Host": "evil.example"}, status=400)


def test_example_store_is_shared_through_default(load_example, store_url):
    app = load_example("partner_api.ini")
    stores = {layer.store.url for layer in pipeline.layers(app)[:-1] if getattr(layer, "store", None)}
    assert stores == {store_url}


@pytest.fixture
def quiet_app_logs():
    # The legacy apps log their own exceptions; that is what we mask, not a test failure.
    logging.disable(logging.CRITICAL)
    yield
    logging.disable(logging.NOTSET)


def test_pyramid_example(load_example, quiet_app_logs):
    app = TestApp(validated(load_example("pyramid_legacy.ini")), extra_environ=PROXY)
    response = app.get("/api/orders?sku=W-1", headers=TLS)
    assert response.json["orders"][0]["id"] == 101
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000"
    assert "X-Powered-By" not in response.headers
    failed = app.get("/api/report", headers=TLS, status=500, expect_errors=True)
    assert "monthly_report" not in failed.text and "OperationalError" not in failed.text
    assert failed.json["incident_id"] == failed.headers["X-Incident-Id"]
    assert app.get("/greet", status=308).headers["Location"] == "https://localhost/greet"


def test_bottle_example_debug_page_is_masked(load_example, quiet_app_logs):
    import bottle_legacy.app

    bare = TestApp(bottle_legacy.app.app_factory({}, debug="true"))
    leaked = bare.get("/api/fail", status=500, expect_errors=True)
    assert "warehouse-db-password" in leaked.text  # what the legacy app does on its own

    app = TestApp(validated(load_example("bottle_legacy.ini")), extra_environ=PROXY)
    masked = app.get("/api/fail", headers=TLS, status=500, expect_errors=True)
    assert "warehouse-db-password" not in masked.text and "Traceback" not in masked.text
    assert app.get("/api/stock?sku=A1", headers=TLS).json == {"sku": "A1", "in_stock": 7}


def test_flask_example_leaks_on_its_own():
    """The premise of the flagship example: without wsgisec the legacy app leaks."""
    import flask_legacy.app

    bare = TestApp(flask_legacy.app.create_app())
    leaked = bare.get("/api/lookup?name=x'", status=200)
    assert "sqlite3.OperationalError" in leaked.text and "Traceback" in leaked.text
    assert bare.get("/healthz").headers["X-Powered-By"] == "Flask"
