"""token_auth: OAuth 2.0 token endpoint, refresh rotation, revocation, introspection and the
bearer guard in front of the app (RFC 6749, 6750, 7009, 7662), on SQLite and real Redis.

Most tests drive ``TokenAuth`` directly through WebTest with ``wsgiref.validate``; the
client secrets there are hashed with a cheap argon2 context (the default one costs ~90 ms
a check and is used by the ini and example tests at the end).
"""

import base64
import json
import logging
import pathlib

import pytest
from passlib.context import CryptContext
from webtest import TestApp

from conftest import validated
from wsgisec import credentials, pipeline
from wsgisec.token_auth.clients import CLIENTS, DEFAULT_CONTEXT, ClientRegistry
from wsgisec.settings import ConfigurationError
from wsgisec.store import StoreUnavailable
from wsgisec.testing import PartnerTestApp, partner_credentials
from wsgisec.token_auth import LOCKS, SPENT, TokenAuth, filter_factory

INI = pathlib.Path(__file__).resolve().parents[1] / "ini"
FAST = CryptContext(schemes=["argon2", "pbkdf2_sha256"], deprecated=["pbkdf2_sha256"],
                    argon2__memory_cost=1024, argon2__rounds=1, argon2__parallelism=1)
HTTPS = {"wsgi.url_scheme": "https", "REMOTE_ADDR": "203.0.113.5"}
RULES = ("GET /api/items items:read", "POST /api/items items:write", "* =/api/admin admin",
         "GET,PUT /api/items/special items:special")


def echo(environ, start_response):
    """The app behind the layer: tells the test what it was given."""
    seen = {"user": environ.get("REMOTE_USER"), "client": environ.get("wsgisec.client"),
            "scopes": list(environ.get("wsgisec.scopes", ())), "auth_type": environ.get("AUTH_TYPE"),
            "authorization": environ.get("HTTP_AUTHORIZATION"), "query": environ.get("QUERY_STRING")}
    body = json.dumps(seen).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


class Clock:
    def __init__(self):
        import time

        self.now = time.time()

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def make(store, clock):
    def make(app=echo, **kw):
        kw.setdefault("scopes", RULES)
        kw.setdefault("public_paths", ("/healthz", "=/"))
        layer = TokenAuth(app, store=store, crypt_context=FAST, clock=clock, **kw)
        return TestApp(validated(layer), extra_environ=dict(HTTPS)), layer

    return make


@pytest.fixture
def api(make):
    return make()


def new_client(layer, scopes=("items:read", "items:write"), permissions=()):
    record, secret = layer.registry.create("Acme", scopes=scopes, permissions=permissions)
    return record["id"], secret


def basic(client_id, secret):
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def fetch(app, client_id, secret, status=200, **form):
    form.setdefault("grant_type", "client_credentials")
    return app.post("/oauth/token", form, headers=basic(client_id, secret), status=status)


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


# -- the token endpoint (RFC 6749 §4.4, §5) ----------------------------------------------

def test_client_credentials_with_basic_auth_answers_as_rfc6749_5_1(api):
    app, layer = api
    client_id, secret = new_client(layer)
    response = fetch(app, client_id, secret)
    assert set(response.json) == {"access_token", "token_type", "expires_in", "refresh_token", "scope"}
    assert response.json["token_type"] == "Bearer" and response.json["expires_in"] == 900
    assert response.json["scope"] == "items:read items:write"
    assert response.headers["Cache-Control"] == "no-store" and response.headers["Pragma"] == "no-cache"
    assert response.content_type == "application/json"
    # 256 bits of randomness, URL-safe: 43 characters
    assert len(response.json["access_token"]) >= 43 and len(response.json["refresh_token"]) >= 43


def test_client_credentials_with_form_auth(api):
    app, layer = api
    client_id, secret = new_client(layer)
    response = app.post("/oauth/token", {"grant_type": "client_credentials", "client_id": client_id,
                                         "client_secret": secret})
    assert response.json["access_token"]


def test_token_reaches_the_app_as_remote_user_client_and_scopes(api):
    app, layer = api
    client_id, secret = new_client(layer)
    token = fetch(app, client_id, secret, scope="items:read").json["access_token"]
    seen = app.get("/api/items?q=a", headers=bearer(token)).json
    assert seen["user"] == client_id and seen["auth_type"] == "Bearer"
    assert seen["client"] == {"id": client_id, "name": "Acme", "scopes": ["items:read"], "user": None}
    assert seen["scopes"] == ["items:read"]
    assert seen["authorization"] is None, "the app must not see the token"
    assert seen["query"] == "q=a"


def test_pass_authorization_leaves_the_header(make):
    app, layer = make(pass_authorization=True)
    client_id, secret = new_client(layer)
    token = fetch(app, client_id, secret).json["access_token"]
    assert app.get("/api/items", headers=bearer(token)).json["authorization"] == f"Bearer {token}"


def _both_methods(cid, secret):
    return {"grant_type": "client_credentials", "client_id": cid, "client_secret": secret}, basic(cid, secret)


