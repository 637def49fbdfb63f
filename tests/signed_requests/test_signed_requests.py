"""signed_requests: request tokens + RFC 9421 signatures + RFC 9530 digests, each refusal,
and acceptance of a real third-party RFC 9421 client (WebTest and a real waitress server)."""

from __future__ import annotations

import base64
import json
import time
from urllib.parse import urlsplit

import pytest
import requests
from webtest import TestApp

from conftest import validated
from wsgisec import httpsig
from wsgisec.partner import sign_headers
from wsgisec.signed_requests.request_tokens import RequestTokens
from wsgisec.settings import ConfigurationError, Secret
from wsgisec.signed_requests import (NONCES, REASONS, SIGNING_KEYS, SignedRequests, filter_factory,
                                     issue_signing_key)

SECRET = Secret("test-request-token-key-0123456789abcdef", "env")
OLD_SECRET = Secret("old-request-token-key-0123456789abcdef", "env")


def echo_app(environ, start_response):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    document = {"client": environ.get("wsgisec.client"), "remote_user": environ.get("REMOTE_USER"),
                "verified": environ.get("wsgisec.signed_requests"), "body": body.decode("latin-1"),
                "path": environ.get("PATH_INFO"), "query": environ.get("QUERY_STRING")}
    data = json.dumps(document).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


def make_layer(store, **kw):
    kw.setdefault("browser_csrf", False)
    kw.setdefault("secret_keys", [SECRET])
    return SignedRequests(echo_app, store=store, **kw)


@pytest.fixture
def layer(store):
    return make_layer(store)


@pytest.fixture
def creds(layer):
    key = layer.issue_signing_key("acme")
    token, record = layer.issue_request_token("acme")
    return {"keyid": key["keyid"], "key": key["key"], "token": token, "token_id": record["token_id"]}


@pytest.fixture
def app(layer):
    return TestApp(validated(layer))


def signed(creds, method="POST", path="/items?x=1", body=b'{"name": "widget"}', *,
           token=True, sign=True, headers=None, host="localhost", **sign_kw):
    """(method, path, headers, body) of a request signed as our own SDK does."""
    headers = dict(headers or {})
    if token:
        headers["X-Request-Token"] = creds["token"] if token is True else token
    if body:
        headers.setdefault("Content-Type", "application/json")
    if sign:
        sign_kw.setdefault("keyid", creds["keyid"])
        sign_kw.setdefault("signing_key", creds["key"])
        headers.update(sign_headers(method, f"http://{host}{path}", headers, body, **sign_kw))
    return method, path, headers, body


def send(app, request, **kw):
    method, path, headers, body = request
    return app.request(path, method=method, headers=headers, body=body, expect_errors=True, **kw)


def third_party(creds, method="POST", url="http://localhost/items?x=1", body=b'{"name": "widget"}',
                **auth_kw):
    """A request prepared and signed by requests-http-signature (unmodified), the way a
    partner using that library would: request token header + HTTPSignatureAuth."""
    from requests_http_signature import HTTPSignatureAuth, algorithms

    auth_kw.setdefault("covered_component_ids", ("@method", "@authority", "@path", "@query"))
    auth = HTTPSignatureAuth(signature_algorithm=algorithms.HMAC_SHA256,
                             key=base64.b64decode(creds["key"]), key_id=creds["keyid"],
                             use_nonce=True, **auth_kw)
    return requests.Request(method, url, data=body or None, headers={"X-Request-Token": creds["token"]},
                            auth=auth).prepare()


def send_prepared(app, prepared, **kw):
    parts = urlsplit(prepared.url)
    headers = {k: v for k, v in prepared.headers.items() if k.lower() != "content-length"}
    return app.request(parts.path + ("?" + parts.query if parts.query else ""), method=prepared.method,
                       headers=headers, body=prepared.body or b"", expect_errors=True, **kw)


def refusal(response, code):
    assert response.status_int == 401, response.text
    assert response.json["reason"] == code
    assert response.headers["X-Incident-Id"] == response.json["incident_id"]
    assert response.headers["WWW-Authenticate"].startswith("Signature ")
    assert response.json["detail"].startswith(REASONS[code])  # then what to fix, if anything
    return response


