"""exempt_paths: exact paths (=/path) and prefixes; `wsgisec check` warns when a prefix covers declared routes.

Issue 11: ``exempt_paths = /oauth`` exempted every app route under /oauth from the
allowlist. The example now names exact paths; a prefix that covers a path the OpenAPI
document declares is a warning.
"""

import pathlib

import pytest
from webtest import TestApp

from conftest import init_store, validated
from wsgisec import settings
from wsgisec.cli import main
from wsgisec.whitelist import Whitelist

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"
DOC = {"openapi": "3.1.0", "paths": {
    "/oauth/admin": {"get": {"parameters": [{"name": "q", "in": "query", "schema": {"type": "string"}}]}},
    "/api/items": {"get": {}},
    "/api/items/{id}": {"get": {"parameters": [
        {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}]}},
}}


def ok(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"app"]


@pytest.mark.parametrize("path, exempt", [
    pytest.param("/oauth/token", True, id="the-exact-path"),
    pytest.param("/oauth/token/", False, id="trailing-slash"),
    pytest.param("/oauth/token/x", False, id="below-it"),
    pytest.param("/oauth/tokens", False, id="longer-name"),
    pytest.param("/healthz/db", True, id="below-a-prefix"),
])
def test_exact_paths_and_prefixes(path, exempt):
    prefixes = settings.path_prefixes("=/oauth/token /healthz")
    assert prefixes == ("=/oauth/token", "/healthz")
    assert settings.path_matches(path, prefixes) is exempt


def test_a_path_must_start_with_a_slash_or_equals_slash():
    with pytest.raises(ValueError, match="start with / or =/"):
        settings.path_prefixes("=oauth")


def test_an_exact_exemption_leaves_the_routes_below_it_checked():
    app = TestApp(validated(Whitelist(ok, rules=DOC, exempt_paths=("=/oauth/token",))))
    assert app.post("/oauth/token", b"grant_type=x", content_type="application/x-www-form-urlencoded").text == "app"
    app.get("/oauth/admin?q=%3Cscript%3E", status=400)  # declared, so checked
    app.get("/oauth/token/extra", status=404)


def test_a_prefix_that_covers_declared_routes_is_a_warning():
    layer = Whitelist(ok, rules=DOC, exempt_paths=("/oauth", "/api", "=/oauth/token", "/healthz"))
    warnings = layer.warnings()
    assert len(warnings) == 2
    assert warnings[0].startswith("exempt_paths = /oauth is a prefix that covers declared paths (/oauth/admin)")
    assert "(/api/items, /api/items/{id})" in warnings[1]
    assert Whitelist(ok, rules=DOC, exempt_paths=("=/oauth/token", "/healthz")).warnings() == []


def test_wsgisec_check_prints_the_warning(tmp_path, capsys):
    (tmp_path / "api.yaml").write_text(
        "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths:\n  /oauth/admin:\n    get: {}\n")
    ini = tmp_path / "api.ini"
    ini.write_text(f"""[pipeline:main]
pipeline = whitelist legacy

[filter:whitelist]
use = egg:wsgisec#whitelist
rules = %(here)s/api.yaml
store = sqlite:///{tmp_path}/w.sqlite
exempt_paths = /oauth

[app:legacy]
use = call:flask_legacy.app:app_factory
""")
    init_store(ini)
    code = main(["check", str(ini)])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "whitelist: exempt_paths = /oauth is a prefix that covers declared paths (/oauth/admin)" in out


def test_the_example_names_exact_paths(capsys):
    text = (EXAMPLES / "partner_api.ini").read_text()
    section = text.split("[filter:whitelist]", 1)[1].split("\n[", 1)[0]
    assert "exempt_paths = =/oauth/token =/oauth/revoke =/oauth/introspect" in section