TOKEN_ERRORS = [
    pytest.param(lambda c, s: ({"grant_type": "client_credentials"}, basic(c, "wrong" + s)),
                 401, "invalid_client", id="wrong-secret-basic"),
    pytest.param(lambda c, s: ({"grant_type": "client_credentials", "client_id": c, "client_secret": s[:-1]}, {}),
                 401, "invalid_client", id="wrong-secret-post"),
    pytest.param(lambda c, s: ({"grant_type": "client_credentials"}, basic("c_ffffffffffffffff", s)),
                 401, "invalid_client", id="unknown-client"),
    pytest.param(lambda c, s: ({"grant_type": "client_credentials"}, {}), 401, "invalid_client",
                 id="no-client-authentication"),
    pytest.param(lambda c, s: ({"grant_type": "client_credentials"}, {"Authorization": "Basic !!notbase64"}),
                 401, "invalid_client", id="malformed-basic"),
    pytest.param(lambda c, s: ({"grant_type": "client_credentials"},
                               {"Authorization": "Basic " + base64.b64encode(c.encode()).decode()}),
                 401, "invalid_client", id="basic-without-colon"),
    pytest.param(_both_methods, 400, "invalid_request", id="two-authentication-methods"),
    pytest.param(lambda c, s: ({}, basic(c, s)), 400, "invalid_request", id="no-grant-type"),
    pytest.param(lambda c, s: ({"grant_type": "password", "username": "u", "password": "p"}, basic(c, s)),
                 400, "unsupported_grant_type", id="password-grant"),
    pytest.param(lambda c, s: ({"grant_type": "authorization_code", "code": "x"}, basic(c, s)),
                 400, "unsupported_grant_type", id="code-grant"),
    pytest.param(lambda c, s: ({"grant_type": "client_credentials", "scope": "admin"}, basic(c, s)),
                 400, "invalid_scope", id="scope-not-granted"),
    pytest.param(lambda c, s: ({"grant_type": "client_credentials", "scope": "items:read  items:write"},
                               basic(c, s)), 400, "invalid_scope", id="scope-malformed"),
    pytest.param(lambda c, s: ({"grant_type": "client_credentials", "scope": ""}, basic(c, s)),
                 400, "invalid_scope", id="scope-empty"),
    pytest.param(lambda c, s: ({"grant_type": "refresh_token"}, basic(c, s)), 400, "invalid_request",
                 id="refresh-without-token"),
    pytest.param(lambda c, s: ({"grant_type": "refresh_token", "refresh_token": "forged"}, basic(c, s)),
                 400, "invalid_grant", id="refresh-unknown-token"),
]


@pytest.mark.parametrize("build, status, error", TOKEN_ERRORS)
def test_token_endpoint_errors_follow_rfc6749_5_2(api, build, status, error, caplog):
    app, layer = api
    client_id, secret = new_client(layer)
    form, headers = build(client_id, secret)
    response = app.post("/oauth/token", form, headers=headers, status=status)
    assert response.json["error"] == error and response.json["error_description"]
    assert response.headers["Cache-Control"] == "no-store"
    assert response.json["incident_id"] == response.headers["X-Incident-Id"]
    if status == 401:
        assert response.headers["WWW-Authenticate"] == 'Basic realm="api"'
    assert secret not in response.text and secret not in caplog.text


@pytest.mark.parametrize("request_kw, status", [
    pytest.param({"method": "GET"}, 405, id="get"),
    pytest.param({"method": "POST", "body": b'{"grant_type": "client_credentials"}',
                  "content_type": "application/json"}, 400, id="json-body"),
    pytest.param({"method": "POST", "body": b"grant_type=client_credentials&grant_type=client_credentials",
                  "content_type": "application/x-www-form-urlencoded"}, 400, id="repeated-parameter"),
    pytest.param({"method": "POST", "body": b"grant_type=client_credentials&x=" + b"a" * 20000,
                  "content_type": "application/x-www-form-urlencoded"}, 413, id="too-large"),
    pytest.param({"method": "POST", "body": b"grant_type=\xff\xfe",
                  "content_type": "application/x-www-form-urlencoded"}, 400, id="not-utf8"),
])
def test_token_endpoint_refuses_malformed_requests(api, request_kw, status):
    app, layer = api
    client_id, secret = new_client(layer)
    response = app.request("/oauth/token", headers=basic(client_id, secret), status=status,
                           environ=dict(HTTPS), **request_kw)
    assert response.json["error"] == "invalid_request"
    if status == 405:
        assert response.headers["Allow"] == "POST"


def test_client_secret_in_the_url_is_refused(api):
    app, layer = api
    client_id, secret = new_client(layer)
    response = app.post(f"/oauth/token?client_id={client_id}&client_secret={secret}",
                        {"grant_type": "client_credentials"}, status=400)
    assert response.json["error"] == "invalid_request"