# -- acceptance -----------------------------------------------------------------------

def test_our_signed_request_passes_and_app_learns_the_client(app, creds):
    response = send(app, signed(creds))
    assert response.status_int == 200, response.text
    assert response.json["body"] == '{"name": "widget"}'  # body still readable after the digest check
    assert response.json["client"] == {"id": "acme"}
    assert response.json["remote_user"] == "acme"
    assert response.json["verified"]["keyid"] == creds["keyid"]
    assert response.json["verified"]["token_id"] == creds["token_id"]


def test_get_without_body_needs_no_digest(app, creds):
    response = send(app, signed(creds, "GET", "/items", b"", digest=False))
    assert response.status_int == 200, response.text


@pytest.mark.parametrize("method, url, body", [
    pytest.param("POST", "http://localhost/items?x=1&y=%2F", b'{"name": "widget"}', id="post-json"),
    pytest.param("GET", "http://localhost/items/42", b"", id="get-no-query"),
    pytest.param("PUT", "http://localhost/a%20b/caf%C3%A9?q=a%20b", b"x" * 5000, id="quoted-path"),
    pytest.param("DELETE", "http://localhost/items/42?", b"", id="empty-query"),
])
def test_third_party_rfc9421_client_is_accepted(app, creds, method, url, body):
    prepared = third_party(creds, method, url, body)
    assert prepared.headers["Signature-Input"].startswith("pyhms=")  # really the library's output
    response = send_prepared(app, prepared)
    assert response.status_int == 200, response.text
    assert response.json["body"] == body.decode()


def test_http_message_signatures_signer_is_accepted(app, creds):
    """The lower-level http-message-signatures library, with its own label and content digest."""
    from http_message_signatures import HTTPMessageSigner, MappingKeyResolver, algorithms

    key = base64.b64decode(creds["key"])
    signer = HTTPMessageSigner(signature_algorithm=algorithms.HMAC_SHA256,
                               key_resolver=MappingKeyResolver(private_keys={creds["keyid"]: key},
                                                               public_keys={}))
    body = b"name=widget&colour=blue"
    prepared = requests.Request("PATCH", "http://localhost/items/7?dry_run=1", data=body,
                                headers={"X-Request-Token": creds["token"],
                                         "Content-Type": "application/x-www-form-urlencoded"}).prepare()
    signer.sign(prepared, key_id=creds["keyid"], label="sig1", nonce="n-" + "a" * 20, body=body,
                covered_component_ids=("@method", "@authority", "@path", "@query", "x-request-token"))
    assert "sig1=" in prepared.headers["Signature-Input"]
    response = send_prepared(app, prepared)
    assert response.status_int == 200, response.text


def test_signature_label_setting_picks_that_signature(store, creds):
    app = TestApp(validated(make_layer(store, signature_label="mine")))
    method, path, headers, body = signed(creds, label="other")
    assert refusal(send(app, (method, path, headers, body)), "signature-missing")
    assert send(app, signed(creds, label="mine")).status_int == 200


# -- refusals ---------------------------------------------------------------------------

def _tamper_signature(creds):
    method, path, headers, body = signed(creds)
    value = headers["Signature"]
    raw = bytearray(base64.b64decode(value.split(":")[1]))
    raw[0] ^= 1
    headers["Signature"] = "sig1=:" + base64.b64encode(bytes(raw)).decode() + ":"
    return method, path, headers, body


def _tamper(part, value):
    def build(creds):
        method, path, headers, body = signed(creds)
        request = {"method": method, "path": path, "headers": headers, "body": body}
        request[part] = value(request[part]) if callable(value) else value
        return request["method"], request["path"], request["headers"], request["body"]
    return build


def _other_client_key(creds, store):
    other = issue_signing_key(store, "mallory")
    return signed(creds, keyid=other["keyid"], signing_key=other["key"])


def _without(name):
    def build(creds):
        method, path, headers, body = signed(creds)
        headers.pop(name)
        return method, path, headers, body
    return build


