"""https: redirect or refuse plain HTTP, HSTS, trusted proxies, allowed hosts, cookies."""

import json

import pytest
from webtest import TestApp

from conftest import validated
from wsgisec import credentials
from wsgisec.https import HTTPSOnly, filter_factory
from wsgisec.settings import ConfigurationError, cidrs


def app_with_cookies(environ, start_response):
    start_response("200 OK", [
        ("Content-Type", "application/json"),
        ("Set-Cookie", "session=abc; Path=/"),
        ("Set-Cookie", "prefs=dark; Path=/; SameSite=Strict; Secure"),
        ("Set-Cookie", "js_visible=1; Path=/"),
    ])
    seen = {key: environ.get(key) for key in ("wsgi.url_scheme", "HTTP_HOST", "REMOTE_ADDR",
                                               "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_FOR")}
    return [json.dumps(seen).encode()]


def make(store=None, **kw):
    kw.setdefault("allowed_hosts", ("api.example.com", "localhost"))
    return TestApp(validated(HTTPSOnly(app_with_cookies, store=store, **kw)),
                   extra_environ={"HTTP_HOST": "api.example.com", "REMOTE_ADDR": "203.0.113.9"})


HTTPS = {"wsgi.url_scheme": "https"}


@pytest.mark.parametrize("path, location", [
    pytest.param("/api/items", "https://api.example.com/api/items", id="path"),
    pytest.param("/api/items?q=a%20b&x=1", "https://api.example.com/api/items?q=a%20b&x=1", id="query-kept"),
    pytest.param("/a%2Fb/caf%C3%A9", "https://api.example.com/a/b/caf%C3%A9", id="path-requoted"),
    pytest.param("//evil.example/x", "https://api.example.com//evil.example/x", id="no-open-redirect"),
])
def test_plain_get_is_redirected_preserving_path_and_query(path, location):
    response = make().get(path, status=301)
    assert response.headers["Location"] == location


def test_head_is_redirected_and_308_is_configurable():
    response = make(redirect_status=308).head("/x", status=308)
    assert response.headers["Location"] == "https://api.example.com/x"


def test_redirect_to_a_non_default_port():
    response = make(https_port=8443).get("/x", status=301)
    assert response.headers["Location"] == "https://api.example.com:8443/x"


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_unsafe_plain_http_is_refused_not_redirected(method):
    response = make().request("/api/items", method=method, body=b"{}", status=403,
                              headers={"Content-Type": "application/json"})
    assert "Location" not in response.headers
    assert response.json["status"] == 403 and response.json["incident_id"] == response.headers["X-Incident-Id"]


def test_redirect_off_refuses_get_too():
    make(redirect=False).get("/x", status=403)


def test_bearer_token_over_plain_http_is_revoked_and_reported(store, caplog):
    token = credentials.new_token()
    store.put(credentials.TOKENS, credentials.digest(token), {"client_id": "c1"}, ttl=600)
    response = make(store=store).get("/api/items", headers={"Authorization": f"Bearer {token}"}, status=403)
    assert store.get(credentials.TOKENS, credentials.digest(token)) is None
    [event] = store.events(kinds=["https.credentials-over-plaintext"])
    assert event["severity"] == "critical" and event["detail"]["token_revoked"] is True
    assert event["incident_id"] == response.json["incident_id"]
    assert token not in caplog.text and token not in json.dumps(event)


def test_request_token_header_over_plain_http_is_refused_and_reported(store):
    make(store=store).get("/x", headers={"X-Request-Token": "anything"}, status=403)
    [event] = store.events(kinds=["https.credentials-over-plaintext"])
    assert event["detail"]["headers"] == "X-Request-Token"


def test_https_response_gets_hsts_and_passes_through():
    response = make().get("/x", extra_environ=HTTPS, status=200)
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000"


@pytest.mark.parametrize("kw, header", [
    pytest.param({"hsts_max_age": 600}, "max-age=600", id="short"),
    pytest.param({"hsts_include_subdomains": True}, "max-age=31536000; includeSubDomains", id="subdomains"),
    pytest.param({"hsts_include_subdomains": True, "hsts_preload": True},
                 "max-age=31536000; includeSubDomains; preload", id="preload"),
])
def test_hsts_variants(kw, header):
    assert make(**kw).get("/x", extra_environ=HTTPS).headers["Strict-Transport-Security"] == header


