"""wsgisec.partner (the partner SDK) against a real waitress server running the real
token_auth + signed_requests stack, and wsgisec.testing in front of the same stack."""

from __future__ import annotations

import base64
import json
import time

import pytest
import requests

from wsgisec.token_auth.clients import ClientRegistry
from wsgisec.partner import EncryptedFileKeystore, PartnerAuth, TokenError, sign_headers
from wsgisec.settings import Secret
from wsgisec.signed_requests import SignedRequests
from wsgisec.store.sqlite import SQLiteStore
from wsgisec.testing import UNSIGNED, PartnerTestApp, partner_credentials
from wsgisec.token_auth import TokenAuth

SECRET = Secret("partner-test-request-token-key-0123456789", "env")


def echo_app(environ, start_response):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    data = json.dumps({"client": (environ.get("wsgisec.client") or {}).get("id"),
                       "verified": environ.get("wsgisec.signed_requests"),
                       "authorization_seen": "HTTP_AUTHORIZATION" in environ,
                       "body": body.decode()}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


@pytest.fixture
def stack(tmp_path):
    """token_auth -> signed_requests -> app on one SQLite store, and a registered client."""
    store = SQLiteStore(str(tmp_path / "partner.sqlite"))
    signed = SignedRequests(echo_app, secret_keys=[SECRET], store=store, browser_csrf=False)
    outer = TokenAuth(signed, store=store, require_tls=False, access_token_ttl=120)
    record, secret = ClientRegistry(store).create("Acme", scopes=["items:read"])
    client = {"client_id": record["id"], "client_secret": secret}
    key = signed.issue_signing_key(record["id"])
    client.update(keyid=key["keyid"], signing_key=key["key"],
                  request_token=signed.issue_request_token(record["id"])[0])
    yield outer, signed, store, client
    store.close()


@pytest.fixture
def served(stack, wsgi_server):
    outer = stack[0]
    return wsgi_server(outer, threads=2).url, stack


class Counting(requests.Session):
    def __init__(self):
        super().__init__()
        self.grants = []

    def send(self, request, **kw):
        self.grants.append(dict(x.split("=", 1) for x in request.body.decode().split("&"))["grant_type"])
        return super().send(request, **kw)


def test_partner_auth_end_to_end(served):
    base, (_, _, _, client) = served
    session = Counting()
    auth = PartnerAuth(base, scope="items:read", session=session, **client)
    response = requests.post(base + "/items?x=1", json={"name": "widget"}, auth=auth, timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["client"] == client["client_id"]  # token_auth's client ...
    assert response.json()["verified"]["keyid"] == client["keyid"]  # ... signed by its key
    assert requests.get(base + "/items", auth=auth, timeout=10).status_code == 200
    assert session.grants == ["client_credentials"]  # the access token was reused
    assert client["client_secret"] not in repr(auth) and client["signing_key"] not in repr(auth)


def test_access_token_is_renewed_before_expiry_with_the_refresh_token(served):
    base, (_, _, _, client) = served
    now = [time.time()]
    session = Counting()
    auth = PartnerAuth(base, session=session, renew_before=60, clock=lambda: now[0], **client)
    assert requests.get(base + "/items", auth=auth, timeout=10).status_code == 200
    first = auth.keystore.load()["access_token"]
    now[0] += 61  # 120 s token: 59 s left, under renew_before
    assert requests.get(base + "/items", auth=auth, timeout=10).status_code == 200
    assert session.grants == ["client_credentials", "refresh_token"]
    assert auth.keystore.load()["access_token"] != first


def test_a_revoked_refresh_token_falls_back_to_client_credentials(served):
    base, (_, _, store, client) = served
    now = [time.time()]
    session = Counting()
    auth = PartnerAuth(base, session=session, clock=lambda: now[0], **client)
    assert requests.get(base + "/items", auth=auth, timeout=10).status_code == 200
    from wsgisec.credentials import revoke_token

    revoke_token(store, auth.keystore.load()["refresh_token"])
    now[0] += 100
    assert requests.get(base + "/items", auth=auth, timeout=10).status_code == 200
    assert session.grants == ["client_credentials", "refresh_token", "client_credentials"]


def test_wrong_client_secret_raises_token_error(served):
    base, (_, _, _, client) = served
    auth = PartnerAuth(base, **dict(client, client_secret="wrong-" + "x" * 30))
    with pytest.raises(TokenError) as error:
        requests.get(base + "/items", auth=auth, timeout=10)
    assert error.value.error == "invalid_client"
    # The server's own words and status reach the partner (issue 10), never the secret.
    assert error.value.status == 401 and error.value.error_description
    assert "invalid_client" in str(error.value) and error.value.error_description in str(error.value)
    assert "(HTTP 401)" in str(error.value) and "wrong-" not in str(error.value)


@pytest.mark.parametrize("status, document, error, description", [
    pytest.param(400, {"error": "invalid_scope", "error_description": "scope x is not granted"},
                 "invalid_scope", "scope x is not granted", id="oauth-error"),
    pytest.param(403, {"type": "about:blank", "status": 403, "detail": "Use HTTPS.", "reason": "plaintext"},
                 "plaintext", "Use HTTPS.", id="problem-document"),
    pytest.param(502, {}, "invalid_response", None, id="not-json"),
    pytest.param(500, ["a", "list"], "invalid_response", None, id="not-an-object"),
    pytest.param(400, {"error": "x" * 500, "error_description": "d" * 1000}, "x" * 100, "d" * 300,
                 id="bounded"),
])
def test_token_error_from_any_answer(status, document, error, description):
    raised = TokenError.from_response(status, document)
    assert (raised.error, raised.error_description, raised.status) == (error, description, status)
    assert str(raised).endswith(f"(HTTP {status})")


def test_extra_headers_reach_the_token_endpoint_and_every_request(served):
    base, (_, _, _, client) = served
    seen = []

    class Recording(requests.Session):
        def send(self, request, **kw):
            seen.append(request.headers.get("X-Forwarded-Proto"))
            return super().send(request, **kw)

    with Recording() as session:
        auth = PartnerAuth(base, session=session, headers={"X-Forwarded-Proto": "https"}, **client)
        response = session.get(base + "/items", auth=auth, timeout=10)
    assert response.status_code == 200, response.text
    assert seen == ["https", "https"]  # the token request, then the API call


def test_importing_the_partner_sdk_loads_no_server_dependency():
    """Partners install wsgisec[partner] only (issue 9): no webob, passlib, argon2, ..."""
    import subprocess
    import sys

    heavy = ("webob", "passlib", "argon2", "fastjsonschema", "paste.deploy")  # "paste" alone: a .pth namespace
    code = ("import sys, wsgisec.partner; "
            f"print(','.join(m for m in {heavy!r} if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_request_token_of_another_client_is_refused(served):
    base, (_, signed, _, client) = served
    other = signed.issue_request_token("someone-else")[0]
    auth = PartnerAuth(base, **dict(client, request_token=other))
    response = requests.get(base + "/items", auth=auth, timeout=10)
    assert response.status_code == 401 and response.json()["reason"] == "unknown-key"


def test_encrypted_file_keystore(served, tmp_path):
    base, (_, _, _, client) = served
    path = str(tmp_path / "tokens.enc")
    session = Counting()
    auth = PartnerAuth(base, session=session, keystore=EncryptedFileKeystore(path, "correct horse battery"),
                       **client)
    assert requests.get(base + "/items", auth=auth, timeout=10).status_code == 200
    raw = open(path, "rb").read()
    tokens = auth.keystore.load()
    for secret in (client["client_secret"], tokens["access_token"], tokens["refresh_token"]):
        assert secret.encode() not in raw
    import os
    import stat

    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    # A second process with the same passphrase reuses the token: no token request.
    again = PartnerAuth(base, session=session, keystore=EncryptedFileKeystore(path, "correct horse battery"),
                        **client)
    assert requests.get(base + "/items", auth=again, timeout=10).status_code == 200
    assert session.grants == ["client_credentials"]
    # Wrong passphrase or a modified file: nothing is loaded.
    assert EncryptedFileKeystore(path, "wrong passphrase!!").load() is None
    document = json.loads(raw)
    document["data"] = document["data"][:-4] + ("AAAA" if not document["data"].endswith("AAAA") else "BBBB")
    open(path, "w").write(json.dumps(document))
    assert EncryptedFileKeystore(path, "correct horse battery").load() is None
    with pytest.raises(ValueError):
        EncryptedFileKeystore(path, "short")


def test_signed_only_partner_without_token_auth(tmp_path):
    store = SQLiteStore(str(tmp_path / "s.sqlite"))
    layer = SignedRequests(echo_app, secret_keys=[SECRET], store=store, browser_csrf=False)
    credentials = partner_credentials(layer, "acme")
    auth = PartnerAuth("http://localhost", client_id="acme", keyid=credentials["keyid"],
                       signing_key=credentials["signing_key"], request_token=credentials["request_token"])
    prepared = auth(requests.Request("PUT", "http://localhost/items/1", data=b"abc").prepare())
    assert "Authorization" not in prepared.headers
    assert "x-request-token" in prepared.headers["Signature-Input"]
    from webtest import TestApp

    response = TestApp(layer).request("/items/1", method="PUT", body=b"abc", expect_errors=True,
                                      headers={k: v for k, v in prepared.headers.items()
                                               if k.lower() != "content-length"})
    assert response.status_int == 200, response.text
    store.close()


def test_sign_headers_matches_the_third_party_verifier():
    """Our signer's output verifies with http-message-signatures' own verifier."""
    from http_message_signatures import HTTPMessageVerifier, MappingKeyResolver, algorithms

    key = b"k" * 32
    body = b'{"a": 1}'
    request = requests.Request("POST", "https://api.example.com/x?y=1", data=body,
                               headers={"X-Request-Token": "tok"}).prepare()
    request.headers.update(sign_headers(request.method, request.url, request.headers, body, keyid="kid",
                                        signing_key=base64.b64encode(key).decode()))
    verifier = HTTPMessageVerifier(signature_algorithm=algorithms.HMAC_SHA256,
                                   key_resolver=MappingKeyResolver(public_keys={"kid": key}, private_keys={}))
    results = verifier.verify(request)
    assert len(results) == 1 and results[0].parameters["keyid"] == "kid"
    assert '"content-digest"' in results[0].covered_components
    assert '"x-request-token"' in results[0].covered_components
    assert results[0].body is None or results[0].body == body


def test_partner_test_app_in_two_lines(stack):
    outer, signed, store, client = stack
    partner = PartnerTestApp.for_client(signed, client["client_id"])
    assert partner.post_json("/items", {"name": "x"}).json["body"] == '{"name": "x"}'
    refused = partner.post_json("/items", {"name": "x"}, extra_environ=UNSIGNED, expect_errors=True)
    assert refused.json["reason"] == "signature-missing"


def test_partner_test_app_through_token_auth(stack):
    from wsgisec.token_auth import issue_token

    outer, signed, store, client = stack
    tokens = issue_token(store, client["client_id"], scopes=["items:read"])
    partner = PartnerTestApp(outer, keyid=client["keyid"], signing_key=client["signing_key"],
                             request_token=client["request_token"], access_token=tokens["access_token"])
    response = partner.get("/items", {"q": "a b"})
    assert response.json["client"] == client["client_id"]
    assert partner.delete("/items/1").status_int == 200


# The README snippet (docs: /tmp/wsgisec_notes/signed_requests.md), run exactly as written
# except for the store path.
README_SNIPPET = '''
import threading

import requests
from waitress.server import create_server

from wsgisec.token_auth.clients import ClientRegistry
from wsgisec.partner import PartnerAuth
from wsgisec.settings import Secret
from wsgisec.signed_requests import SignedRequests
from wsgisec.store import open_store
from wsgisec.token_auth import TokenAuth


def legacy_app(environ, start_response):  # stands in for your Flask/Pyramid/Bottle app
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"hello {environ['REMOTE_USER']}".encode()]


# The API side: token_auth -> signed_requests -> app, on one store.
store = open_store("sqlite:////tmp/wsgisec-demo.sqlite")
signed = SignedRequests(legacy_app, secret_keys=[Secret("demo-only-request-token-key-123456")],
                        store=store, browser_csrf=False)
api = TokenAuth(signed, store=store, require_tls=False)  # plain HTTP: this demo on localhost only

# The operator issues credentials (wsgisec client create / request-token / signing-key).
client, client_secret = ClientRegistry(store).create("Acme", scopes=["items:read"])
key = signed.issue_signing_key(client["id"])
request_token, _ = signed.issue_request_token(client["id"])

server = create_server(api, host="127.0.0.1", port=0)
threading.Thread(target=server.run, daemon=True).start()
base_url = f"http://127.0.0.1:{server.effective_port}"

# The partner: one auth object does tokens, request token, digest and signature.
auth = PartnerAuth(base_url, client_id=client["id"], client_secret=client_secret,
                   request_token=request_token, keyid=key["keyid"], signing_key=key["key"],
                   scope="items:read")
print(requests.post(base_url + "/items", json={"name": "widget"}, auth=auth).text)
print(requests.get(base_url + "/items").status_code)  # unsigned: 401
'''


def test_readme_snippet_works_when_pasted(tmp_path, capsys):
    code = README_SNIPPET.replace("/tmp/wsgisec-demo.sqlite", str(tmp_path / "demo.sqlite"))
    namespace = {"__name__": "readme"}
    exec(compile(code, "README", "exec"), namespace)
    try:
        out = capsys.readouterr().out.splitlines()
        assert out == [f"hello {namespace['client']['id']}", "401"]
    finally:
        namespace["server"].close()


def test_a_wait_longer_than_max_retry_wait_is_not_shortened(tmp_path, wsgi_server):
    """Retry-After: 1 with max_retry_wait=0.5: asking again sooner than told cannot help;
    the partner gets the server's 503 at once, and no wait was slept."""
    store = SQLiteStore(str(tmp_path / "busy.sqlite"))
    signed = SignedRequests(echo_app, secret_keys=[SECRET], store=store, browser_csrf=False)
    outer = TokenAuth(signed, store=store, require_tls=False, max_concurrent_hashes=1, hash_wait=0.01)
    record, secret = outer.registry.create("Acme", scopes=["items:read"])
    key = signed.issue_signing_key(record["id"])
    base = wsgi_server(outer, threads=2).url
    outer.hash_slots._semaphore.acquire()
    waits = []
    auth = PartnerAuth(base, client_id=record["id"], client_secret=secret, keyid=key["keyid"],
                       signing_key=key["key"], max_retry_wait=0.5, sleep=waits.append)
    with pytest.raises(TokenError) as error:
        auth.access_token()
    assert error.value.status == 503 and waits == []
    outer.hash_slots._semaphore.release()
    store.close()