REFUSALS = [
    pytest.param(lambda c, s: signed(c, token=False), "signature-missing", id="no-request-token"),
    pytest.param(lambda c, s: _without("Signature")(c), "signature-missing", id="no-signature"),
    pytest.param(lambda c, s: _without("Signature-Input")(c), "signature-missing", id="no-signature-input"),
    pytest.param(lambda c, s: signed(c, sign=False), "signature-missing", id="token-only"),
    pytest.param(lambda c, s: _tamper_signature(c), "signature-invalid", id="signature-bit-flipped"),
    pytest.param(lambda c, s: _tamper("path", "/admin?x=1")(c), "signature-invalid", id="path-changed"),
    pytest.param(lambda c, s: _tamper("path", "/items?x=2")(c), "signature-invalid", id="query-changed"),
    pytest.param(lambda c, s: _tamper("method", "PUT")(c), "signature-invalid", id="method-changed"),
    pytest.param(lambda c, s: signed(c, host="evil.example"), "signature-invalid", id="authority-changed"),
    pytest.param(lambda c, s: signed(c, token=c["token"][:-2] + "xx"), "signature-invalid",
                 id="request-token-forged"),
    pytest.param(lambda c, s: signed(c, token="not a token!"), "signature-invalid", id="request-token-garbage"),
    pytest.param(lambda c, s: signed(c, components=("@method", "@path", "@query")), "signature-invalid",
                 id="authority-not-covered"),
    pytest.param(lambda c, s: signed(c, digest=False), "signature-invalid", id="body-digest-not-covered"),
    pytest.param(lambda c, s: signed(c, extra_params={"alg": "rsa-pss-sha512"}), "signature-invalid",
                 id="other-algorithm"),
    pytest.param(lambda c, s: _tamper("headers", lambda h: dict(h, **{"Signature-Input": "sig1=(\"@method"}))(c),
                 "signature-invalid", id="signature-input-malformed"),
    pytest.param(lambda c, s: signed(c, nonce="short"), "signature-invalid", id="nonce-too-short"),
    pytest.param(lambda c, s: _tamper("body", b'{"name": "gadget"}')(c), "digest-mismatch", id="body-changed"),
    pytest.param(lambda c, s: signed(c, digest=False, headers={"Content-Digest": "md5=:AAAA:"},
                                     components=("@method", "@authority", "@path", "@query", "content-digest")),
                 "digest-mismatch", id="digest-unknown-algorithm-only"),
    pytest.param(lambda c, s: signed(c, digest=False, headers={"Content-Digest": "sha-256=:AAAA:"},
                                     components=("@method", "@authority", "@path", "@query", "content-digest")),
                 "digest-mismatch", id="digest-wrong-but-signed"),
    pytest.param(lambda c, s: signed(c, created=int(time.time()) - 301), "expired", id="created-too-old"),
    pytest.param(lambda c, s: signed(c, created=int(time.time()) + 400), "expired", id="created-in-future"),
    pytest.param(lambda c, s: signed(c, extra_params={"expires": int(time.time()) - 5}), "expired",
                 id="expires-passed"),
    pytest.param(lambda c, s: signed(c, keyid="k_nobody"), "unknown-key", id="unknown-keyid"),
    pytest.param(lambda c, s: _other_client_key(c, s), "unknown-key", id="key-of-another-client"),
]


@pytest.mark.parametrize("build, code", REFUSALS)
def test_each_refusal_has_its_reason_code_and_one_event(store, layer, app, creds, build, code):
    request = build(creds, store)
    response = refusal(send(app, request), code)
    kept = store.events(kinds=["signed_requests." + code])
    assert len(kept) == 1 and kept[0]["incident_id"] == response.json["incident_id"]
    # Never the expected signature, nor the key, in the answer or the event.
    text = response.text + json.dumps(kept)
    assert creds["key"] not in text and creds["token"] not in text
    method, path, headers, body = request
    if "Signature" in headers:
        assert headers["Signature"].split(":")[1] not in text


def test_refusal_never_contains_the_expected_signature(app, creds):
    method, path, headers, body = signed(creds)
    expected = headers["Signature"]
    response = send(app, (method, "/other?x=1", headers, body))  # what would have been right?
    good = sign_headers(method, "http://localhost/other?x=1", {"X-Request-Token": creds["token"],
                        "Content-Type": "application/json"}, body, keyid=creds["keyid"],
                        signing_key=creds["key"], nonce="n" * 22,
                        created=int(httpsig.parse_dictionary(headers["Signature-Input"])["sig1"][1]["created"]))
    refusal(response, "signature-invalid")
    assert good["Signature"].split(":")[1] not in response.text
    assert expected.split(":")[1] not in response.text
    assert "Accept-Signature" in response.headers  # what to sign, never the value