def test_narrower_scope_is_granted_and_enforced(api):
    app, layer = api
    client_id, secret = new_client(layer)
    token = fetch(app, client_id, secret, scope="items:read").json["access_token"]
    app.get("/api/items", headers=bearer(token))
    response = app.post("/api/items", headers=bearer(token), status=403)
    assert response.headers["WWW-Authenticate"] == \
        'Bearer realm="api", error="insufficient_scope", scope="items:write"'
    assert response.json["scope"] == "items:write"


# -- the bearer guard (RFC 6750) -------------------------------------------------------

@pytest.fixture
def issued(api):
    app, layer = api
    client_id, secret = new_client(layer)
    return app, layer, client_id, secret, fetch(app, client_id, secret).json


@pytest.mark.parametrize("headers, path, status, challenge", [
    pytest.param({}, "/api/items", 401, 'Bearer realm="api"', id="no-token"),
    pytest.param({"Authorization": "Basic dTpw"}, "/api/items", 401, 'Bearer realm="api"', id="other-scheme"),
    pytest.param({"Authorization": "Bearer " + "A" * 43}, "/api/items", 401,
                 'Bearer realm="api", error="invalid_token"', id="unknown-token"),
    pytest.param({"Authorization": "Bearer two words"}, "/api/items", 400,
                 'Bearer realm="api", error="invalid_request"', id="malformed"),
    pytest.param({"Authorization": "Bearer"}, "/api/items", 400,
                 'Bearer realm="api", error="invalid_request"', id="empty"),
    pytest.param({}, "/api/items?access_token=" + "A" * 43, 400,
                 'Bearer realm="api", error="invalid_request"', id="query-token-refused"),
    pytest.param({}, "/", 200, None, id="index-is-public"),
    pytest.param({}, "/healthz/db", 200, None, id="public-prefix"),
    pytest.param({}, "/index.html", 401, 'Bearer realm="api"', id="exact-public-is-not-a-prefix"),
    pytest.param({}, "/healthzz", 401, 'Bearer realm="api"', id="prefix-needs-a-boundary"),
])
def test_bearer_challenges_follow_rfc6750_3(api, headers, path, status, challenge):
    app, _layer = api
    response = app.get(path, headers=headers, status=status)
    if challenge is None:
        assert "WWW-Authenticate" not in response.headers
    else:
        assert response.headers["WWW-Authenticate"].startswith(challenge)
        assert response.json["incident_id"] == response.headers["X-Incident-Id"]
        assert response.headers["Cache-Control"] == "no-store"
        if "error=" not in challenge:
            assert "error" not in response.headers["WWW-Authenticate"]


@pytest.mark.parametrize("path", ["/healthz/../api/items", "/healthz/./x/../../api/items", "/api/.."])
def test_dot_segments_cannot_smuggle_a_path_through_public_paths(api, path):
    app, _layer = api
    app.get(path, status=400)


def test_expired_access_token_is_refused(issued, clock):
    app, _layer, _cid, _secret, tokens = issued
    clock.now += 901
    response = app.get("/api/items", headers=bearer(tokens["access_token"]), status=401)
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_refresh_token_is_not_an_access_token(issued):
    app, *_rest, tokens = issued
    app.get("/api/items", headers=bearer(tokens["refresh_token"]), status=401)


@pytest.mark.parametrize("method, path, granted, status", [
    pytest.param("GET", "/api/items", "items:read", 200, id="get-read"),
    pytest.param("HEAD", "/api/items", "items:read", 200, id="head-follows-get"),
    pytest.param("GET", "/api/items/7", "items:read", 200, id="prefix-covers-children"),
    pytest.param("POST", "/api/items", "items:read", 403, id="post-needs-write"),
    pytest.param("DELETE", "/api/items", "items:read", 200, id="no-rule-for-method-token-suffices"),
    pytest.param("GET", "/api/items/special", "items:read", 403, id="more-specific-rule-wins"),
    pytest.param("PUT", "/api/items/special", "items:special", 200, id="method-list"),
    pytest.param("DELETE", "/api/admin", "items:read", 403, id="star-method-exact-path"),
    pytest.param("GET", "/api/admin/x", "items:read", 200, id="exact-rule-does-not-cover-children"),
    pytest.param("GET", "/api/other", "items:read", 200, id="no-rule-token-suffices"),
])
def test_scope_rules(make, method, path, granted, status):
    app, layer = make()
    client_id, secret = new_client(layer, scopes=("items:read", "items:write", "items:special"))
    token = fetch(app, client_id, secret, scope=granted).json["access_token"]
    app.request(path, method=method, headers=bearer(token), status=status, environ=dict(HTTPS))


def test_query_token_when_allowed_is_accepted_and_hidden_from_the_app(make):
    app, layer = make(allow_query_token=True)
    client_id, secret = new_client(layer)
    token = fetch(app, client_id, secret).json["access_token"]
    seen = app.get(f"/api/items?q=x&access_token={token}&limit=2").json
    assert seen["user"] == client_id and seen["query"] == "q=x&limit=2"
    app.get(f"/api/items?access_token={token}", headers=bearer(token), status=400)
    app.get(f"/api/items?access_token={token}&access_token={token}", status=400)


