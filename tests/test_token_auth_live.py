"""token_auth against the world: standard OAuth 2.0 client libraries talking to the flagship
example served by a real waitress server, and the SQLite file read byte by byte to prove it
holds no usable secret or token."""

import base64
import os
import pathlib
import shutil
import socket
import sqlite3
import subprocess
import sys
import time

import pytest
import requests
from webtest import TestApp

from conftest import EXAMPLES, validated
from wsgisec import pipeline
from wsgisec.credentials import digest
from wsgisec.token_auth import TokenAuth

# The example's https layer believes X-Forwarded-Proto from 127.0.0.1 (a local TLS proxy).
PROXY_HEADERS = {"X-Forwarded-Proto": "https"}


@pytest.fixture
def served(load_example):
    """partner_api.ini on a real waitress server at 127.0.0.1:<free port>, in a thread.

    WebTest's StopableWSGIServer is waitress with a clean cross-thread shutdown.
    """
    from webtest.http import StopableWSGIServer

    app = load_example("partner_api.ini")
    # As `wsgisec serve` runs it: proxy headers are judged by the https layer, not waitress.
    server = StopableWSGIServer.create(app, host="127.0.0.1", ident="", expose_tracebacks=False,
                                       clear_untrusted_proxy_headers=False, threads=2)
    try:
        assert server.wait(), "the server did not start"
        yield server.application_url.rstrip("/"), pipeline.find_layer(app, TokenAuth)
    finally:
        server.shutdown()


@pytest.fixture
def insecure_transport_ok(monkeypatch):
    # The libraries refuse http:// URLs; TLS is terminated by the (simulated) local proxy.
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")


def test_requests_oauthlib_client_credentials_flow(served, insecure_transport_ok, request):
    from oauthlib.oauth2 import BackendApplicationClient
    from requests.auth import HTTPBasicAuth
    from requests_oauthlib import OAuth2Session

    base, layer = served
    record, secret = layer.registry.create("Acme via requests-oauthlib", scopes=["items:read"])
    session = OAuth2Session(client=BackendApplicationClient(client_id=record["id"], scope=["items:read"]))
    request.addfinalizer(session.close)
    session.headers.update(PROXY_HEADERS)
    token = session.fetch_token(token_url=base + "/oauth/token", client_id=record["id"], client_secret=secret)
    assert token["token_type"] == "Bearer" and token["scope"] == ["items:read"]
    response = session.get(base + "/api/items")
    assert response.status_code == 200 and "Widget" in response.text
    assert response.headers["Strict-Transport-Security"]
    assert session.post(base + "/api/items", json={"name": "x", "price": 1}).status_code == 403

    renewed = session.refresh_token(base + "/oauth/token", auth=HTTPBasicAuth(record["id"], secret))
    assert renewed["access_token"] != token["access_token"]
    assert session.get(base + "/api/items").status_code == 200
    old = requests.get(base + "/api/items", headers=dict(PROXY_HEADERS, Authorization="Bearer " + token["access_token"]))
    assert old.status_code == 200  # rotation replaces refresh tokens; access tokens run out on their own

    # An RFC 6749 §5.2 error surfaces as the library's own exception.
    from oauthlib.oauth2.rfc6749.errors import InvalidClientError

    with OAuth2Session(client=BackendApplicationClient(client_id=record["id"])) as other, \
            pytest.raises(InvalidClientError):
        other.fetch_token(token_url=base + "/oauth/token", client_id=record["id"], client_secret="wrong" + secret,
                          headers=dict(PROXY_HEADERS, Accept="application/json"))