def test_replayed_nonce_is_refused(store, app, creds):
    request = signed(creds)
    assert send(app, request).status_int == 200
    refusal(send(app, request), "replayed")
    assert len(store.events(kinds=["signed_requests.replayed"])) == 1


def test_nonce_is_consumed_only_after_the_signature_verified(store, app, creds):
    """Nobody can burn a partner's nonce by sending it under a forged signature."""
    method, path, headers, body = signed(creds, nonce="nonce-of-acme-0001")
    forged = dict(headers, Signature="sig1=:" + base64.b64encode(b"\0" * 32).decode() + ":")
    refusal(send(app, (method, path, forged, body)), "signature-invalid")
    assert send(app, (method, path, headers, body)).status_int == 200


def test_nonce_ttl_covers_the_whole_window(store, app, creds):
    assert send(app, signed(creds, nonce="window-nonce-123")).status_int == 200
    assert len(store.keys(NONCES)) == 1


def test_expired_request_token(store, creds):
    later = make_layer(store, clock=lambda: time.time() + 91 * 86400)
    refusal(send(TestApp(validated(later)), signed(creds, created=int(time.time() + 91 * 86400))), "expired")


def test_revoked_request_token(store, layer, app, creds):
    layer.revoke_request_token(creds["token_id"])
    refusal(send(app, signed(creds)), "unknown-key")


def test_request_token_from_retired_secret_key(store, creds):
    rotated = make_layer(store, secret_keys=[OLD_SECRET])
    refusal(send(TestApp(validated(rotated)), signed(creds)), "signature-invalid")


def test_request_token_of_another_client_than_the_signing_key(store, layer, app, creds):
    token, _ = layer.issue_request_token("mallory")
    refusal(send(app, signed(creds, token=token)), "unknown-key")


def test_bearer_client_must_match_the_request_token(app, creds):
    """token_auth puts the bearer token's client in environ['wsgisec.client']."""
    refusal(send(app, signed(creds), environ={"wsgisec.client": {"id": "mallory"}}), "unknown-key")
    response = send(app, signed(creds), environ={"wsgisec.client": {"id": "acme", "scopes": []}})
    assert response.status_int == 200
    assert response.json["client"] == {"id": "acme", "scopes": []}  # not overwritten


def test_key_rotation_with_grace(store, layer, app, creds):
    new = layer.issue_signing_key("acme", grace=60)
    assert send(app, signed(creds)).status_int == 200  # old key within grace
    assert send(app, signed(creds, keyid=new["keyid"], signing_key=new["key"])).status_int == 200
    after = make_layer(store, clock=lambda: time.time() + 61)
    old = signed(creds, created=int(time.time() + 61))
    refusal(send(TestApp(validated(after)), old), "unknown-key")


def test_key_rotation_without_grace_retires_at_once(store, layer, app, creds):
    layer.issue_signing_key("acme", grace=0)
    assert store.get(SIGNING_KEYS, creds["keyid"]) is None
    refusal(send(app, signed(creds)), "unknown-key")


def test_request_token_key_rotation_last_signs_all_verify(store):
    old = RequestTokens([OLD_SECRET], store=store)
    both = RequestTokens([OLD_SECRET, SECRET], store=store)
    token_old, _ = old.issue("acme")
    token_new, record = both.issue("acme")
    assert record["key_id"] == both.key_ids[-1] != both.key_ids[0]  # the LAST key signs
    assert both.verify(token_old)["client_id"] == "acme"
    assert both.verify(token_new)["key_id"] == both.key_ids[-1]


def test_body_larger_than_max_body_size_is_413(store, creds):
    app = TestApp(validated(make_layer(store, max_body_size=100)))
    response = send(app, signed(creds, body=b"x" * 101))
    assert response.status_int == 413
    assert store.events(kinds=["signed_requests.body-too-large"])