# -- refresh rotation and reuse detection (RFC 6749 §6, RFC 9700 §4.14.2) ---------------

def refresh(app, client_id, secret, token, status=200, **form):
    return app.post("/oauth/token", dict(form, grant_type="refresh_token", refresh_token=token),
                    headers=basic(client_id, secret), status=status)


def test_refresh_rotates_both_tokens(issued):
    app, _layer, client_id, secret, first = issued
    second = refresh(app, client_id, secret, first["refresh_token"]).json
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert second["scope"] == first["scope"]
    app.get("/api/items", headers=bearer(second["access_token"]))
    third = refresh(app, client_id, secret, second["refresh_token"]).json
    app.get("/api/items", headers=bearer(third["access_token"]))


def test_reusing_a_spent_refresh_token_revokes_the_whole_family(issued, store, caplog):
    app, _layer, client_id, secret, first = issued
    other = fetch(app, client_id, secret).json  # another family of the same client
    second = refresh(app, client_id, secret, first["refresh_token"]).json
    replay = refresh(app, client_id, secret, first["refresh_token"], status=400)
    assert replay.json["error"] == "invalid_grant"
    app.get("/api/items", headers=bearer(second["access_token"]), status=401)
    app.get("/api/items", headers=bearer(first["access_token"]), status=401)
    refresh(app, client_id, secret, second["refresh_token"], status=400)
    app.get("/api/items", headers=bearer(other["access_token"]))  # untouched
    [event] = [e for e in store.events(kinds=["token_auth.refresh-token-reuse"])]
    assert event["severity"] == "critical" and event["detail"]["tokens_revoked"] == 3
    for token in (first["refresh_token"], second["access_token"], secret):
        assert token not in caplog.text and token not in json.dumps(event)


def test_concurrent_second_use_counts_as_reuse(issued, store):
    app, _layer, client_id, secret, first = issued
    # Another worker won the race for this refresh token a moment ago.
    store.add(SPENT, credentials.digest(first["refresh_token"]), {"family": "x", "client_id": client_id}, ttl=60)
    refresh(app, client_id, secret, first["refresh_token"], status=400)
    app.get("/api/items", headers=bearer(first["access_token"]), status=401)


def test_refresh_token_of_another_client_is_refused_and_revoked(issued):
    app, layer, client_id, secret, first = issued
    thief_id, thief_secret = new_client(layer)
    refresh(app, thief_id, thief_secret, first["refresh_token"], status=400)
    app.get("/api/items", headers=bearer(first["access_token"]), status=401)
    refresh(app, client_id, secret, first["refresh_token"], status=400)


def test_refresh_may_narrow_scope_never_widen(issued, store):
    app, _layer, client_id, secret, first = issued
    narrow = refresh(app, client_id, secret, first["refresh_token"], scope="items:read").json
    assert narrow["scope"] == "items:read"
    wider = refresh(app, client_id, secret, narrow["refresh_token"], scope="items:read items:write", status=400)
    assert wider.json["error"] == "invalid_scope"


def test_refresh_drops_scopes_the_operator_took_away(issued, store):
    app, _layer, client_id, secret, first = issued
    store.update(CLIENTS, client_id, {"scopes": ["items:read"]})
    assert refresh(app, client_id, secret, first["refresh_token"]).json["scope"] == "items:read"


def test_expired_refresh_token_is_invalid_grant(issued, clock):
    app, _layer, client_id, secret, first = issued
    clock.now += 30 * 86400 + 1
    assert refresh(app, client_id, secret, first["refresh_token"], status=400).json["error"] == "invalid_grant"


# -- revocation (RFC 7009) -------------------------------------------------------------

def revoke(app, client_id, secret, token, status=200, **form):
    return app.post("/oauth/revoke", dict(form, token=token), headers=basic(client_id, secret), status=status)


def test_revoking_an_access_token(issued):
    app, _layer, client_id, secret, tokens = issued
    response = revoke(app, client_id, secret, tokens["access_token"], token_type_hint="access_token")
    assert response.body == b"" and response.headers["Cache-Control"] == "no-store"
    app.get("/api/items", headers=bearer(tokens["access_token"]), status=401)
    refresh(app, client_id, secret, tokens["refresh_token"])  # the refresh token lives on


def test_revoking_a_refresh_token_revokes_its_access_tokens(issued):
    app, _layer, client_id, secret, tokens = issued
    revoke(app, client_id, secret, tokens["refresh_token"], token_type_hint="refresh_token")
    app.get("/api/items", headers=bearer(tokens["access_token"]), status=401)
    refresh(app, client_id, secret, tokens["refresh_token"], status=400)


@pytest.mark.parametrize("token, hint", [
    pytest.param("never-issued", None, id="unknown-token"),
    pytest.param("never-issued", "something_else", id="unknown-hint-ignored"),
])
def test_revoking_an_invalid_token_is_not_an_error(issued, token, hint):
    app, _layer, client_id, secret, _tokens = issued
    revoke(app, client_id, secret, token, **({"token_type_hint": hint} if hint else {}))


