"""Credentials sent in clear (issue 11): refused with 403, never redirected, revoked where
we can, one critical ``credentials-over-plaintext`` event, whichever layer sees it first.

The rule is :func:`wsgisec.credentials.plaintext_refusal`; these tests drive it through
the https layer, through token_auth alone, through the example ini (WebTest) and through
the served flagship stack (waitress, ``requests``).
"""

import base64
import io
import json

import pytest
import requests
from webtest import TestApp

from conftest import validated
from wsgisec import credentials, pipeline
from wsgisec.https import HTTPSOnly
from wsgisec.token_auth import TokenAuth

from test_token_auth import FAST, HTTPS, echo

PLAIN = {"wsgi.url_scheme": "http", "REMOTE_ADDR": "203.0.113.7", "HTTP_HOST": "localhost"}
FORM = "application/x-www-form-urlencoded"


def plaintext_events(store):
    """Every credentials-over-plaintext event, whichever layer emitted it."""
    return [event for event in store.events() if event["code"] == "credentials-over-plaintext"]


@pytest.fixture
def tokens_and_layers(store):
    """An https layer in front of token_auth (both on ``store``), one client, one grant."""
    inner = TokenAuth(echo, store=store, crypt_context=FAST, public_paths=("/healthz",))
    outer = HTTPSOnly(inner, store=store, allowed_hosts=("localhost",), exempt_paths=("/healthz",))
    record, secret = inner.registry.create("Acme", scopes=["items:read"])
    issued = inner.issue_token(record["id"])
    return TestApp(validated(outer)), inner, record["id"], secret, issued


def alive(store, token):
    return store.get(credentials.TOKENS, credentials.digest(token)) is not None


def _basic_header(client_id, secret):
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


# (method, path, headers, body, which issued tokens must be gone afterwards, client secret exposed)
CASES = [
    pytest.param("GET", "/api/items?access_token={access}", {}, None, ["access"], False, id="query-access-token"),
    pytest.param("HEAD", "/api/items?access_token={access}", {}, None, ["access"], False, id="head-query-token"),
    pytest.param("GET", "/api/items", {"Authorization": "Bearer {access}"}, None, ["access"], False, id="bearer"),
    pytest.param("GET", "/api/items?refresh_token={refresh}", {}, None, ["access", "refresh"], False,
                 id="query-refresh-token-takes-the-family"),
    pytest.param("POST", "/oauth/token", {"Content-Type": FORM},
                 "grant_type=refresh_token&refresh_token={refresh}&client_id={cid}&client_secret={secret}",
                 ["access", "refresh"], True, id="refresh-grant-secret-in-body"),
    pytest.param("POST", "/oauth/revoke", {"Content-Type": FORM, "Authorization": "{basic}"},
                 "token={access}", ["access"], True, id="revoke-request"),
    pytest.param("POST", "/oauth/token", {"Authorization": "{basic}", "Content-Type": FORM},
                 "grant_type=client_credentials", [], True, id="basic-client-secret"),
    pytest.param("GET", "/oauth/token?client_id={cid}&client_secret={secret}", {}, None, [], True,
                 id="client-secret-in-query"),
    pytest.param("GET", "/oauth/token?client%5Fid={cid}&client%5Fsecret={secret}", {}, None, [], True,
                 id="percent-encoded-parameter-names"),
    pytest.param("GET", "/api/items?x=1&access_token={access}&access_token=again", {}, None, ["access"], False,
                 id="repeated-query-token"),
    pytest.param("PUT", "/api/items", {"X-Request-Token": "rt.anything"}, None, [], False, id="request-token-header"),
    pytest.param("POST", "/api/items", {"Content-Type": "application/json"}, '{{"access_token": "{access}"}}',
                 ["access"], False, id="json-body-token"),
    pytest.param("GET", "/healthz", {"Authorization": "Bearer {access}"}, None, ["access"], False,
                 id="exempt-path-still-refuses-credentials"),
]


@pytest.mark.parametrize("method, path, headers, body, gone, secret_exposed", CASES)
def test_every_credential_in_clear_is_refused_revoked_and_reported_once(
        tokens_and_layers, store, caplog, method, path, headers, body, gone, secret_exposed):
    app, _inner, client_id, secret, issued = tokens_and_layers
    values = {"access": issued["access_token"], "refresh": issued["refresh_token"], "cid": client_id,
              "secret": secret, "basic": _basic_header(client_id, secret)}
    headers = {name: value.format(**values) for name, value in headers.items()}
    response = app.request(path.format(**values), method=method, headers=headers, environ=dict(PLAIN),
                           body=body.format(**values).encode() if body else b"", status=403)
    assert "Location" not in response.headers, "never redirected: Location would repeat the token"
    for name in ("access", "refresh"):
        assert alive(store, values[name]) is (name not in gone), name
    [event] = plaintext_events(store)
    assert event["severity"] == "critical" and event["kind"] == "https.credentials-over-plaintext"
    assert event["detail"]["client_secret_exposed"] is secret_exposed
    assert event["detail"]["request_token_exposed"] is ("X-Request-Token" in headers)
    if secret_exposed:
        assert event["detail"]["claimed_client_id"] == client_id
        assert event["detail"]["action"] == "rotate the client secret"
    if method != "HEAD":
        assert response.json["reason"] == "credentials-over-plaintext"
        assert response.json["incident_id"] == event["incident_id"]
    logged = caplog.text + json.dumps(event) + response.text
    for secret_value in (issued["access_token"], issued["refresh_token"], secret):
        assert secret_value not in logged