def test_store_unavailable_fails_closed(creds):
    app = TestApp(validated(make_layer("redis://127.0.0.1:1/0")))
    response = send(app, signed(creds))
    assert response.status_int == 503


def test_unsigned_partner_mode_settings(store, creds):
    """require_signature=false: request tokens alone (wsgisec check warns)."""
    layer = make_layer(store, require_signature=False)
    assert any("require_signature is off" in text for text in layer.warnings())
    app = TestApp(validated(layer))
    assert send(app, signed(creds, sign=False)).status_int == 200
    refusal(send(app, signed(creds, token=False, sign=False)), "signature-missing")


def test_signature_only_mode(store, creds):
    layer = make_layer(store, require_request_token=False, secret_keys=())
    app = TestApp(validated(layer))
    response = send(app, signed(creds, token=False))
    assert response.status_int == 200 and response.json["client"] == {"id": "acme"}


def test_custom_required_components_and_params(store, creds):
    app = TestApp(validated(make_layer(store, required_components=("@target-uri", "@method"),
                                       required_params=("keyid", "created", "expires"),
                                       request_token_header="X-Partner-Token")))
    good = signed(creds, components=("@target-uri", "@method"), token=False,
                  headers={"X-Partner-Token": creds["token"]},
                  extra_params={"expires": int(time.time()) + 60})
    assert send(app, good).status_int == 200
    refusal(send(app, signed(creds, components=("@target-uri", "@method"), token=False,
                             headers={"X-Partner-Token": creds["token"]})), "signature-invalid")


def test_exempt_paths_pass_unchecked(store):
    app = TestApp(validated(make_layer(store, exempt_paths=("/healthz",))))
    assert app.get("/healthz").status_int == 200
    refusal(app.get("/healthzz", expect_errors=True), "signature-missing")


def test_browser_requests_refused_when_browser_csrf_off(app):
    refusal(app.post("/form", {"a": "b"}, expect_errors=True), "signature-missing")


def test_max_clock_skew_setting(store, creds):
    app = TestApp(validated(make_layer(store, max_clock_skew=30)))
    refusal(send(app, signed(creds, created=int(time.time()) - 31)), "expired")
    assert send(app, signed(creds, created=int(time.time()) - 25)).status_int == 200


# -- configuration ----------------------------------------------------------------------

@pytest.mark.parametrize("kw, message", [
    pytest.param({"secret_keys": ()}, "secret_keys is required", id="no-secret-keys"),
    pytest.param({"required_components": ("@status",)}, "not supported", id="bad-component"),
    pytest.param({"required_params": ("created", "nonce")}, "must include keyid", id="no-keyid"),
    pytest.param({"required_params": ("keyid", "colour")}, "unknown colour", id="unknown-param"),
    pytest.param({"store": None}, "store is required", id="no-store"),
])
def test_bad_configuration_is_refused_at_start_up(tmp_path, kw, message):
    kw.setdefault("store", "sqlite:///" + str(tmp_path / "s.sqlite"))
    with pytest.raises(ConfigurationError, match=message):
        make_layer(**kw)


def test_filter_factory_parses_every_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("SR_KEY", "x" * 32)
    factory = filter_factory({"here": str(tmp_path), "__file__": str(tmp_path / "a.ini")},
                             secret_keys="env:SR_KEY", request_token_header="X-Partner-Token",
                             require_request_token="true", request_token_max_age="30d",
                             require_signature="true", required_components="@method @target-uri",
                             required_params="created keyid nonce", max_clock_skew="2m",
                             max_body_size="64KB", signature_label="sig1", exempt_paths="/healthz",
                             browser_csrf="false")
    layer = factory(echo_app)
    assert layer.settings["max_clock_skew"] == 120
    assert layer.settings["request_token_max_age"] == 30 * 86400
    assert layer.settings["max_body_size"] == 65536
    assert layer.settings["store"] == "sqlite:///" + str(tmp_path / "wsgisec.sqlite")
    assert layer.settings["secret_keys"][0].source == "env"