def test_revocation_errors(issued):
    app, layer, client_id, secret, tokens = issued
    other_id, other_secret = new_client(layer)
    assert revoke(app, other_id, other_secret, tokens["access_token"], status=400).json["error"] == \
        "unauthorized_client"
    app.get("/api/items", headers=bearer(tokens["access_token"]))  # still valid
    assert app.post("/oauth/revoke", {}, headers=basic(client_id, secret), status=400).json["error"] == \
        "invalid_request"
    assert app.post("/oauth/revoke", {"token": tokens["access_token"]}, status=401).json["error"] == \
        "invalid_client"


# -- introspection (RFC 7662) ----------------------------------------------------------

def introspect(app, client_id, secret, token, status=200):
    return app.post("/oauth/introspect", {"token": token}, headers=basic(client_id, secret), status=status)


def test_introspection_needs_the_introspect_permission(issued):
    app, _layer, client_id, secret, tokens = issued
    response = introspect(app, client_id, secret, tokens["access_token"], status=403)
    assert response.json["error"] == "unauthorized_client" and "active" not in response.json
    assert app.post("/oauth/introspect", {"token": tokens["access_token"]}, status=401).json["error"] == \
        "invalid_client"


def test_introspection_of_active_and_inactive_tokens(issued, clock):
    app, layer, client_id, secret, tokens = issued
    rs_id, rs_secret = new_client(layer, scopes=(), permissions=("introspect",))
    active = introspect(app, rs_id, rs_secret, tokens["access_token"]).json
    assert active == {"active": True, "scope": "items:read items:write", "client_id": client_id,
                      "token_type": "Bearer", "sub": client_id, "exp": int(clock.now + 900),
                      "iat": int(clock.now)}
    assert introspect(app, rs_id, rs_secret, tokens["refresh_token"]).json["active"] is True
    assert introspect(app, rs_id, rs_secret, "unknown").json == {"active": False}
    revoke(app, client_id, secret, tokens["access_token"])
    assert introspect(app, rs_id, rs_secret, tokens["access_token"]).json == {"active": False}
    app.post("/oauth/introspect", {}, headers=basic(rs_id, rs_secret), status=400)


# -- user-bound tokens ------------------------------------------------------------------

def test_user_bound_token_from_the_python_call(api):
    app, layer = api
    client_id, secret = new_client(layer)
    tokens = layer.issue_token(client_id, user="alice", scopes=["items:read"])
    seen = app.get("/api/items", headers=bearer(tokens["access_token"])).json
    assert seen["user"] == "alice" and seen["client"]["id"] == client_id and seen["client"]["user"] == "alice"
    renewed = refresh(app, client_id, secret, tokens["refresh_token"]).json
    assert app.get("/api/items", headers=bearer(renewed["access_token"])).json["user"] == "alice"
    with pytest.raises(ValueError):
        layer.issue_token(client_id, user="alice", scopes=["admin"])
    with pytest.raises(LookupError):
        layer.issue_token("c_0000000000000000", user="alice")


def test_the_legacy_app_issues_a_user_token_through_the_environ(make):
    def legacy(environ, start_response):
        # What the docs tell an app to do on its own (public, cookie-authenticated) page.
        if environ["PATH_INFO"] == "/connect":
            tokens = environ["wsgisec.token_auth"].issue_token(environ["QUERY_STRING"], user="bob")
            body = json.dumps(tokens).encode()
            start_response("200 OK", [("Content-Type", "application/json")])
            return [body]
        return echo(environ, start_response)

    app, layer = make(legacy, public_paths=("/connect",))
    client_id, _secret = new_client(layer)
    tokens = app.get("/connect?" + client_id).json
    assert app.get("/api/items", headers=bearer(tokens["access_token"])).json["user"] == "bob"


# -- clients: disable, rotate, hash upgrade --------------------------------------------

def test_disabling_a_client_stops_its_tokens_at_once(issued, store):
    app, layer, client_id, secret, tokens = issued
    layer.issue_token(client_id, user="alice")
    assert layer.registry.disable(client_id) == 4
    app.get("/api/items", headers=bearer(tokens["access_token"]), status=401)
    response = fetch(app, client_id, secret, status=401)
    assert response.json["error"] == "invalid_client"
    assert store.events(kinds=["token_auth.client-disabled"])


def test_disabling_a_client_also_retires_its_signing_keys(store):
    """With signed_requests alone (no token_auth in front), a disabled client must not
    keep signing its way in."""
    from wsgisec.signed_requests import issue_signing_key, signing_keys_of

    registry = ClientRegistry(store)
    record, _secret = registry.create("Acme", scopes=["items:read"])
    other, _ = registry.create("Other", scopes=["items:read"])
    issue_signing_key(store, record["id"])
    issue_signing_key(store, other["id"])
    registry.disable(record["id"])
    assert signing_keys_of(store, record["id"]) == []
    assert len(signing_keys_of(store, other["id"])) == 1


