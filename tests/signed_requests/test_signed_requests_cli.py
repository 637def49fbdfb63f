"""signed_requests operator verbs (wsgisec client request-token / signing-key /
revoke-request-token), the ini files, and wsgisec.testing.PartnerTestApp on the legacy
Flask app loaded by PasteDeploy."""

from __future__ import annotations

import json
import pathlib
import shutil

import pytest

from conftest import init_store
from wsgisec import pipeline
from wsgisec.cli import main
from wsgisec.signed_requests import SIGNING_KEYS, SignedRequests
from wsgisec.testing import UNSIGNED, PartnerTestApp

INI = pathlib.Path(__file__).resolve().parents[1] / "ini"


@pytest.fixture
def config(tmp_path, monkeypatch):
    """A copy of tests/ini/signed_requests_flask.ini whose store is a temporary file."""
    monkeypatch.setenv("WSGISEC_TEST_REQUEST_TOKEN_KEY_OLD", "old-key-" + "o" * 32)
    monkeypatch.setenv("WSGISEC_TEST_REQUEST_TOKEN_KEY", "new-key-" + "n" * 32)
    path = tmp_path / "signed_requests_flask.ini"
    shutil.copy(INI / "signed_requests_flask.ini", path)
    shutil.copy(INI / "wsgisec_test_apps.py", tmp_path / "wsgisec_test_apps.py")
    (tmp_path / "var").mkdir()
    init_store(path)
    return str(path)


def load(config):
    return pipeline.load(config)


def run_json(capsys, *argv):
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_issue_credentials_with_the_cli_then_call_as_partner(config, capsys):
    token = run_json(capsys, "client", "request-token", "acme", "--json", "--config", config)
    key = run_json(capsys, "client", "signing-key", "acme", "--json", "--config", config)
    assert token["client_id"] == "acme" and token["header"] == "X-Request-Token"
    assert key["algorithm"] == "hmac-sha256" and key["keyid"].startswith("k_")
    app = load(config)
    partner = PartnerTestApp(app, keyid=key["keyid"], signing_key=key["key"],
                             request_token=token["request_token"])
    assert partner.post_json("/api/items", {"name": "widget", "price": 3}).status_int == 201
    assert partner.get("/api/items", {"q": "widget"}).json["query"] == "widget"
    refused = partner.get("/api/items", extra_environ=UNSIGNED, expect_errors=True)
    assert refused.status_int == 401 and refused.json["reason"] == "signature-missing"


def test_human_output_shows_key_and_token_once(config, capsys):
    assert main(["client", "signing-key", "acme", "--config", config]) == 0
    out = capsys.readouterr().out
    assert "keyid:" in out and "key:" in out and "shown only now" in out
    assert main(["client", "request-token", "acme", "--config", config]) == 0
    out = capsys.readouterr().out
    assert "token id:" in out and "X-Request-Token" in out


def test_signing_key_output_says_it_is_base64_of_the_raw_hmac_key(config, capsys):
    """A partner with a third-party RFC 9421 library must decode it (issue 10)."""
    import base64

    assert main(["client", "signing-key", "acme", "--config", config]) == 0
    out = capsys.readouterr().out
    assert "base64 of the raw HMAC key" in out
    key = run_json(capsys, "client", "signing-key", "acme", "--json", "--config", config)
    assert key["key_encoding"] == "base64 of the raw HMAC key"
    assert len(base64.b64decode(key["key"], validate=True)) == 32  # HMAC-SHA256 key bytes


def test_signing_key_grace_keeps_the_old_key_for_a_while(config, capsys):
    first = run_json(capsys, "client", "signing-key", "acme", "--json", "--config", config)
    run_json(capsys, "client", "signing-key", "acme", "--json", "--grace", "1h", "--config", config)
    store = load(config).store
    record = store.get(SIGNING_KEYS, first["keyid"])
    assert record is not None and record["expires"] > record["created"]
    run_json(capsys, "client", "signing-key", "acme", "--json", "--grace", "0", "--config", config)
    assert store.get(SIGNING_KEYS, first["keyid"]) is None


def test_bad_grace_is_a_usage_error(config, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["client", "signing-key", "acme", "--grace", "one day", "--config", config])
    assert exit_info.value.code == 2


def test_unknown_client_is_refused_when_a_client_registry_exists(config, capsys):
    store = load(config).store
    store.put("clients", "c_registered", {"id": "c_registered", "name": "Registered"})
    assert main(["client", "signing-key", "c_nobody", "--config", config]) == 3
    assert "no client 'c_nobody'" in capsys.readouterr().err
    assert main(["client", "request-token", "c_nobody", "--config", config]) == 3
    store.put("clients", "c_off", {"id": "c_off", "disabled": True})
    assert main(["client", "request-token", "c_off", "--config", config]) == 3
    assert "disabled" in capsys.readouterr().err
    assert main(["client", "request-token", "c_registered", "--json", "--config", config]) == 0


def test_revoke_request_token(config, capsys):
    token = run_json(capsys, "client", "request-token", "acme", "--json", "--config", config)
    key = run_json(capsys, "client", "signing-key", "acme", "--json", "--config", config)
    assert main(["client", "revoke-request-token", token["token_id"], "--config", config]) == 0
    partner = PartnerTestApp(load(config), keyid=key["keyid"], signing_key=key["key"],
                             request_token=token["request_token"])
    response = partner.get("/api/items", expect_errors=True)
    assert response.status_int == 401 and response.json["reason"] == "unknown-key"


def test_missing_layer_is_a_clear_error(tmp_path, capsys):
    shutil.copy(INI / "check_clean.ini", tmp_path / "check_clean.ini")
    shutil.copy(INI / "wsgisec_test_apps.py", tmp_path / "wsgisec_test_apps.py")
    with pytest.raises(SystemExit) as exit_info:
        main(["client", "request-token", "acme", "--config", str(tmp_path / "check_clean.ini")])
    assert exit_info.value.code == 2
    assert "no signed_requests layer" in capsys.readouterr().err


def test_ini_settings_reach_the_layer(config):
    layer = load(config)
    assert isinstance(layer, SignedRequests)
    assert layer.settings["max_clock_skew"] == 120
    assert layer.settings["request_token_max_age"] == 30 * 86400
    assert [key.source for key in layer.settings["secret_keys"]] == ["env", "env"]


def test_for_client_in_one_line(config):
    partner = PartnerTestApp.for_client(load(config), "acme")
    assert partner.get("/api/whoami").json["user"] == "acme"  # REMOTE_USER set by the layer
    assert partner.get("/healthz", extra_environ=UNSIGNED).text == "ok\n"  # exempt path


def test_flagship_example_section(tmp_path, capsys):
    """examples/partner_api.ini's [filter:signed_requests], as shipped, with the dev key."""
    from wsgisec.signed_requests import csrf  # noqa: F401
    app = pipeline.load(str(INI / "signed_requests_flagship.ini"),
                        global_conf={"wsgisec_store": "sqlite:///" + str(tmp_path / "s.sqlite")})
    assert any("development key" in text for text in app.warnings())
    partner = PartnerTestApp.for_client(app, "acme")
    assert partner.get("/api/items").status_int == 200
    assert main(["check", str(INI / "signed_requests_flagship.ini")]) == 1
    assert "development key" in capsys.readouterr().out


def test_request_token_ids_never_look_like_an_option(config, capsys):
    """Issue 10: an id beginning with "-" needed "--" before it on the command line."""
    layer = load(config)
    ids = [layer.issue_request_token("acme")[1]["token_id"] for _ in range(300)]
    assert not [token_id for token_id in ids if token_id.startswith("-")]