def test_hsts_off_sends_nothing():
    assert "Strict-Transport-Security" not in make(hsts_max_age=0).get("/x", extra_environ=HTTPS).headers


@pytest.mark.parametrize("kw", [
    pytest.param({"hsts_preload": True, "hsts_include_subdomains": False}, id="no-subdomains"),
    pytest.param({"hsts_preload": True, "hsts_include_subdomains": True, "hsts_max_age": 86400}, id="short-age"),
])
def test_preload_requires_hstspreload_org_rules(kw):
    with pytest.raises(ConfigurationError, match="hstspreload.org"):
        HTTPSOnly(app_with_cookies, **kw)


def test_cookies_gain_secure_httponly_and_samesite():
    response = make(cookie_httponly_exempt=("js_visible",)).get("/x", extra_environ=HTTPS)
    cookies = response.headers.getall("Set-Cookie")
    assert cookies[0] == "session=abc; Path=/; Secure; HttpOnly; SameSite=Lax"
    assert cookies[1] == "prefs=dark; Path=/; SameSite=Strict; Secure; HttpOnly"
    assert cookies[2] == "js_visible=1; Path=/; Secure; SameSite=Lax"


def test_cookies_untouched_when_disabled():
    response = make(secure_cookies=False).get("/x", extra_environ=HTTPS)
    assert response.headers.getall("Set-Cookie")[0] == "session=abc; Path=/"


@pytest.mark.parametrize("host, allowed", [
    pytest.param("api.example.com", True, id="listed"),
    pytest.param("API.EXAMPLE.COM:443", True, id="case-and-port"),
    pytest.param("api.example.com.", True, id="trailing-dot"),
    pytest.param("evil.example", False, id="unlisted"),
    pytest.param("api.example.com@evil.example", False, id="userinfo-trick"),
    pytest.param("api.example.com/evil", False, id="path-in-host"),
])
def test_allowed_hosts(host, allowed):
    app = make()
    environ = dict(HTTPS, HTTP_HOST=host)
    if allowed:
        app.get("/x", extra_environ=environ, status=200)
    else:
        response = app.get("/x", extra_environ=environ, status=400)
        assert host.encode() not in response.body


def test_without_host_header_the_server_name_is_checked():
    """HTTP/1.0 requests have no Host; PEP 3333 URL reconstruction uses SERVER_NAME."""
    layer = HTTPSOnly(app_with_cookies, allowed_hosts=("localhost",))
    for server_name, expected in (("localhost", "200 OK"), ("internal-7", "400 Bad Request")):
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/x", "SERVER_NAME": server_name,
                   "SERVER_PORT": "443", "wsgi.url_scheme": "https"}
        statuses = []
        layer(environ, lambda status, headers, exc_info=None: statuses.append(status))
        assert statuses == [expected]


def test_allowed_hosts_wildcards():
    app = make(allowed_hosts=(".example.com",))
    app.get("/x", extra_environ=dict(HTTPS, HTTP_HOST="a.b.example.com"), status=200)
    app.get("/x", extra_environ=dict(HTTPS, HTTP_HOST="example.com"), status=200)
    app.get("/x", extra_environ=dict(HTTPS, HTTP_HOST="badexample.com"), status=400)
    make(allowed_hosts=("*",)).get("/x", extra_environ=dict(HTTPS, HTTP_HOST="anything.test"), status=200)


def test_ipv6_host():
    make(allowed_hosts=("[::1]",)).get("/x", extra_environ=dict(HTTPS, HTTP_HOST="[::1]:8080"), status=200)


def test_forwarded_headers_from_untrusted_clients_are_ignored_and_removed():
    app = make(trusted_proxies=cidrs("10.0.0.0/8"))
    response = app.get("/x", headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "1.2.3.4"}, status=301)
    assert response.headers["Location"].startswith("https://")  # still treated as plain HTTP
    seen = app.get("/x", extra_environ=HTTPS, headers={"X-Forwarded-For": "1.2.3.4"}).json
    assert seen["HTTP_X_FORWARDED_FOR"] is None and seen["REMOTE_ADDR"] == "203.0.113.9"