def test_rotated_secret_keeps_the_old_one_for_the_grace_period(api, clock):
    app, layer = api
    client_id, old = new_client(layer)
    new = layer.registry.rotate_secret(client_id, grace=3600)
    fetch(app, client_id, old)
    fetch(app, client_id, new)
    clock.now += 3601
    fetch(app, client_id, old, status=401)
    fetch(app, client_id, new)


def test_rotation_without_grace_ends_the_old_secret_now(api):
    app, layer = api
    client_id, old = new_client(layer)
    layer.registry.rotate_secret(client_id, grace=0)
    fetch(app, client_id, old, status=401)


def test_outdated_hash_is_upgraded_on_the_next_login(api, store):
    app, layer = api
    client_id, secret = new_client(layer)
    legacy_hash = CryptContext(schemes=["pbkdf2_sha256"]).hash(secret)
    store.update(CLIENTS, client_id, {"secrets": [{"hash": legacy_hash, "created": 0, "expires": None}]})
    fetch(app, client_id, secret)
    upgraded = store.get(CLIENTS, client_id)["secrets"][0]["hash"]
    assert upgraded.startswith("$argon2id$") and FAST.verify(secret, upgraded)


@pytest.mark.real_hashing
def test_default_context_is_argon2id_and_secrets_have_256_bits(store):
    registry = ClientRegistry(store)
    record, secret = registry.create("x", scopes=["a"])
    assert record["secrets"][0]["hash"].startswith("$argon2id$")
    assert len(base64.urlsafe_b64decode(secret + "=")) == 32
    assert DEFAULT_CONTEXT.verify(secret, record["secrets"][0]["hash"])
    # Hashed with the production parameters (tests elsewhere use a cheap context, conftest.py).
    assert not DEFAULT_CONTEXT.needs_update(record["secrets"][0]["hash"])
    assert TokenAuth.__init__.__kwdefaults__["crypt_context"] is DEFAULT_CONTEXT
    assert registry.authenticate(record["id"], secret)["id"] == record["id"]
    assert registry.authenticate(record["id"], secret + "x") is None


# -- brute force -------------------------------------------------------------------------

def test_failed_client_authentications_lock_out_with_429(make, store, clock):
    app, layer = make(max_failed_auth=3, failed_auth_window=600)
    client_id, secret = new_client(layer)
    for _ in range(3):
        fetch(app, client_id, "wrong", status=401)
    locked = fetch(app, client_id, secret, status=429)  # even the right secret, for now
    assert 590 <= int(locked.headers["Retry-After"]) <= 600
    assert locked.json["error"] == "temporarily_unavailable"
    # Only the guessing address: client ids are not secret, so a lock per id alone would
    # let anyone lock the partner out (issue 11); its own address still gets in.
    app.post("/oauth/token", {"grant_type": "client_credentials"}, headers=basic(client_id, secret),
             extra_environ={"REMOTE_ADDR": "198.51.100.1"}, status=200)
    assert store.events(kinds=["token_auth.client-auth-throttled"])
    clock.now += 601
    fetch(app, client_id, secret)


def test_guessing_many_client_ids_from_one_address_is_locked_out(make, store):
    app, layer = make(max_failed_auth=3)
    client_id, secret = new_client(layer)
    for n in range(3):
        fetch(app, f"c_{n:016x}", "guess", status=401)
    fetch(app, client_id, secret, status=429)
    app.post("/oauth/token", {"grant_type": "client_credentials"}, headers=basic(client_id, secret),
             extra_environ={"REMOTE_ADDR": "198.51.100.1"})
    assert store.get(LOCKS, "addr:203.0.113.5") is not None


# -- TLS --------------------------------------------------------------------------------

def test_bearer_token_over_plain_http_is_revoked(issued, store, caplog):
    app, _layer, _cid, _secret, tokens = issued
    response = app.get("/api/items", headers=bearer(tokens["access_token"]),
                       extra_environ={"wsgi.url_scheme": "http"}, status=403)
    [event] = store.events(kinds=["token_auth.credentials-over-plaintext"])
    assert event["severity"] == "critical" and event["detail"]["token_revoked"] is True
    assert event["incident_id"] == response.json["incident_id"]
    app.get("/api/items", headers=bearer(tokens["access_token"]), status=401)
    assert tokens["access_token"] not in caplog.text


def test_query_token_over_plain_http_is_revoked_even_when_query_tokens_are_off(issued, store):
    app, _layer, _cid, _secret, tokens = issued
    app.get("/api/items?access_token=" + tokens["access_token"], extra_environ={"wsgi.url_scheme": "http"},
            status=403)
    app.get("/api/items", headers=bearer(tokens["access_token"]), status=401)
    [event] = store.events(kinds=["token_auth.credentials-over-plaintext"])
    assert event["detail"]["token_revoked"] is True


def test_plain_http_without_credentials_is_refused_not_challenged(api):
    app, _layer = api
    response = app.get("/api/items", extra_environ={"wsgi.url_scheme": "http"}, status=403)
    assert "WWW-Authenticate" not in response.headers