@pytest.mark.parametrize("auth_method", ["client_secret_basic", "client_secret_post"])
def test_authlib_session_fetch_refresh_revoke_introspect(served, insecure_transport_ok, auth_method, request):
    from authlib.integrations.requests_client import OAuth2Session

    base, layer = served
    record, secret = layer.registry.create("Acme via Authlib", scopes=["items:read", "items:write"])
    session = OAuth2Session(record["id"], secret, scope="items:read",
                            token_endpoint_auth_method=auth_method)
    request.addfinalizer(session.close)
    session.headers.update(PROXY_HEADERS)
    token = session.fetch_token(base + "/oauth/token", grant_type="client_credentials")
    assert token["scope"] == "items:read" and token["expires_in"] == 900
    assert session.get(base + "/api/items").status_code == 200
    whoami = session.get(base + "/api/whoami")
    assert whoami.status_code == 200 and whoami.json() == {"user": record["id"], "scopes": "items:read"}

    renewed = session.refresh_token(base + "/oauth/token")
    assert renewed["refresh_token"] != token["refresh_token"]
    assert session.get(base + "/api/items").status_code == 200

    # The resource server behind the same store introspects with its own permission.
    rs, rs_secret = layer.registry.create("Resource server", permissions=["introspect"])
    checker = OAuth2Session(rs["id"], rs_secret, token_endpoint_auth_method=auth_method)
    request.addfinalizer(checker.close)
    checker.headers.update(PROXY_HEADERS)
    active = checker.introspect_token(base + "/oauth/introspect", token=renewed["access_token"]).json()
    assert active["active"] is True and active["client_id"] == record["id"]

    revoked = session.revoke_token(base + "/oauth/revoke", token=renewed["refresh_token"],
                                   token_type_hint="refresh_token")
    assert revoked.status_code == 200
    assert session.get(base + "/api/items").status_code == 401
    gone = checker.introspect_token(base + "/oauth/introspect", token=renewed["access_token"]).json()
    assert gone == {"active": False}


def test_plain_http_without_the_proxy_header_is_refused_by_the_https_layer(served):
    base, layer = served
    record, secret = layer.registry.create("Careless", scopes=["items:read"])
    response = requests.post(base + "/oauth/token", data={"grant_type": "client_credentials"},
                             auth=(record["id"], secret))
    assert response.status_code == 403 and secret not in response.text