def test_x_forwarded_from_a_trusted_proxy_counts_hops_from_the_right():
    app = make(trusted_proxies=cidrs("10.0.0.0/8"))
    seen = app.get("/x", extra_environ={"REMOTE_ADDR": "10.1.2.3"}, headers={
        "X-Forwarded-Proto": "https", "X-Forwarded-For": "6.6.6.6, 198.51.100.7, 10.9.9.9",
        "X-Forwarded-Host": "api.example.com"}).json
    assert seen["wsgi.url_scheme"] == "https"
    assert seen["REMOTE_ADDR"] == "198.51.100.7"  # not the client-written leftmost entry


def test_rfc7239_forwarded_from_a_trusted_proxy():
    app = make(trusted_proxies=cidrs("10.0.0.0/8"))
    seen = app.get("/x", extra_environ={"REMOTE_ADDR": "10.1.2.3"}, headers={
        "Forwarded": 'for=192.0.2.60;proto=https;host="api.example.com", for=10.0.0.5'}).json
    assert seen["wsgi.url_scheme"] == "https" and seen["REMOTE_ADDR"] == "192.0.2.60"


def test_rfc7239_ipv6_node_with_port():
    app = make(trusted_proxies=cidrs("10.0.0.0/8"))
    seen = app.get("/x", extra_environ={"REMOTE_ADDR": "10.1.2.3"}, headers={
        "Forwarded": 'for="[2001:db8:cafe::17]:4711";proto=https'}).json
    assert seen["REMOTE_ADDR"] == "2001:db8:cafe::17"


@pytest.mark.parametrize("host", ["https://api.example.com", "api.example.com:443", "api.example.com/x"])
def test_allowed_hosts_entries_must_be_host_names(host):
    with pytest.raises(ConfigurationError, match="not a host name"):
        HTTPSOnly(app_with_cookies, allowed_hosts=(host,))


def test_forwarded_host_is_still_checked_against_allowed_hosts():
    app = make(trusted_proxies=cidrs("10.0.0.0/8"))
    app.get("/x", extra_environ={"REMOTE_ADDR": "10.1.2.3"},
            headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"}, status=400)


def test_exempt_paths_are_served_over_plain_http():
    app = make(exempt_paths=("/healthz",))
    app.get("/healthz", status=200)
    app.get("/healthz/db", status=200)
    app.get("/healthzz", status=301)


def test_warnings_name_insecure_choices():
    layer = HTTPSOnly(app_with_cookies, hsts_max_age=0, redirect=False, allowed_hosts=("*",),
                      trusted_proxies=cidrs("0.0.0.0/0"))
    text = " ".join(layer.warnings())
    for expected in ("HSTS is off", "redirect is off", "allowed_hosts contains *", "0.0.0.0/0", "no store"):
        assert expected in text


def test_filter_factory_defaults_the_store_beside_the_ini(tmp_path):
    layer = filter_factory({"here": str(tmp_path)})(app_with_cookies)
    assert layer.store.url == "sqlite:///" + str(tmp_path / "wsgisec.sqlite")
    assert layer.settings["redirect_status"] == 301


# -- the redirect Location is rebuilt, never echoed (RFC 3986, issue 11) ----------------

def redirect_location(path_info, query=""):
    """The Location the layer answers a plain-HTTP GET with, from a raw environ (the way a
    lax server such as wsgiref hands over whatever bytes the client sent)."""
    layer = HTTPSOnly(app_with_cookies, allowed_hosts=("api.example.com",))
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path_info, "QUERY_STRING": query, "SCRIPT_NAME": "",
               "HTTP_HOST": "api.example.com", "wsgi.url_scheme": "http", "REMOTE_ADDR": "203.0.113.9",
               "SERVER_NAME": "api.example.com", "SERVER_PORT": "80"}
    seen = []
    body = layer(environ, lambda status, headers, exc_info=None: seen.append((status, dict(headers))))
    list(body)
    [(status, headers)] = seen
    assert status.startswith("301")
    return headers["Location"]


