"""token_auth against the world: standard OAuth 2.0 client libraries talking to the flagship
example served by a real waitress server, and the SQLite file read byte by byte to prove it
holds no usable secret or token."""

import base64
import os
import pathlib
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import time

import pytest
import requests
from webtest import TestApp

from conftest import EXAMPLES, ROOT, validated
from wsgisec import pipeline
from wsgisec.credentials import digest
from wsgisec.partner import PartnerAuth
from wsgisec.testing import PartnerTestApp, partner_credentials
from wsgisec.token_auth import TokenAuth

# The example's https layer believes X-Forwarded-Proto from 127.0.0.1 (a local TLS proxy).
PROXY_HEADERS = {"X-Forwarded-Proto": "https"}


@pytest.fixture
def flagship(load_example):
    return load_example("partner_api.ini")


@pytest.fixture
def served(flagship):
    """partner_api.ini on a real waitress server at 127.0.0.1:<free port>, in a thread.

    WebTest's StopableWSGIServer is waitress with a clean cross-thread shutdown.
    """
    from webtest.http import StopableWSGIServer

    app = flagship
    # As `wsgisec serve` runs it: proxy headers are judged by the https layer, not waitress.
    server = StopableWSGIServer.create(app, host="127.0.0.1", ident="", expose_tracebacks=False,
                                       clear_untrusted_proxy_headers=False, threads=2)
    try:
        assert server.wait(), "the server did not start"
        yield server.application_url.rstrip("/"), pipeline.find_layer(app, TokenAuth)
    finally:
        server.shutdown()


@pytest.fixture
def signer(flagship, served):
    """``signer(client_id, before=None)``: a requests auth that signs as that partner.

    The example's signed_requests layer wants, with the bearer token, the request token
    and an RFC 9421 signature the operator's credentials make. ``PartnerAuth`` without a
    client secret fetches no token: it only adds X-Request-Token, Content-Digest and the
    signature, so the OAuth library keeps injecting (and refreshing) the bearer token.
    requests-oauthlib puts the token in the headers before the auth runs; Authlib uses
    ``auth=`` for its own token auth, which is then passed as ``before``.
    """
    base, _layer = served

    def signer(client_id, before=None):
        credentials = partner_credentials(flagship, client_id)
        sign = PartnerAuth(base, client_id=client_id, keyid=credentials["keyid"],
                           signing_key=credentials["signing_key"], request_token=credentials["request_token"],
                           request_token_header=credentials["request_token_header"])
        return sign if before is None else (lambda prepared: sign(before(prepared)))

    return signer


def assert_bearer_alone_is_refused(response):
    """token_auth took the bearer token; signed_requests wants the partner's signature."""
    assert response.status_code == 401 and response.json()["reason"] == "signature-missing"


@pytest.fixture
def insecure_transport_ok(monkeypatch):
    # The libraries refuse http:// URLs; TLS is terminated by the (simulated) local proxy.
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")


def test_requests_oauthlib_client_credentials_flow(served, signer, insecure_transport_ok, request):
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
    assert_bearer_alone_is_refused(session.get(base + "/api/items"))
    sign = signer(record["id"])
    response = session.get(base + "/api/items", auth=sign)
    assert response.status_code == 200 and "Widget" in response.text
    assert response.headers["Strict-Transport-Security"]
    assert session.post(base + "/api/items", json={"name": "x", "price": 1}, auth=sign).status_code == 403

    renewed = session.refresh_token(base + "/oauth/token", auth=HTTPBasicAuth(record["id"], secret))
    assert renewed["access_token"] != token["access_token"]
    assert session.get(base + "/api/items", auth=sign).status_code == 200
    old = requests.get(base + "/api/items", auth=sign,
                       headers=dict(PROXY_HEADERS, Authorization="Bearer " + token["access_token"]))
    assert old.status_code == 200  # rotation replaces refresh tokens; access tokens run out on their own

    # An RFC 6749 §5.2 error surfaces as the library's own exception.
    from oauthlib.oauth2.rfc6749.errors import InvalidClientError

    with OAuth2Session(client=BackendApplicationClient(client_id=record["id"])) as other, \
            pytest.raises(InvalidClientError):
        other.fetch_token(token_url=base + "/oauth/token", client_id=record["id"], client_secret="wrong" + secret,
                          headers=dict(PROXY_HEADERS, Accept="application/json"))