def test_sqlite_file_holds_no_plaintext_secret_or_token(load_example, store_url):
    app = load_example("partner_api.ini")
    layer = pipeline.find_layer(app, TokenAuth)
    test = TestApp(validated(app), extra_environ={"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_PROTO": "https"})
    record, secret = layer.registry.create("Acme", scopes=["items:read"])
    rotated = layer.registry.rotate_secret(record["id"], grace=3600)
    basic = {"Authorization": "Basic " + base64.b64encode(f"{record['id']}:{rotated}".encode()).decode()}
    first = test.post("/oauth/token", {"grant_type": "client_credentials"}, headers=basic).json
    second = test.post("/oauth/token", {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
                       headers=basic).json
    user = layer.issue_token(record["id"], user="alice")
    test.get("/api/items", headers={"Authorization": "Bearer " + second["access_token"]})
    test.post("/oauth/token", {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
              headers=basic, status=400)  # reuse: an event is written too
    fresh = layer.issue_token(record["id"])

    path = pathlib.Path(store_url[len("sqlite:///"):])
    files = [p for p in path.parent.iterdir() if p.name.startswith(path.name)]  # main file, -wal, -shm
    raw = b"".join(p.read_bytes() for p in files)
    with sqlite3.connect(path) as connection:
        rows = " ".join(" ".join(str(v) for v in row) for table in ("kv", "tags", "events", "counters")
                        for row in connection.execute(f"SELECT * FROM {table}"))
    plaintext = [secret, rotated, first["access_token"], first["refresh_token"], second["access_token"],
                 second["refresh_token"], user["access_token"], user["refresh_token"],
                 fresh["access_token"], fresh["refresh_token"]]
    for value in plaintext:
        assert value.encode() not in raw and value not in rows
        assert base64.b64encode(value.encode()).decode()[:40] not in rows
    # ...while the digests are what the store holds: the check looked at the right data.
    assert digest(fresh["access_token"]) in rows and "$argon2id$" in rows
    assert len(raw) > 0 and len(files) >= 1


# The README's partner quick-start, verbatim (the notes file copies it from here).
QUICKSTART = r'''export WSGISEC_CONFIG=examples/partner_api.ini
API=http://127.0.0.1:8080

# 1. The operator creates a client; its secret is printed once and stored only as a hash.
wsgisec client create --name "Acme reporting" --scope items:read --json > acme-client.json
CLIENT_ID=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["client_id"])' < acme-client.json)
CLIENT_SECRET=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["client_secret"])' < acme-client.json)

# 2. The partner gets a token (client credentials grant, HTTP Basic client authentication).
#    X-Forwarded-Proto: https plays the local TLS proxy that the example trusts.
curl -s -u "$CLIENT_ID:$CLIENT_SECRET" -H 'X-Forwarded-Proto: https' \
     -d grant_type=client_credentials "$API/oauth/token" > token.json
ACCESS_TOKEN=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])' < token.json)
REFRESH_TOKEN=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["refresh_token"])' < token.json)

# 3. ...and calls the API with it.
curl -s -H "Authorization: Bearer $ACCESS_TOKEN" -H 'X-Forwarded-Proto: https' "$API/api/items"
echo

# 4. Before the access token expires (15 minutes), it renews both tokens; the old
#    refresh token is spent (using it again would revoke the whole token family).
curl -s -u "$CLIENT_ID:$CLIENT_SECRET" -H 'X-Forwarded-Proto: https' \
     -d grant_type=refresh_token --data-urlencode "refresh_token=$REFRESH_TOKEN" "$API/oauth/token" > token.json
ACCESS_TOKEN=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])' < token.json)
REFRESH_TOKEN=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["refresh_token"])' < token.json)
curl -s -H "Authorization: Bearer $ACCESS_TOKEN" -H 'X-Forwarded-Proto: https' "$API/api/items"
echo

# 5. When done, it revokes the refresh token (RFC 7009), which also ends its access token.
curl -s -o /dev/null -w 'revoke: %{http_code}\n' -u "$CLIENT_ID:$CLIENT_SECRET" -H 'X-Forwarded-Proto: https' \
     --data-urlencode "token=$REFRESH_TOKEN" -d token_type_hint=refresh_token "$API/oauth/revoke"
curl -s -o /dev/null -w 'API after revocation: %{http_code}\n' \
     -H "Authorization: Bearer $ACCESS_TOKEN" -H 'X-Forwarded-Proto: https' "$API/api/items"
'''


@pytest.mark.skipif(not shutil.which("curl") or not shutil.which("bash"), reason="needs curl and bash")
def test_readme_partner_quick_start_works_when_pasted(tmp_path):
    """`wsgisec serve examples/partner_api.ini` in a subprocess, then the quick-start in bash."""
    shutil.copytree(EXAMPLES, tmp_path / "examples", ignore=shutil.ignore_patterns("var", "__pycache__"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wsgisec = bin_dir / "wsgisec"  # the console script, as an installed package provides it
    wsgisec.write_text(f"#!/bin/sh\nexec {sys.executable} -m wsgisec.cli \"$@\"\n")
    wsgisec.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", PYTHONPATH=str(EXAMPLES))
    server = subprocess.Popen([sys.executable, "-m", "wsgisec.cli", "serve", "examples/partner_api.ini",
                               "--port", str(port)], cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        script = "set -e\n" + QUICKSTART.replace("127.0.0.1:8080", f"127.0.0.1:{port}")
        result = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True,
                                text=True, timeout=120)
    finally:
        server.terminate()
        server.wait(10)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert '"Widget"' in lines[0] and '"Widget"' in lines[1]
    assert lines[2:] == ["revoke: 200", "API after revocation: 401"]
