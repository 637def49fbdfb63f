"""``wsgisec store migrate``: a flagship deployment on SQLite moves to Redis (one server or
a Cluster) and its partner carries on with the same credentials; revocation still finds
every migrated token (tags moved); a second run changes nothing; a missing source is an
error, never an empty store."""

from __future__ import annotations

import contextlib
import io

import pytest

from racing import drop_prefix, redis_prefix_url
from store_servers import VIA_TLS_PROXY, redis_cluster  # noqa: F401 - a fixture
from conftest import REDIS_URL, redis_available, validated
from wsgisec import pipeline
from wsgisec.cli import main
from wsgisec.credentials import TOKENS
from wsgisec.signed_requests import SignedRequests
from wsgisec.signed_requests.request_tokens import FLOORS
from wsgisec.store import open_backend
from wsgisec.testing import PartnerTestApp, partner_credentials
from wsgisec.token_auth import TokenAuth


@pytest.fixture(params=["redis", "redis-cluster"])
def target_url(request):
    if request.param == "redis":
        reason = redis_available()
        if reason:
            pytest.skip(f"needs a real Redis server: {reason}")
        url, prefix = redis_prefix_url(REDIS_URL)
    else:
        url, prefix = redis_prefix_url(request.getfixturevalue("redis_cluster"))
    yield url
    drop_prefix(url, prefix)


def migrate(source, target):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(["store", "migrate", "--from", source, "--to", target])
    return status, out.getvalue()


def test_a_flagship_deployment_moves_from_sqlite_to_redis(load_example, store_url, target_url):
    old = load_example("partner_api.ini")
    token_auth, signed = pipeline.find_layer(old, TokenAuth), pipeline.find_layer(old, SignedRequests)
    client, _secret = token_auth.registry.create("Acme", scopes=["items:read", "items:write"])
    gone, _ = token_auth.registry.create("Gone", scopes=["items:read"])
    issued = token_auth.issue_token(client["id"])
    credentials = partner_credentials(old, client["id"])
    revoked_token, revoked_record = signed.issue_request_token(gone["id"])
    signed.revoke_request_tokens_of(gone["id"])  # a floor and a revocation, to be moved too

    status, output = migrate(store_url, target_url)
    assert status == 0, output
    assert "clients: 2 copied, 0 already there" in output and "tokens: 2 copied" in output
    assert "signing_keys: 1 copied" in output and "request_token_floors: 1 copied" in output

    new = load_example("partner_api.ini", wsgisec_store=target_url)
    partner = PartnerTestApp(validated(new), **credentials, access_token=issued["access_token"],
                             extra_environ=dict(VIA_TLS_PROXY))
    assert "Widget" in partner.get("/api/items", status=200).text
    target = open_backend(target_url)
    ttl = target.client.pttl(target._k(TOKENS, __import__("wsgisec.credentials").credentials.digest(
        issued["access_token"])))
    assert 0 < ttl <= 900_000  # the remaining lifetime moved, not a fresh one
    assert target.get(FLOORS, gone["id"]) is not None

    # The tags moved: disabling the client on the new store finds both of its tokens.
    assert pipeline.find_layer(new, TokenAuth).registry.disable(client["id"]) == 2
    assert partner.get("/api/items", status=401).json["error"] == "invalid_token"

    status, output = migrate(store_url, target_url)  # again: nothing to copy, nothing undone
    assert status == 0 and "0 keys copied" in output, output
    assert target.get("clients", client["id"])["disabled"] is True
    assert partner.get("/api/items", status=401).json["error"] == "invalid_token"


def test_a_redis_store_moves_back_to_sqlite_with_its_tags(target_url, tmp_path):
    source = open_backend(target_url)
    source.put(TOKENS, "digest-a", {"type": "access", "client_id": "c_1"}, ttl=600, tags=["client:c_1"])
    source.put("clients", "c_1", {"id": "c_1", "name": "Zoë"})
    back = "sqlite:///" + str(tmp_path / "back.sqlite")
    status, output = migrate(target_url, back)
    assert status == 0 and "2 keys copied" in output, output
    restored = open_backend(back)
    assert restored.get("clients", "c_1") == {"id": "c_1", "name": "Zoë"}
    assert restored.delete_tagged(TOKENS, "client:c_1") == 1


def test_a_missing_source_is_an_error_and_no_empty_store(tmp_path, capsys):
    missing = tmp_path / "typo.sqlite"
    status = main(["store", "migrate", "--from", f"sqlite:///{missing}", "--to",
                   "sqlite:///" + str(tmp_path / "new.sqlite")])
    assert status == 2 and not missing.exists()
    assert "store migrate:" in capsys.readouterr().err


def test_from_and_to_the_same_store_is_refused(tmp_path, capsys):
    url = "sqlite:///" + str(tmp_path / "one.sqlite")
    assert main(["store", "migrate", "--from", url, "--to", url]) == 2
    assert "same store" in capsys.readouterr().err