@pytest.mark.parametrize("method, path, headers, body, gone, secret_exposed", CASES)
def test_token_auth_alone_applies_the_same_rule(store, method, path, headers, body, gone, secret_exposed):
    layer = TokenAuth(echo, store=store, crypt_context=FAST, public_paths=("/healthz",))
    record, secret = layer.registry.create("Acme", scopes=["items:read"])
    issued = layer.issue_token(record["id"])
    values = {"access": issued["access_token"], "refresh": issued["refresh_token"], "cid": record["id"],
              "secret": secret, "basic": _basic_header(record["id"], secret)}
    app = TestApp(validated(layer))
    response = app.request(path.format(**values), method=method, environ=dict(PLAIN),
                           headers={name: value.format(**values) for name, value in headers.items()},
                           body=body.format(**values).encode() if body else b"", status=403)
    assert "Location" not in response.headers
    for name in ("access", "refresh"):
        assert alive(store, values[name]) is (name not in gone), name
    [event] = plaintext_events(store)
    assert event["kind"] == "token_auth.credentials-over-plaintext"
    assert event["detail"]["client_secret_exposed"] is secret_exposed


def test_a_second_layer_does_not_report_or_revoke_again(store):
    """If an outer layer applied the rule and still passed the request on, the inner one
    answers with the same incident id and emits nothing (the environ is marked)."""
    layer = TokenAuth(echo, store=store, crypt_context=FAST)

    def outer(environ, start_response):
        assert credentials.plaintext_refusal(environ, store=store, logger=None) is not None
        return layer(environ, start_response)

    record, _secret = layer.registry.create("Acme", scopes=["items:read"])
    token = layer.issue_token(record["id"])["access_token"]
    response = TestApp(validated(outer)).get("/api/items", headers={"Authorization": f"Bearer {token}"},
                                             extra_environ=PLAIN, status=403)
    [event] = plaintext_events(store)
    assert event["layer"] == "wsgisec" and response.json["incident_id"] == event["incident_id"]


def test_plain_requests_without_credentials_keep_their_answers(tokens_and_layers, store):
    app, *_ = tokens_and_layers
    assert app.get("/api/items?q=1", extra_environ=PLAIN, status=301).headers["Location"] == \
        "https://localhost/api/items?q=1"
    app.get("/healthz", extra_environ=PLAIN, status=200)
    app.post("/api/items", {"name": "x"}, extra_environ=PLAIN, status=403)
    assert plaintext_events(store) == []


def test_a_body_too_large_to_scan_is_still_refused(tokens_and_layers, store):
    app, *_ = tokens_and_layers
    body = b"token=" + b"a" * (credentials.MAX_SCANNED_BODY + 10)
    app.post("/oauth/revoke", body, headers={"Content-Type": FORM, "Authorization": "Bearer x"},
             extra_environ=PLAIN, status=403)
    [event] = plaintext_events(store)
    assert event["detail"]["body_scanned"] is False


def test_a_token_is_still_refused_when_the_store_is_down(tokens_and_layers, store, monkeypatch):
    from wsgisec.store import StoreUnavailable

    app, inner, *_ = tokens_and_layers

    def down(*_args, **_kw):
        raise StoreUnavailable("down")

    monkeypatch.setattr(type(store), "get", down)
    monkeypatch.setattr(type(store), "record_event", down)
    app.get("/api/items", headers={"Authorization": "Bearer abc"}, extra_environ=PLAIN, status=403)


# -- the example ini (WebTest) and the served flagship -------------------------------------

@pytest.fixture
def flagship(load_example):
    app = load_example("partner_api.ini")
    layer = pipeline.find_layer(app, TokenAuth)
    record, secret = layer.registry.create("Acme", scopes=["items:read"])
    return app, layer, record["id"], secret


def test_example_ini_refuses_and_revokes_a_query_token_over_plain_http(flagship):
    app, layer, client_id, _secret = flagship
    token = layer.issue_token(client_id)["access_token"]
    web = TestApp(validated(app), extra_environ={"REMOTE_ADDR": "203.0.113.7", "HTTP_HOST": "localhost"})
    response = web.get("/api/items?access_token=" + token, status=403)
    assert "Location" not in response.headers and token not in response.text
    assert not alive(layer.store, token)
    [event] = plaintext_events(layer.store)
    assert event["kind"] == "https.credentials-over-plaintext"