def test_refresh_token_sent_to_the_endpoint_over_plain_http_is_revoked(issued, store):
    app, _layer, client_id, secret, tokens = issued
    response = app.post("/oauth/token", {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
                        headers=basic(client_id, secret), extra_environ={"wsgi.url_scheme": "http"}, status=403)
    assert response.json["error"] == "invalid_request"
    assert response.json["reason"] == "credentials-over-plaintext" and "Location" not in response.headers
    app.get("/api/items", headers=bearer(tokens["access_token"]), status=401)  # the family went with it
    assert store.events(kinds=["token_auth.credentials-over-plaintext"])


def test_require_tls_off_serves_plain_http(make):
    app, layer = make(require_tls=False)
    client_id, secret = new_client(layer)
    token = app.post("/oauth/token", {"grant_type": "client_credentials"}, headers=basic(client_id, secret),
                     extra_environ={"wsgi.url_scheme": "http"}).json["access_token"]
    app.get("/api/items", headers=bearer(token), extra_environ={"wsgi.url_scheme": "http"})
    assert any("require_tls" in text for text in layer.warnings())


# -- store failures, secrets in logs ---------------------------------------------------

def test_unreachable_store_fails_closed_with_503():
    pytest.importorskip("redis")
    layer = TokenAuth(echo, store="redis://127.0.0.1:1/0", crypt_context=FAST)
    app = TestApp(validated(layer), extra_environ=dict(HTTPS))
    response = app.get("/api/items", headers=bearer("A" * 43), status=503)
    assert response.headers["Retry-After"] and response.json["status"] == 503
    token = app.post("/oauth/token", {"grant_type": "client_credentials"},
                     headers=basic("c_0123456789abcdef", "x" * 43), status=503)
    assert "redis" not in token.text.lower()
    with pytest.raises(StoreUnavailable):
        layer.store.get("x", "y")


def test_no_token_or_secret_reaches_logs_or_events(issued, store, caplog):
    caplog.set_level(logging.DEBUG)
    app, _layer, client_id, secret, tokens = issued
    fetch(app, client_id, secret + "x", status=401)
    app.get("/api/items?access_token=" + tokens["access_token"], status=400)
    app.delete("/api/admin", headers=bearer(tokens["access_token"]), status=403)
    refresh(app, client_id, secret, tokens["refresh_token"])
    refresh(app, client_id, secret, tokens["refresh_token"], status=400)
    dumped = json.dumps(store.events()) + caplog.text
    assert len(store.events()) >= 4
    for value in (secret, tokens["access_token"], tokens["refresh_token"]):
        assert value not in dumped


def test_purge_removes_expired_rows(store, clock):
    layer = TokenAuth(echo, store=store, crypt_context=FAST)
    store.put(credentials.TOKENS, "a" * 64, {"type": "access"}, ttl=0.001)
    import time

    time.sleep(0.01)
    layer.purge()
    assert "a" * 64 not in store.keys(credentials.TOKENS)


# -- settings, ini files and the example ------------------------------------------------

@pytest.mark.parametrize("key, value, message", [
    pytest.param("access_token_ttl", "15 minutes", "access_token_ttl = '15 minutes' is not valid", id="ttl"),
    pytest.param("public_paths", "/", "write =/ for the index page alone", id="public-root"),
    pytest.param("public_paths", "healthz", "start with / or =/", id="public-relative"),
    pytest.param("scopes", "GET /api", "METHODS PATH SCOPE", id="rule-without-scope"),
    pytest.param("scopes", "get /api a", "upper-case HTTP methods", id="rule-lower-method"),
    pytest.param("scopes", 'GET /api "quoted"', "RFC 6749", id="rule-bad-scope"),
    pytest.param("allow_query_token", "ture", "true or false", id="boolean-typo"),
    pytest.param("realm", 'a"b', "without quotes", id="realm-quote"),
    pytest.param("token_path", "oauth/token", "starting with /", id="relative-endpoint"),
    pytest.param("revoke_path", "/oauth/token", "must differ", id="same-endpoints"),
    pytest.param("max_failed_auth", "0", ">= 1", id="threshold-zero"),
    pytest.param("refresh_token_ttl", "1m", "must not be shorter", id="refresh-shorter"),
    pytest.param("tokens_ttl", "1m", "unknown setting tokens_ttl", id="unknown-key"),
])
def test_bad_settings_are_refused_at_start_up(key, value, message, tmp_path):
    conf = {"here": str(tmp_path), "__file__": str(tmp_path / "api.ini")}
    with pytest.raises(ConfigurationError) as error:
        filter_factory(conf, **{key: value})
    assert message in str(error.value) and "egg:wsgisec#token_auth" in str(error.value)


def test_every_setting_from_an_ini_file(store_url):
    app = pipeline.load(str(INI / "token_auth_all_settings.ini"), global_conf={"wsgisec_store": store_url})
    layer = pipeline.layers(app)[0]
    assert isinstance(layer, TokenAuth)
    assert layer.settings == {
        "store": store_url, "access_token_ttl": 300, "refresh_token_ttl": 86400,
        "public_paths": ["/healthz", "=/", "/static"],
        "scopes": ["GET,HEAD =/api/whoami profile", "GET /api/items items:read", "* /api admin"],
        "allow_query_token": True, "pass_authorization": True, "realm": "partners",
        "token_path": "/auth/token", "revoke_path": "/auth/revoke", "introspect_path": "/auth/introspect",
        "max_failed_auth": 5, "failed_auth_window": 1800, "require_tls": False,
        "max_concurrent_hashes": 3, "hash_wait": 1.0, "failed_hash_budget": "30/60s", "verified_secret_ttl": 600,
    }
    assert len(layer.warnings()) == 3
    test = TestApp(validated(app))
    record, secret = layer.registry.create("ini", scopes=["items:read", "profile"])
    token = test.post("/auth/token", {"grant_type": "client_credentials"},
                      headers=basic(record["id"], secret)).json["access_token"]
    assert token
    assert test.get("/api/whoami?access_token=" + token).json["user"] == record["id"]
    test.get("/api/items", headers=bearer(token), status=200)
    test.post("/api/items", headers=bearer(token), status=403)
    assert test.get("/api/items", status=401).headers["WWW-Authenticate"] == 'Bearer realm="partners"'


def test_missing_store_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match="needs a store"):
        filter_factory({})


