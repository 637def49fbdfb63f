"""The operator verbs of token_auth: wsgisec client ... / wsgisec token ..., run in-process
on a copy of the flagship example (so its store is a fresh file) and once as a subprocess."""

import base64
import io
import json
import os
import shutil
import subprocess
import sys

import pytest
from webtest import TestApp

from conftest import EXAMPLES, ROOT, init_store, validated
from wsgisec import pipeline
from wsgisec.cli import main
from wsgisec.token_auth.clients import CLIENTS
from wsgisec.testing import PartnerTestApp, partner_credentials
from wsgisec.token_auth import TokenAuth

PROXY = {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_PROTO": "https"}
# A partner calling https://localhost/ through the local TLS proxy (WebTest's default Host
# "localhost:80" would be signed as http, without ":80", and verified as https, with it).
SIGNED_PROXY = dict(PROXY, HTTP_HOST="localhost")


@pytest.fixture
def ini(tmp_path):
    """A copy of the examples folder (the ini names files beside it), with its own store."""
    copy = tmp_path / "examples"
    shutil.copytree(EXAMPLES, copy, ignore=shutil.ignore_patterns("var", "__pycache__", "*.sqlite*"))
    init_store(copy / "partner_api.ini")
    return str(copy / "partner_api.ini")


@pytest.fixture
def loaded(ini):
    """The pipeline the CLI manages, as the server would load it."""
    return pipeline.load(ini)


@pytest.fixture
def served(loaded):
    return TestApp(validated(loaded), extra_environ=dict(PROXY)), pipeline.find_layer(loaded, TokenAuth)


@pytest.fixture
def partner(loaded):
    """The example's API wants a request token and an RFC 9421 signature with the bearer
    token: a TestApp that signs as ``client_id`` (with its own key and request token)."""
    def partner(client_id):
        return PartnerTestApp(validated(loaded), extra_environ=dict(SIGNED_PROXY),
                              **partner_credentials(loaded, client_id))

    return partner


def assert_bearer_alone_is_refused(app, token, path="/api/items"):
    """token_auth takes the token; signed_requests still wants the partner signature."""
    refused = app.get(path, headers={"Authorization": f"Bearer {token}"}, status=401)
    assert refused.json["reason"] == "signature-missing"


def run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def create(capsys, ini, *extra):
    code, out, _err = run(capsys, "client", "create", "--config", ini, "--name", "Acme", "--scope", "items:read",
                          "--scope", "items:write", "--json", *extra)
    assert code == 0
    return json.loads(out)


def basic(client_id, secret):
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def get_token(app, client_id, secret, status=200):
    return app.post("/oauth/token", {"grant_type": "client_credentials"}, headers=basic(client_id, secret),
                    status=status)


def test_client_create_prints_the_secret_once_and_stores_a_hash(capsys, ini, served):
    created = create(capsys, ini, "--permission", "introspect")
    assert set(created) == {"client_id", "client_secret", "name", "scopes", "permissions"}
    assert created["scopes"] == ["items:read", "items:write"] and created["permissions"] == ["introspect"]
    app, layer = served
    record = layer.store.get(CLIENTS, created["client_id"])
    assert created["client_secret"] not in json.dumps(record)
    assert get_token(app, created["client_id"], created["client_secret"]).json["scope"] == "items:read items:write"


def test_client_create_plain_text_output(capsys, ini):
    code, out, err = run(capsys, "client", "create", "--config", ini, "--name", "Plain", "--scope", "items:read")
    assert code == 0 and out.startswith("client_id:     c_") and "client_secret: " in out
    assert "cannot be shown again" in err


def test_client_create_refuses_a_bad_scope(capsys, ini):
    code, _out, err = run(capsys, "client", "create", "--config", ini, "--name", "x", "--scope", 'bad"scope')
    assert code == 2 and "not a valid scope" in err


def test_client_list_never_shows_secrets(capsys, ini):
    created = create(capsys, ini)
    code, out, _err = run(capsys, "client", "list", "--config", ini, "--json")
    [listed] = json.loads(out)
    assert code == 0 and listed["id"] == created["client_id"] and listed["disabled"] is False
    assert "secrets" not in listed and "argon2" not in out
    code, out, _err = run(capsys, "client", "list", "--config", ini)
    assert created["client_id"] in out and "enabled" in out and "items:read" in out


def test_rotate_secret_with_grace(capsys, ini, served):
    created = create(capsys, ini)
    code, out, _err = run(capsys, "client", "rotate-secret", created["client_id"], "--config", ini,
                          "--grace", "1h", "--json")
    rotated = json.loads(out)
    assert code == 0 and rotated["previous_valid_for"] == 3600
    app, _layer = served
    get_token(app, created["client_id"], created["client_secret"])
    get_token(app, created["client_id"], rotated["client_secret"])
    code, out, _err = run(capsys, "client", "rotate-secret", created["client_id"], "--config", ini, "--grace", "0")
    assert code == 0
    get_token(app, created["client_id"], created["client_secret"], status=401)
    get_token(app, created["client_id"], rotated["client_secret"], status=401)


def test_disable_revokes_every_token_at_once(capsys, ini, served, partner):
    created = create(capsys, ini)
    app, _layer = served
    token = get_token(app, created["client_id"], created["client_secret"]).json["access_token"]
    assert_bearer_alone_is_refused(app, token)
    acme = partner(created["client_id"])
    acme.get("/api/items", headers={"Authorization": f"Bearer {token}"})
    code, out, _err = run(capsys, "client", "disable", created["client_id"], "--config", ini)
    assert code == 0 and "2 token(s) revoked" in out
    # Still signed: the refusal is token_auth's, for the revoked token.
    gone = acme.get("/api/items", headers={"Authorization": f"Bearer {token}"}, status=401)
    assert 'error="invalid_token"' in gone.headers["WWW-Authenticate"]
    get_token(app, created["client_id"], created["client_secret"], status=401)


@pytest.mark.parametrize("verb", [["client", "disable", "c_0000000000000000"],
                                  ["client", "rotate-secret", "c_0000000000000000"],
                                  ["token", "issue", "--client", "c_0000000000000000"]])
def test_unknown_client_exits_3(capsys, ini, verb):
    code, _out, err = run(capsys, *verb, "--config", ini)
    assert code == 3 and "c_0000000000000000" in err


def test_token_issue_for_a_user(capsys, ini, served, partner):
    created = create(capsys, ini)
    code, out, _err = run(capsys, "token", "issue", "--client", created["client_id"], "--user", "alice",
                          "--scope", "items:read", "--config", ini, "--json")
    tokens = json.loads(out)
    assert code == 0 and tokens["scope"] == "items:read" and tokens["token_type"] == "Bearer"
    app, _layer = served
    assert_bearer_alone_is_refused(app, tokens["access_token"], "/api/whoami")
    whoami = partner(created["client_id"]).get("/api/whoami",
                                               headers={"Authorization": "Bearer " + tokens["access_token"]})
    assert whoami.json == {"user": "alice", "scopes": "items:read"}
    code, _out, err = run(capsys, "token", "issue", "--client", created["client_id"], "--scope", "admin",
                          "--config", ini)
    assert code == 2 and "admin" in err


def test_token_revoke_by_client_user_and_stdin(capsys, ini, served, partner, monkeypatch):
    created = create(capsys, ini)
    app, layer = served
    client_id = created["client_id"]
    by_user = layer.issue_token(client_id, user="alice")
    other_user = layer.issue_token(client_id, user="bob")
    assert_bearer_alone_is_refused(app, by_user["access_token"])
    acme = partner(client_id)

    def works(tokens):
        response = acme.get("/api/items", headers={"Authorization": "Bearer " + tokens["access_token"]},
                            expect_errors=True)
        if response.status_int == 401:  # refused by token_auth, never by the signature check
            assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
        return response.status_int == 200

    assert works(by_user) and works(other_user)

    code, out, _err = run(capsys, "token", "revoke", "--user", "alice", "--config", ini)
    assert code == 0 and out.strip() == "2 token(s) revoked"
    assert not works(by_user) and works(other_user)

    monkeypatch.setattr(sys, "stdin", io.StringIO(other_user["refresh_token"] + "\n\n"))
    code, out, _err = run(capsys, "token", "revoke", "-", "--config", ini)
    assert code == 0 and out.strip() == "1 token(s) revoked"
    assert not works(other_user)  # the refresh token took its access token with it

    third = layer.issue_token(client_id)
    code, out, _err = run(capsys, "token", "revoke", "--client", client_id, "--config", ini)
    assert code == 0 and not works(third)


def test_token_purge(capsys, ini, served):
    code, out, _err = run(capsys, "token", "purge", "--config", ini)
    assert code == 0 and "expired row(s) removed" in out


def test_config_from_the_environment_and_missing_layer(capsys, ini, monkeypatch, tmp_path):
    monkeypatch.setenv("WSGISEC_CONFIG", ini)
    code, out, _err = run(capsys, "client", "list", "--json")
    assert code == 0 and json.loads(out) == []
    bare = tmp_path / "no_token_auth.ini"
    bare.write_text("[app:main]\nuse = call:flask_legacy.app:app_factory\n")
    with pytest.raises(SystemExit) as exited:
        main(["client", "list", "--config", str(bare)])
    assert exited.value.code == 2 and "no token_auth layer" in capsys.readouterr().err


def test_cli_as_a_subprocess(ini, served, partner):
    env = dict(os.environ, PYTHONPATH=str(EXAMPLES))
    result = subprocess.run(
        [sys.executable, "-m", "wsgisec.cli", "client", "create", "--config", ini, "--name", "Sub",
         "--scope", "items:read", "--json"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    created = json.loads(result.stdout)
    app, _layer = served
    token = get_token(app, created["client_id"], created["client_secret"]).json["access_token"]
    assert_bearer_alone_is_refused(app, token)
    items = partner(created["client_id"]).get("/api/items", headers={"Authorization": f"Bearer {token}"})
    assert "Widget" in items.text