@pytest.fixture
def served(flagship):
    from webtest.http import StopableWSGIServer

    app, layer, client_id, secret = flagship
    server = StopableWSGIServer.create(app, host="127.0.0.1", ident="", expose_tracebacks=False,
                                       clear_untrusted_proxy_headers=False, threads=2)
    try:
        assert server.wait(), "the server did not start"
        yield server.application_url.rstrip("/"), layer, client_id, secret
    finally:
        server.shutdown()


def test_served_flagship_query_token_over_plain_http_gets_403_not_a_redirect(served):
    base, layer, client_id, _secret = served
    token = layer.issue_token(client_id)["access_token"]
    response = requests.get(base + "/api/items", params={"access_token": token}, allow_redirects=False)
    assert response.status_code == 403 and "Location" not in response.headers
    assert token not in response.text
    # The token is gone: even over TLS (the trusted local proxy) it no longer works.
    again = requests.get(base + "/api/items", headers={"Authorization": f"Bearer {token}",
                                                        "X-Forwarded-Proto": "https"})
    assert again.status_code == 401 and 'error="invalid_token"' in again.headers["WWW-Authenticate"]
    assert len(plaintext_events(layer.store)) == 1


def test_served_flagship_refresh_grant_in_clear_revokes_the_family(served):
    base, layer, client_id, secret = served
    issued = layer.issue_token(client_id)
    response = requests.post(base + "/oauth/token", allow_redirects=False, data={
        "grant_type": "refresh_token", "refresh_token": issued["refresh_token"],
        "client_id": client_id, "client_secret": secret})
    assert response.status_code == 403 and secret not in response.text
    assert not alive(layer.store, issued["refresh_token"]) and not alive(layer.store, issued["access_token"])
    [event] = plaintext_events(layer.store)
    assert event["detail"]["client_secret_exposed"] is True and event["detail"]["tokens_revoked"] == 1
    assert event["detail"]["claimed_client_id"] == client_id


def test_served_flagship_revoke_request_in_clear_revokes_the_token(served):
    base, layer, client_id, secret = served
    issued = layer.issue_token(client_id)
    response = requests.post(base + "/oauth/revoke", data={"token": issued["access_token"]},
                             auth=(client_id, secret), allow_redirects=False)
    assert response.status_code == 403
    assert not alive(layer.store, issued["access_token"]) and alive(layer.store, issued["refresh_token"])
    assert len(plaintext_events(layer.store)) == 1


def test_https_requests_are_untouched(tokens_and_layers):
    app, _inner, _cid, _secret, issued = tokens_and_layers
    seen = app.get("/api/items", headers={"Authorization": f"Bearer {issued['access_token']}"},
                   extra_environ=dict(HTTPS, HTTP_HOST="localhost")).json
    assert seen["client"]["name"] == "Acme"


def test_a_chunked_body_on_an_exempt_path_reaches_the_app_whole(store):
    """The rule reads a body only when its Content-Length fits: an exempt path's request
    may pass on, and must not reach the app cut at the scan limit."""
    seen = {}

    def app(environ, start_response):
        seen["body"] = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    body = b"note=" + b"x" * (credentials.MAX_SCANNED_BODY + 100)
    layer = HTTPSOnly(app, store=store, allowed_hosts=("localhost",), exempt_paths=("/hooks",))
    environ = dict(PLAIN, REQUEST_METHOD="POST", PATH_INFO="/hooks/in", QUERY_STRING="", SCRIPT_NAME="",
                   CONTENT_TYPE=FORM, HTTP_TRANSFER_ENCODING="chunked", SERVER_NAME="localhost",
                   SERVER_PORT="80", **{"wsgi.input": io.BytesIO(body), "wsgi.input_terminated": True})
    statuses = []
    list(layer(environ, lambda status, headers, exc_info=None: statuses.append(status)))
    assert statuses == ["200 OK"] and seen["body"] == body


@pytest.mark.parametrize("body, content_type", [
    pytest.param(b"[" * 60000, "application/json", id="deeply-nested-json"),
    pytest.param(b'{"access_token": 1, "token": ["x"]}', "application/json", id="non-string-values"),
    pytest.param(b"\xff\xfe=1", FORM, id="not-utf8-form"),
    pytest.param(b"a=%zz&&=", FORM, id="odd-form"),
])
def test_odd_bodies_over_plain_http_get_a_clear_refusal_not_a_500(tokens_and_layers, store, body, content_type):
    app, *_ = tokens_and_layers
    response = app.post("/api/items", body, headers={"Content-Type": content_type, "Authorization": "Bearer x"},
                        extra_environ=PLAIN, status=403)
    assert response.json["reason"] == "credentials-over-plaintext"
    TestApp(validated(HTTPSOnly(echo, store=store, allowed_hosts=("localhost",)))).post(
        "/api/items", body, headers={"Content-Type": content_type}, extra_environ=PLAIN, status=403)
