"""Which components satisfy which requirement (RFC 9421 §2.2), the request as the partner
sent it (Authorization that token_auth removes), and refusals that say what to fix."""

from __future__ import annotations

import base64
import time

import pytest
import requests
from webtest import TestApp

from conftest import validated
from wsgisec.partner import sign_headers
from wsgisec.store.sqlite import SQLiteStore
from wsgisec.token_auth import TokenAuth
from wsgisec.token_auth.clients import ClientRegistry

from .test_signed_requests import (REASONS, app, creds, echo_app, layer, make_layer, refusal, send,  # noqa: F401
                                   send_prepared, signed)


def sign(creds, components, url="http://localhost/items?x=1", method="POST", body=b'{"a": 1}'):
    """(method, path, headers, body) signed over ``components`` for ``url``; sent to the
    path and query of ``url`` unless the test changes them."""
    headers = {"X-Request-Token": creds["token"], "Content-Type": "application/json"}
    headers.update(sign_headers(method, url, headers, body, keyid=creds["keyid"], signing_key=creds["key"],
                                components=components))
    path = url.split("://", 1)[1].partition("/")[2]
    return method, "/" + path, headers, body


# -- RFC 9421 §2.2.2 / §2.2.5: a whole covers its parts -----------------------------------------

@pytest.mark.parametrize("required, covered", [
    pytest.param("@path", "@target-uri", id="target-uri-covers-path"),
    pytest.param("@query", "@target-uri", id="target-uri-covers-query"),
    pytest.param("@authority", "@target-uri", id="target-uri-covers-authority"),
    pytest.param("@scheme", "@target-uri", id="target-uri-covers-scheme"),
    pytest.param("@path", "@request-target", id="request-target-covers-path"),
    pytest.param("@query", "@request-target", id="request-target-covers-query"),
    pytest.param("@method @authority @path @query", "@method @authority @target-uri", id="flagship-defaults"),
    pytest.param("@method @authority @path @query", "@method @authority @request-target",
                 id="flagship-with-request-target"),
])
def test_a_component_that_contains_a_required_one_satisfies_it(store, creds, required, covered):
    app = TestApp(validated(make_layer(store, required_components=required.split() + ["content-digest"])))
    response = send(app, sign(creds, covered.split()))
    assert response.status_int == 200, response.text


@pytest.mark.parametrize("required, covered, hint", [
    pytest.param("@authority", "@method @request-target", "must cover @authority (or @target-uri)",
                 id="request-target-lacks-authority"),
    pytest.param("@scheme", "@method @request-target", "must cover @scheme (or @target-uri)",
                 id="request-target-lacks-scheme"),
    pytest.param("@path", "@method @authority", "must cover @path (or @target-uri or @request-target)",
                 id="path-not-covered"),
    pytest.param("@method", "@target-uri", "must cover @method.", id="method-not-covered"),
])
def test_a_missing_component_is_named_in_the_refusal(store, creds, required, covered, hint):
    app = TestApp(validated(make_layer(store, required_components=required.split() + ["content-digest"])))
    response = refusal(send(app, sign(creds, covered.split())), "signature-invalid")
    assert hint in response.json["detail"]


@pytest.mark.parametrize("signed_url", [
    pytest.param("https://localhost/items?x=1", id="other-scheme"),
    pytest.param("http://evil.example/items?x=1", id="other-authority"),
    pytest.param("http://localhost:8080/items?x=1", id="other-port"),
    pytest.param("http://localhost/admin?x=1", id="other-path"),
    pytest.param("http://localhost/items?x=2", id="other-query"),
    pytest.param("http://localhost/items", id="query-dropped"),
])
def test_a_signature_over_another_target_uri_is_refused(store, creds, signed_url):
    """Only @target-uri is covered, so it alone must catch each change of the URI."""
    app = TestApp(validated(make_layer(store, required_components=["@method", "@target-uri", "content-digest"])))
    assert send(app, sign(creds, ["@method", "@target-uri"])).status_int == 200  # the URI as sent
    method, _path, headers, body = sign(creds, ["@method", "@target-uri"], url=signed_url)
    refusal(send(app, (method, "/items?x=1", headers, body)), "signature-invalid")


def test_target_uri_signed_for_https_verifies_behind_a_tls_proxy(store, creds):
    """The scheme is the one the server reconstructs (RFC 9110 §7.1): https once the
    https layer (or a TLS server) set wsgi.url_scheme."""
    app = TestApp(validated(make_layer(store)))
    tls = {"wsgi.url_scheme": "https", "HTTP_HOST": "localhost"}
    assert send(app, sign(creds, ["@method", "@authority", "@target-uri"], url="https://localhost/items?x=1"),
                environ=tls).status_int == 200
    refusal(send(app, sign(creds, ["@method", "@authority", "@target-uri"], url="http://localhost/items?x=1"),
                 environ=tls), "signature-invalid")


# -- the request as the partner sent it: Authorization after token_auth -------------------------

@pytest.fixture
def bearer_stack(tmp_path):
    store = SQLiteStore(str(tmp_path / "bearer.sqlite"))
    signed_layer = make_layer(store)
    outer = TokenAuth(signed_layer, store=store, require_tls=False)
    record, _secret = ClientRegistry(store).create("Acme", scopes=["items:read"])
    key = signed_layer.issue_signing_key(record["id"])
    creds = {"client_id": record["id"], "keyid": key["keyid"], "key": key["key"],
             "token": signed_layer.issue_request_token(record["id"])[0],
             "access": outer.issue_token(record["id"])["access_token"],
             "other_access": outer.issue_token(record["id"])["access_token"]}
    yield TestApp(validated(outer)), creds
    store.close()