@pytest.mark.parametrize("auth_method", ["client_secret_basic", "client_secret_post"])
def test_authlib_session_fetch_refresh_revoke_introspect(served, signer, insecure_transport_ok, auth_method,
                                                         request):
    from authlib.integrations.requests_client import OAuth2Session

    base, layer = served
    record, secret = layer.registry.create("Acme via Authlib", scopes=["items:read", "items:write"])
    session = OAuth2Session(record["id"], secret, scope="items:read",
                            token_endpoint_auth_method=auth_method)
    request.addfinalizer(session.close)
    session.headers.update(PROXY_HEADERS)
    token = session.fetch_token(base + "/oauth/token", grant_type="client_credentials")
    assert token["scope"] == "items:read" and token["expires_in"] == 900
    assert_bearer_alone_is_refused(session.get(base + "/api/items"))
    sign = signer(record["id"], before=session.token_auth)  # Authlib's bearer auth, then the signature
    assert session.get(base + "/api/items", auth=sign).status_code == 200
    whoami = session.get(base + "/api/whoami", auth=sign)
    assert whoami.status_code == 200 and whoami.json() == {"user": record["id"], "scopes": "items:read"}

    renewed = session.refresh_token(base + "/oauth/token")
    assert renewed["refresh_token"] != token["refresh_token"]
    assert session.get(base + "/api/items", auth=sign).status_code == 200

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
    gone = session.get(base + "/api/items", auth=sign)  # signed: token_auth refuses the revoked token
    assert gone.status_code == 401 and 'error="invalid_token"' in gone.headers["WWW-Authenticate"]
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
    bearer_only = test.get("/api/items", headers={"Authorization": "Bearer " + second["access_token"]}, status=401)
    assert bearer_only.json["reason"] == "signature-missing"
    # A partner call as the example wants it (request token + RFC 9421 signature); the Host a
    # partner calling https://localhost/ sends (WebTest's "localhost:80" would be signed as http).
    credentials = partner_credentials(app, record["id"])
    partner = PartnerTestApp(validated(app), access_token=second["access_token"],
                             extra_environ={"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_PROTO": "https",
                                            "HTTP_HOST": "localhost"}, **credentials)
    assert "Widget" in partner.get("/api/items").text
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
                 fresh["access_token"], fresh["refresh_token"], credentials["request_token"]]
    for value in plaintext:
        assert value.encode() not in raw and value not in rows
        assert base64.b64encode(value.encode()).decode()[:40] not in rows
    # ...while the digests are what the store holds: the check looked at the right data.
    assert digest(fresh["access_token"]) in rows and "$argon2id$" in rows
    assert len(raw) > 0 and len(files) >= 1


# README.md's partner quick-start, run verbatim (one source: edit it there).
QUICKSTART = re.search(r"<!-- quick-start[^\n]*-->\n```bash\n(.*?)```",
                       (ROOT / "README.md").read_text(), re.S).group(1)
PARTNER_AUTH = re.search(r"<!-- partner-auth[^\n]*-->\n```python\n(.*?)```",
                         (ROOT / "README.md").read_text(), re.S).group(1)


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
    python3 = bin_dir / "python3"  # the Python wsgisec[partner] is installed in (an activated venv)
    python3.write_text(f"#!/bin/sh\nexec {sys.executable} \"$@\"\n")
    python3.chmod(0o755)
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
        partner_auth = _run_partner_auth_snippet(tmp_path, env, port) if result.returncode == 0 else None
    finally:
        server.terminate()
        server.wait(10)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 6, result.stdout
    # The bearer token alone: token_auth accepts it, signed_requests wants the signature.
    assert '"status": 401' in lines[0] and '"reason": "signature-missing"' in lines[0]
    assert lines[1].startswith("200 ") and '"Widget"' in lines[1]
    # The crashing legacy route, masked by error_masker: an incident id, no trace.
    assert lines[2].startswith("500 ") and '"incident_id"' in lines[2]
    assert "ZeroDivisionError" not in lines[2] and "Traceback" not in lines[2]
    lines.pop(2)
    assert lines[2].startswith("200 ") and '"Widget"' in lines[2]
    assert lines[3] == "revoke: 200"
    # README's PartnerAuth snippet, pasted by the same partner: token, signature, 200.
    assert partner_auth.returncode == 0, partner_auth.stderr
    assert partner_auth.stdout.strip() == "200 Widget"
    # Signed, and refused by token_auth: the access token went with its refresh token.
    assert lines[4].startswith("401 ") and '"error": "invalid_token"' in lines[4]


def _run_partner_auth_snippet(directory, env, port):
    """The quick-start's partner runs README's PartnerAuth snippet with its variables."""
    import json

    client = json.loads((directory / "acme-client.json").read_text())
    key = json.loads((directory / "acme-signing-key.json").read_text())
    issued = subprocess.run(["wsgisec", "client", "request-token", client["client_id"], "--json"],
                            cwd=directory, env=dict(env, WSGISEC_CONFIG="examples/partner_api.ini"),
                            capture_output=True, text=True, timeout=60, check=True)
    variables = dict(env, API=f"http://127.0.0.1:{port}", CLIENT_ID=client["client_id"],
                     CLIENT_SECRET=client["client_secret"], KEY_ID=key["keyid"], SIGNING_KEY=key["key"],
                     REQUEST_TOKEN=json.loads(issued.stdout)["request_token"])
    return subprocess.run([sys.executable, "-c", PARTNER_AUTH], cwd=directory, env=variables,
                          capture_output=True, text=True, timeout=60)
