"""Issue 11: revocation must refuse every request token issued before it, including tokens
minted offline with a key we still accept, not only the ids on a list."""

from __future__ import annotations

import time

import pytest
from webtest import TestApp

from conftest import validated
from wsgisec.cli import main
from wsgisec.signed_requests import SignedRequests
from wsgisec.signed_requests.request_tokens import FLOORS, ISSUED, RequestTokenError, RequestTokens
from wsgisec.testing import PartnerTestApp
from wsgisec.token_auth.clients import ClientRegistry

from .test_signed_requests import SECRET, make_layer, refusal, send, signed
from .test_signed_requests_cli import config, load, run_json  # noqa: F401


def offline(client_id, keys=(SECRET,), **kw):
    """A token minted with one of our keys by someone with no access to the store."""
    return RequestTokens(list(keys), **kw).issue(client_id)[0]


def test_a_token_minted_offline_with_an_accepted_key_is_refused(store):
    tokens = RequestTokens([SECRET], store=store)
    with pytest.raises(RequestTokenError) as raised:
        tokens.verify(offline("acme"))
    assert raised.value.code == "unknown-key" and "not one this API issued" in raised.value.hint
    assert RequestTokens([SECRET]).verify(offline("acme"))["client_id"] == "acme"  # no store: signature only


def test_revoking_a_client_refuses_every_older_token_and_accepts_new_ones(store):
    tokens = RequestTokens([SECRET], store=store)
    first, _ = tokens.issue("acme")
    other, _ = tokens.issue("globex")
    assert tokens.revoke_client("acme") == 1
    with pytest.raises(RequestTokenError) as raised:
        tokens.verify(first)
    assert raised.value.code == "unknown-key"
    assert tokens.verify(other)["client_id"] == "globex"  # another client is untouched
    fresh, _ = tokens.issue("acme")  # the same second as the revocation
    assert tokens.verify(fresh)["client_id"] == "acme"


def test_the_floor_refuses_an_older_token_whose_record_survived(store):
    """A record written concurrently with the revocation (or restored) does not bring an
    older token back: the issued-at floor decides."""
    now = [time.time()]
    tokens = RequestTokens([SECRET], store=store, clock=lambda: now[0])
    token, record = tokens.issue("acme")
    now[0] += 10
    tokens.revoke_client("acme")
    store.put(ISSUED, record["token_id"], record)
    assert store.get(FLOORS, "acme")["not_before"] == int(now[0])
    with pytest.raises(RequestTokenError) as raised:
        tokens.verify(token)
    assert "every older token" in raised.value.hint


def test_a_record_of_another_client_or_time_does_not_vouch_for_a_token(store):
    tokens = RequestTokens([SECRET], store=store)
    _token, record = tokens.issue("acme")
    forged = RequestTokens([SECRET], clock=lambda: time.time() - 60)
    token = forged._serializer.dumps({"c": "acme", "k": record["key_id"], "j": record["token_id"]})
    with pytest.raises(RequestTokenError):
        tokens.verify(token)  # a real id, but another issue time


def test_disabling_the_client_refuses_its_request_tokens(store):
    tokens = RequestTokens([SECRET], store=store)
    record, _secret = ClientRegistry(store).create("Acme", scopes=["items:read"])
    token, _ = tokens.issue(record["id"])
    assert tokens.verify(token)["client_id"] == record["id"]
    ClientRegistry(store).disable(record["id"])
    with pytest.raises(RequestTokenError):
        tokens.verify(token)


def test_the_layer_refuses_an_offline_token_with_a_reason_and_hint(store):
    layer = make_layer(store)
    key = layer.issue_signing_key("acme")
    creds = {"keyid": key["keyid"], "key": key["key"], "token": offline("acme")}
    response = refusal(send(TestApp(validated(layer)), signed(creds)), "unknown-key")
    assert "not one this API issued" in response.json["detail"]


# -- through the operator's CLI ----------------------------------------------------------------

def partner(config, key, token):
    return PartnerTestApp(load(config), keyid=key["keyid"], signing_key=key["key"], request_token=token)


def test_cli_revoke_request_token_client_refuses_every_token_of_the_client(config, capsys):  # noqa: F811
    key = run_json(capsys, "client", "signing-key", "acme", "--json", "--config", config)
    listed = run_json(capsys, "client", "request-token", "acme", "--json", "--config", config)
    layer = load(config)
    minted = offline("acme", layer.secret_keys)  # with the ini's own key, never recorded
    assert partner(config, key, listed["request_token"]).get("/api/items").status_int == 200
    assert main(["client", "revoke-request-token", "--client", "acme", "--config", config]) == 0
    assert "every request token of acme" in capsys.readouterr().out
    for token in (listed["request_token"], minted):
        response = partner(config, key, token).get("/api/items", expect_errors=True)
        assert response.status_int == 401 and response.json["reason"] == "unknown-key"
    fresh = run_json(capsys, "client", "request-token", "acme", "--json", "--config", config)
    assert partner(config, key, fresh["request_token"]).get("/api/items").status_int == 200


def test_cli_request_token_revoke_older_rotates(config, capsys):  # noqa: F811
    key = run_json(capsys, "client", "signing-key", "acme", "--json", "--config", config)
    old = run_json(capsys, "client", "request-token", "acme", "--json", "--config", config)
    new = run_json(capsys, "client", "request-token", "acme", "--revoke-older", "--json", "--config", config)
    assert new["older_tokens_revoked"] == 1
    assert partner(config, key, new["request_token"]).get("/api/items").status_int == 200
    refused = partner(config, key, old["request_token"]).get("/api/items", expect_errors=True)
    assert refused.status_int == 401 and refused.json["reason"] == "unknown-key"


def test_cli_revoke_needs_a_token_id_or_a_client(config, capsys):  # noqa: F811
    with pytest.raises(SystemExit) as exit_info:
        main(["client", "revoke-request-token", "--config", config])
    assert exit_info.value.code == 2


# -- through the served flagship -----------------------------------------------------------------

def test_the_served_flagship_refuses_offline_and_revoked_tokens(flagship):
    import base64

    from requests_http_signature import HTTPSignatureAuth, algorithms

    from wsgisec import pipeline

    acme = flagship.partner()
    keys = pipeline.find_layer(pipeline.load(flagship.ini), SignedRequests).secret_keys  # the dev key
    minted = offline(acme["client_id"], keys)

    def call(token):
        auth = HTTPSignatureAuth(key=base64.b64decode(acme["signing_key"]), key_id=acme["keyid"],
                                 signature_algorithm=algorithms.HMAC_SHA256, use_nonce=True)
        with flagship.session() as session:
            return session.get(flagship.url + "/api/items", auth=auth, timeout=10, headers={
                "Authorization": "Bearer " + acme["access_token"], "X-Request-Token": token})

    assert call(acme["request_token"]).status_code == 200
    refused = call(minted)
    assert refused.status_code == 401 and refused.json()["reason"] == "unknown-key"
    rotated = flagship.cli_json("client", "request-token", acme["client_id"], "--revoke-older")
    assert call(rotated["request_token"]).status_code == 200
    assert call(acme["request_token"]).status_code == 401
    flagship.cli("client", "revoke-request-token", "--client", acme["client_id"])
    for token in (rotated["request_token"], minted):
        refused = call(token)
        assert refused.status_code == 401 and refused.json()["reason"] == "unknown-key"