def rhs_request(creds, authorization, url="http://localhost/items?x=1", method="POST", body=b'{"a": 1}'):
    """requests-http-signature with its defaults (it covers Authorization whenever present)."""
    from requests_http_signature import HTTPSignatureAuth, algorithms

    auth = HTTPSignatureAuth(key=base64.b64decode(creds["key"]), key_id=creds["keyid"],
                             signature_algorithm=algorithms.HMAC_SHA256, use_nonce=True)
    return requests.Request(method, url, data=body or None, auth=auth, headers={
        "X-Request-Token": creds["token"], "Authorization": authorization}).prepare()


def test_authorization_covered_by_the_signature_is_verified_as_sent(bearer_stack):
    app, creds = bearer_stack
    prepared = rhs_request(creds, "Bearer " + creds["access"])
    assert '"authorization"' in prepared.headers["Signature-Input"]
    response = send_prepared(app, prepared)
    assert response.status_int == 200, response.text
    assert response.json["client"]["id"] == creds["client_id"]
    assert "HTTP_AUTHORIZATION" not in response.json  # still hidden from the app


def test_authorization_swapped_after_signing_is_refused(bearer_stack):
    """Another valid token of the same client: token_auth accepts it, the signature does not."""
    app, creds = bearer_stack
    prepared = rhs_request(creds, "Bearer " + creds["access"])
    prepared.headers["Authorization"] = "Bearer " + creds["other_access"]
    refusal(send_prepared(app, prepared), "signature-invalid")


def test_the_original_authorization_is_redacted_in_the_environ(tmp_path):
    seen = {}

    def spy(environ, start_response):
        seen["orig"] = repr(environ.get("wsgisec.orig_headers"))
        seen["authorization"] = environ.get("HTTP_AUTHORIZATION")
        return echo_app(environ, start_response)

    store = SQLiteStore(str(tmp_path / "spy.sqlite"))
    signed_layer = make_layer(store)
    signed_layer.app = spy
    outer = TokenAuth(signed_layer, store=store, require_tls=False)
    record, _secret = ClientRegistry(store).create("Acme", scopes=["items:read"])
    key = signed_layer.issue_signing_key(record["id"])
    creds = {"keyid": key["keyid"], "key": key["key"], "token": signed_layer.issue_request_token(record["id"])[0]}
    access = outer.issue_token(record["id"])["access_token"]
    try:
        response = send_prepared(TestApp(validated(outer)), rhs_request(creds, "Bearer " + access))
    finally:
        store.close()
    assert response.status_int == 200, response.text
    assert seen["authorization"] is None  # pass_authorization = false still holds for the app
    assert access not in seen["orig"] and "***" in seen["orig"]


# -- refusals say what to fix (never the expected signature or base) --------------------------

DETAILS = [
    pytest.param(lambda c: signed(c, token=False), "signature-missing", "X-Request-Token header",
                 id="no-request-token"),
    pytest.param(lambda c: signed(c, sign=False), "signature-missing", "Signature-Input and Signature",
                 id="no-signature"),
    pytest.param(lambda c: signed(c, components=("@method", "@path", "@query")), "signature-invalid",
                 "must cover @authority (or @target-uri)", id="authority-not-covered"),
    pytest.param(lambda c: signed(c, digest=False), "signature-invalid", "cover content-digest",
                 id="digest-not-covered"),
    pytest.param(lambda c: signed(c, use_nonce=False), "signature-invalid", "Add the nonce signature parameter",
                 id="nonce-missing"),
    pytest.param(lambda c: signed(c, extra_params={"alg": "rsa-pss-sha512"}), "signature-invalid",
                 "hmac-sha256", id="other-algorithm"),
    pytest.param(lambda c: signed(c, created=int(time.time()) - 400), "expired", "s in the past; at most 300s",
                 id="created-too-old"),
    pytest.param(lambda c: signed(c, created=int(time.time()) + 400), "expired", "s in the future; at most 300s",
                 id="created-in-the-future"),
    pytest.param(lambda c: signed(c, extra_params={"expires": int(time.time()) - 5}), "expired",
                 "expires passed", id="expires-passed"),
    pytest.param(lambda c: signed(c, keyid="k_nobody"), "unknown-key", "keyid is unknown or was retired",
                 id="unknown-keyid"),
    pytest.param(lambda c: signed(c, token="not-a-real-token.abc.def"), "signature-invalid",
                 "not issued by this API", id="forged-request-token"),
]


@pytest.mark.parametrize("build, code, hint", DETAILS)
def test_each_refusal_detail_says_what_to_fix(store, app, creds, build, code, hint):
    request = build(creds)
    response = refusal(send(app, request), code)
    detail = response.json["detail"]
    assert detail.startswith(REASONS[code]) and hint in detail, detail
    assert creds["key"] not in response.text and creds["token"] not in response.text
    if "Signature" in request[2]:
        assert request[2]["Signature"].split(":")[1] not in response.text
    assert "@signature-params" not in response.text  # never the signature base


def test_a_replayed_nonce_says_so(store, app, creds):
    request = signed(creds)
    assert send(app, request).status_int == 200
    response = refusal(send(app, request), "replayed")
    assert "fresh nonce" in response.json["detail"]


def test_a_bad_signature_hint_names_no_value(store, app, creds):
    method, path, headers, body = signed(creds)
    response = refusal(send(app, (method, "/other?x=1", headers, body)), "signature-invalid")
    assert "exactly as it is sent" in response.json["detail"]
    assert "/other" not in response.json["detail"]