@pytest.mark.parametrize("conf, message", [
    pytest.param({"max_clock_skew": "5 minutes"}, "max_clock_skew", id="bad-duration"),
    pytest.param({"browser_csrf": "ture"}, "browser_csrf", id="bad-boolean"),
    pytest.param({"max_clock_skw": "5m"}, "unknown setting", id="typo"),
    pytest.param({"request_token_header": "X Token"}, "header name", id="bad-header"),
])
def test_filter_factory_errors_name_the_setting(tmp_path, monkeypatch, conf, message):
    monkeypatch.setenv("SR_KEY", "x" * 32)
    with pytest.raises(ConfigurationError, match=message):
        filter_factory({"here": str(tmp_path)}, secret_keys="env:SR_KEY", **conf)


@pytest.mark.parametrize("kw, warning", [
    pytest.param({"required_params": ("created", "keyid")}, "replayed", id="no-nonce"),
    pytest.param({"required_params": ("nonce", "keyid")}, "never expires", id="no-created"),
    pytest.param({"required_components": ("@method", "@path")}, "does not cover @authority", id="weak-cover"),
    pytest.param({"max_clock_skew": 3600}, "max_clock_skew is 3600s", id="long-skew"),
    pytest.param({"secret_keys": [Secret("DEVELOPMENT-ONLY-key-0123456789", "file")]}, "development key",
                 id="dev-key"),
])
def test_warnings_for_weak_choices(tmp_path, kw, warning):
    layer = make_layer("sqlite:///" + str(tmp_path / "s.sqlite"), **kw)
    assert any(warning in text for text in layer.warnings()), layer.warnings()


def test_default_configuration_has_no_warnings(tmp_path):
    assert make_layer("sqlite:///" + str(tmp_path / "s.sqlite")).warnings() == []


# -- a real server ------------------------------------------------------------------------

@pytest.fixture
def server(tmp_path, wsgi_server):
    """The layer behind a real waitress server on an ephemeral port (SQLite store)."""
    layer = make_layer("sqlite:///" + str(tmp_path / "server.sqlite"))
    return layer, wsgi_server(layer, threads=2).url


def test_third_party_client_against_waitress(server):
    from requests_http_signature import HTTPSignatureAuth, algorithms

    layer, base = server
    key = layer.issue_signing_key("acme")
    token, _ = layer.issue_request_token("acme")
    auth = HTTPSignatureAuth(signature_algorithm=algorithms.HMAC_SHA256, key=base64.b64decode(key["key"]),
                             key_id=key["keyid"], use_nonce=True,
                             covered_component_ids=("@method", "@authority", "@path", "@query"))
    with requests.Session() as session:
        session.headers["X-Request-Token"] = token
        response = session.post(base + "/items/a%20b?q=caf%C3%A9", json={"name": "widget"}, auth=auth,
                                timeout=10)
        assert response.status_code == 200, response.text
        assert response.json()["client"] == {"id": "acme"}
        assert response.json()["path"] == "/items/a b"
        # The same signed request sent again is a replay.
        replay = session.send(response.request, timeout=10)
        assert replay.status_code == 401 and replay.json()["reason"] == "replayed"
        unsigned = session.get(base + "/items", timeout=10)
        assert unsigned.status_code == 401 and unsigned.json()["reason"] == "signature-missing"


# -- browsers: routed to wsgisec.csrf.BrowserCSRF ------------------------------------------

def test_browser_csrf_without_the_browser_half_is_a_configuration_error(store, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "wsgisec.signed_requests.csrf", None)  # import fails
    with pytest.raises(ConfigurationError, match="browser_csrf = false"):
        make_layer(store, browser_csrf=True)
    with pytest.raises(ConfigurationError, match="need browser_csrf = true"):
        make_layer(store, browser_csrf=False, csrf_cookie_name="x")


def test_requests_without_partner_credentials_go_to_browser_csrf(store, creds):
    from wsgisec.signed_requests import csrf
    layer = make_layer(store, browser_csrf=True)
    assert isinstance(layer.browser, csrf.BrowserCSRF)
    app = TestApp(validated(layer))
    assert app.get("/page").status_int == 200  # a safe browser request passes
    cross_site = app.post("/form", {"a": "b"}, headers={"Origin": "https://evil.example",
                                                        "Sec-Fetch-Site": "cross-site"}, expect_errors=True)
    assert cross_site.status_int == 403  # the browser half refuses it, not us with a 401
    # Anything with a partner credential is a partner request: signatures are required.
    refusal(send(app, signed(creds, sign=False)), "signature-missing")
    refusal(app.post("/form", {"a": "b"}, headers={"Authorization": "Bearer x"}, expect_errors=True),
            "signature-missing")
    assert send(app, signed(creds)).status_int == 200