PROXY = {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_PROTO": "https"}
# What a partner calling https://localhost/ sends through the local TLS proxy. WebTest's
# default Host is "localhost:80": signed as an http URL (":80" dropped from @authority,
# RFC 9421 §2.2.3) but verified as https once the https layer believed the proxy (":80" kept).
SIGNED_PROXY = dict(PROXY, HTTP_HOST="localhost")


@pytest.fixture
def flagship(load_example):
    return load_example("partner_api.ini")


@pytest.fixture
def example(flagship):
    return TestApp(validated(flagship), extra_environ=dict(PROXY)), pipeline.find_layer(flagship, TokenAuth)


@pytest.fixture
def partner(flagship):
    """A signing partner on the same pipeline: the example's signed_requests layer wants a
    request token and an RFC 9421 signature with the bearer token on every API call."""
    def partner(client_id, access_token=None):
        return PartnerTestApp(validated(flagship), access_token=access_token, extra_environ=dict(SIGNED_PROXY),
                              **partner_credentials(flagship, client_id))

    return partner


def assert_bearer_alone_is_refused(app, token, path="/api/items"):
    """token_auth accepts the token, then signed_requests asks for the partner signature."""
    refused = app.get(path, headers=bearer(token), status=401)
    assert refused.json["reason"] == "signature-missing"
    assert refused.headers["WWW-Authenticate"].startswith("Signature ")


def test_example_partner_flow(example, partner):
    app, layer = example
    record, secret = layer.registry.create("Acme", scopes=["items:read"])
    assert app.get("/healthz").text == "ok\n"
    assert "Partner API" in app.get("/").text
    response = app.get("/api/items", status=401)
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="partner-api"'
    tokens = app.post("/oauth/token", {"grant_type": "client_credentials"},
                      headers=basic(record["id"], secret)).json
    assert_bearer_alone_is_refused(app, tokens["access_token"])
    acme = partner(record["id"], tokens["access_token"])
    items = acme.get("/api/items")
    assert "Widget" in items.text and "Strict-Transport-Security" in items.headers
    assert acme.get("/api/whoami").json == {"user": record["id"], "scopes": "items:read"}
    denied = acme.post_json("/api/items", {"name": "x"}, status=403)
    assert 'scope="items:write"' in denied.headers["WWW-Authenticate"]
    renewed = app.post("/oauth/token", {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
                       headers=basic(record["id"], secret)).json
    acme.get("/api/items", headers=bearer(renewed["access_token"]))
    app.post("/oauth/revoke", {"token": renewed["refresh_token"]}, headers=basic(record["id"], secret))
    # Signed, so the refusal is token_auth's: the revoked bearer token itself.
    gone = acme.get("/api/items", headers=bearer(renewed["access_token"]), status=401)
    assert 'error="invalid_token"' in gone.headers["WWW-Authenticate"]


def test_example_user_token_reaches_the_flask_app(example, partner):
    app, layer = example
    record, _secret = layer.registry.create("Acme", scopes=["items:read"])
    tokens = layer.issue_token(record["id"], user="alice")
    assert_bearer_alone_is_refused(app, tokens["access_token"], "/api/whoami")
    assert partner(record["id"], tokens["access_token"]).get("/api/whoami").json["user"] == "alice"


def test_example_plain_http_token_is_revoked_by_the_https_layer(example):
    app, layer = example
    record, _secret = layer.registry.create("Acme", scopes=["items:read"])
    token = layer.issue_token(record["id"])["access_token"]
    app.get("/api/items", headers=bearer(token), extra_environ={"HTTP_X_FORWARDED_PROTO": "http"}, status=403)
    app.get("/api/items", headers=bearer(token), status=401)