@pytest.mark.parametrize("path_info, query, location", [
    pytest.param("/a\r\nSet-Cookie: x=1", "", "https://api.example.com/a%0D%0ASet-Cookie:%20x=1", id="crlf-in-path"),
    pytest.param("/x", "q=1\r\nSet-Cookie:%20x", "https://api.example.com/x?q=1%0D%0ASet-Cookie:%20x",
                 id="crlf-in-query"),
    pytest.param("/x\x00\x1b\x7f", "", "https://api.example.com/x%00%1B%7F", id="controls-in-path"),
    pytest.param("/caf\xc3\xa9", "name=Jos\xc3\xa9", "https://api.example.com/caf%C3%A9?name=Jos%C3%A9",
                 id="non-ascii-bytes-as-pep3333-latin1"),
    pytest.param("/caf\u00e9\u2603", "", "https://api.example.com/caf%C3%A9%E2%98%83", id="non-latin1-from-a-lax-server"),
    pytest.param("/x\ud800", "q=\udcff", "https://api.example.com/x%ED%A0%80?q=%ED%B3%BF", id="lone-surrogates"),
    pytest.param("/x", "q=100%&r=%41", "https://api.example.com/x?q=100%25&r=%41", id="stray-percent-kept-escapes"),
    pytest.param("/x", 'q=<script>"#frag', "https://api.example.com/x?q=%3Cscript%3E%22%23frag", id="delimiters"),
    pytest.param("/x", "q=1&&r=2", "https://api.example.com/x?q=1&r=2", id="empty-parts-dropped"),
])
def test_redirect_location_is_rebuilt_from_re_encoded_parts(path_info, query, location):
    found = redirect_location(path_info, query)
    assert found == location
    assert found.isascii() and not any(ord(ch) < 0x21 or ord(ch) == 0x7f for ch in found)


CONTROL_CHARACTERS = [chr(code) for code in range(0x20)] + ["\x7f"]


@pytest.mark.parametrize("where", ["path", "query"])
@pytest.mark.parametrize("control", CONTROL_CHARACTERS, ids=[f"0x{ord(c):02x}" for c in CONTROL_CHARACTERS])
def test_every_control_character_is_percent_encoded_in_the_location(control, where):
    """Each of 0x00-0x1f and 0x7f, in PATH_INFO and in QUERY_STRING (waitress passes
    \\x01, \\x0b and \\x7f through; lax servers pass CR/LF): the Location is rebuilt with
    the byte as %XX, so no control character reaches the header (issue 14)."""
    escaped = f"%{ord(control):02X}"
    if where == "path":
        found = redirect_location(f"/a{control}b", "")
        assert found == f"https://api.example.com/a{escaped}b"
    else:
        found = redirect_location("/x", f"q=a{control}b&r=1")
        assert found == f"https://api.example.com/x?q=a{escaped}b&r=1"
    assert not any(ord(ch) < 0x21 or ord(ch) == 0x7f for ch in found)


def test_redirect_location_never_carries_a_credential_parameter():
    from wsgisec.https import _requote_query

    assert _requote_query("a=1&access_token=t&refresh%5Ftoken=r&token=x&client_secret=s&b=2") == "a=1&b=2"


def test_trusted_proxy_answers_are_cached_per_address_and_bounded():
    from wsgisec import https

    # The https layer's proxy handling is wsgisec.proxies.ForwardedHeaders (issue 9).
    proxies = HTTPSOnly(app_with_cookies, allowed_hosts=("localhost",),
                        trusted_proxies=cidrs("10.0.0.0/8")).forwarded
    assert proxies.is_trusted("10.1.2.3") and proxies.is_trusted("10.1.2.3")
    assert not proxies.is_trusted("203.0.113.9") and not proxies.is_trusted("not-an-address")
    info = proxies._trusted.cache_info()
    assert info.hits == 1 and info.misses == 3 and info.maxsize == https.TRUST_CACHE_SIZE
    for n in range(https.TRUST_CACHE_SIZE + 50):  # addresses an attacker writes into X-Forwarded-For
        proxies.is_trusted(f"198.51.{n // 256}.{n % 256}")
    assert proxies._trusted.cache_info().currsize == https.TRUST_CACHE_SIZE


def test_credentials_in_clear_are_revoked_even_when_the_host_is_refused(store):
    token = credentials.new_token()
    store.put(credentials.TOKENS, credentials.digest(token), {"client_id": "c1", "type": "access"}, ttl=600)
    make(store=store).get("/x", headers={"Authorization": f"Bearer {token}"},
                          extra_environ={"HTTP_HOST": "evil.example"}, status=403)
    assert store.get(credentials.TOKENS, credentials.digest(token)) is None


def test_the_layers_own_refusal_over_tls_carries_hsts():
    response = make().get("/x", extra_environ=dict(HTTPS, HTTP_HOST="evil.example"), status=400)
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000"
    plain = make().get("/x", extra_environ={"HTTP_HOST": "evil.example"}, status=400)
    assert "Strict-Transport-Security" not in plain.headers  # RFC 6797 §7.2: never over plain HTTP