def test_a_bearer_request_token_auth_accepted_is_still_a_partner_request(store, creds):
    """token_auth removes Authorization after accepting it; the request must still be signed.

    Without this, a stolen bearer token alone would pass as a "browser" GET.
    """
    from wsgisec.signed_requests import csrf  # noqa: F401
    app = TestApp(validated(make_layer(store, browser_csrf=True)))
    as_token_auth_leaves_it = {"wsgisec.client": {"id": "acme"}, "REMOTE_USER": "acme"}
    refusal(app.get("/items", extra_environ=as_token_auth_leaves_it, expect_errors=True), "signature-missing")
    assert send(app, signed(creds), environ=dict(as_token_auth_leaves_it)).status_int == 200


def test_filter_factory_accepts_csrf_settings(tmp_path, monkeypatch):
    from wsgisec.signed_requests import csrf
    monkeypatch.setenv("SR_KEY", "x" * 32)
    name, (parser, default) = next(iter(csrf.SETTINGS.items()))
    conf = {name: default} if default is not None else {}
    layer = filter_factory({"here": str(tmp_path)}, secret_keys="env:SR_KEY", **conf)(echo_app)
    assert layer.browser is not None and name.startswith("csrf_")


# -- property: no change to a signed request gets through -------------------------------------

from hypothesis import HealthCheck, given, settings as hsettings, strategies as st  # noqa: E402


@hsettings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(part=st.sampled_from(["method", "path", "query", "body", "host", "header"]),
       junk=st.text(alphabet="abcXYZ019-_~%2F", min_size=1, max_size=8))
def test_any_change_after_signing_is_refused(tmp_path_factory, part, junk):
    from wsgisec.store.sqlite import SQLiteStore

    store = SQLiteStore(str(tmp_path_factory.mktemp("prop") / "s.sqlite"))
    try:
        layer = make_layer(store)
        key = layer.issue_signing_key("acme")
        creds = {"keyid": key["keyid"], "key": key["key"], "token": layer.issue_request_token("acme")[0]}
        method, path, headers, body = signed(creds, "PUT", "/items/1?a=1", b'{"n": 1}')
        if part == "method":
            method = "PATCH"
        elif part == "path":
            path = "/items/1" + junk + "?a=1"
        elif part == "query":
            path = "/items/1?a=1&" + junk
        elif part == "body":
            body = body + junk.encode()
        elif part == "host":
            headers["Host"] = junk.lower().replace("%", "") + ".example"
        else:
            headers["Signature-Input"] = headers["Signature-Input"].replace("created=", "created=1" + junk[:0])
        response = send(TestApp(validated(layer)), (method, path, headers, body))
        assert response.status_int == 401, (part, junk, response.text)
        assert response.json["reason"] in ("signature-invalid", "digest-mismatch", "expired")
    finally:
        store.close()


def test_a_cached_request_token_still_expires_and_is_still_revocable(store):
    """Verified tokens are remembered per process; time and revocation are checked anew."""
    from wsgisec.signed_requests.request_tokens import RequestTokenError, RequestTokens

    now = [1_800_000_000.0]
    tokens = RequestTokens([SECRET], max_age=3600, store=store, clock=lambda: now[0])
    token, record = tokens.issue("acme")
    assert tokens.verify(token)["client_id"] == "acme"  # now cached
    tokens.revoke(record["token_id"], "acme")
    with pytest.raises(RequestTokenError) as revoked:
        tokens.verify(token)
    assert revoked.value.code == "unknown-key"
    other, _ = tokens.issue("acme")
    assert tokens.verify(other)["client_id"] == "acme"
    now[0] += 3601
    with pytest.raises(RequestTokenError) as expired:
        tokens.verify(other)
    assert expired.value.code == "expired"
    with pytest.raises(RequestTokenError):
        tokens.verify(other[:-2] + ("AA" if not other.endswith("AA") else "BB"))  # forged: not from the cache
