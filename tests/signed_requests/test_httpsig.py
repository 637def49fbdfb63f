"""wsgisec.httpsig: RFC 8941 structured fields, RFC 9421 signature bases (checked against
the RFC's own test vectors), hmac-sha256 and RFC 9530 Content-Digest."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings, strategies as st

from wsgisec import httpsig
from wsgisec.httpsig import SignatureError, Token

# RFC 9421 Appendix B.1.5 "test-shared-secret" and the B.2 example request.
RFC_KEY = base64.b64decode("uzvJfB4u3N0Jy4T7NZ75MDVcr8zSTInedJtkgcu46YW4XByzNJjxBdtjUkdJPBtbmHhIDi6pcl8jsasjlTMtDQ==")
RFC_ENVIRON = {
    "REQUEST_METHOD": "POST", "PATH_INFO": "/foo", "QUERY_STRING": "param=Value&Pet=dog",
    "HTTP_HOST": "example.com", "wsgi.url_scheme": "https", "HTTP_DATE": "Tue, 20 Apr 2021 02:07:55 GMT",
    "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": "18",
    "HTTP_CONTENT_DIGEST": "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:",
}


def test_rfc9421_b25_hmac_sha256_vector():
    inputs = httpsig.parse_dictionary(
        'sig-b25=("date" "@authority" "content-type");created=1618884473;keyid="test-shared-secret"')
    signatures = httpsig.parse_dictionary("sig-b25=:pxcQw6G3AjtMBQjwo8XzkZf/bws5LelbaMk5rGIGtE8=:")
    covered, params = inputs["sig-b25"]
    base = httpsig.signature_base(httpsig.environ_components(RFC_ENVIRON), covered, params)
    assert base.decode() == (
        '"date": Tue, 20 Apr 2021 02:07:55 GMT\n'
        '"@authority": example.com\n'
        '"content-type": application/json\n'
        '"@signature-params": ("date" "@authority" "content-type");created=1618884473;keyid="test-shared-secret"')
    assert httpsig.verify_hmac_sha256(RFC_KEY, base, signatures["sig-b25"][0])
    assert not httpsig.verify_hmac_sha256(RFC_KEY[:-1], base, signatures["sig-b25"][0])


def test_rfc9530_content_digest_vectors():
    body = b'{"hello": "world"}'
    assert httpsig.content_digest(body) == "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"
    assert httpsig.content_digest(body, "sha-512") == RFC_ENVIRON["HTTP_CONTENT_DIGEST"]
    assert httpsig.check_content_digest(RFC_ENVIRON["HTTP_CONTENT_DIGEST"], body)
    assert not httpsig.check_content_digest(RFC_ENVIRON["HTTP_CONTENT_DIGEST"], body + b" ")


@pytest.mark.parametrize("value, body, expected", [
    pytest.param("sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:, unixsum=:AAAA:",
                 b'{"hello": "world"}', True, id="unknown-member-ignored"),
    pytest.param("md5=:AAAA:", b"", False, id="only-unknown-algorithms"),
    pytest.param("sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:, sha-512=:AAAA:",
                 b'{"hello": "world"}', False, id="one-known-member-wrong"),
    pytest.param("sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:", b"", True, id="empty-content"),
])
def test_check_content_digest(value, body, expected):
    assert httpsig.check_content_digest(value, body) is expected


@pytest.mark.parametrize("value", [
    pytest.param('sha-256="text"', id="string-not-bytes"),
    pytest.param("sha-256=:not base64!:", id="bad-base64"),
])
def test_malformed_content_digest(value):
    with pytest.raises(SignatureError):
        httpsig.check_content_digest(value, b"")


# RFC 9421 §2.2: "POST /path?param=value HTTP/1.1" to www.example.com over https.
@pytest.mark.parametrize("name, value", [
    ("@method", "POST"),
    ("@target-uri", "https://www.example.com/path?param=value"),
    ("@authority", "www.example.com"),
    ("@scheme", "https"),
    ("@request-target", "/path?param=value"),
    ("@path", "/path"),
    ("@query", "?param=value"),
])
def test_rfc9421_derived_components(name, value):
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/path", "QUERY_STRING": "param=value",
               "HTTP_HOST": "www.example.com", "wsgi.url_scheme": "https"}
    assert httpsig.environ_components(environ).value(name) == value
    assert httpsig.url_components("POST", "https://www.example.com/path?param=value", {}).value(name) == value


@pytest.mark.parametrize("environ, name, value", [
    pytest.param({"QUERY_STRING": ""}, "@query", "?", id="no-query-is-question-mark"),
    pytest.param({"QUERY_STRING": "queryString"}, "@query", "?queryString", id="query"),
    pytest.param({"HTTP_HOST": "Example.COM:443"}, "@authority", "example.com", id="default-port-dropped"),
    pytest.param({"HTTP_HOST": "example.com:8443"}, "@authority", "example.com:8443", id="other-port-kept"),
    pytest.param({"HTTP_HOST": "[::1]:443"}, "@authority", "[::1]", id="ipv6-default-port"),
    pytest.param({"HTTP_HOST": "[::1]"}, "@authority", "[::1]", id="ipv6-no-port"),
    pytest.param({"PATH_INFO": "/a b/caf\xc3\xa9"}, "@path", "/a%20b/caf%C3%A9", id="path-requoted"),
    pytest.param({"PATH_INFO": "/50%"}, "@path", "/50%25", id="percent-requoted"),
    pytest.param({"PATH_INFO": "/decoded", "REQUEST_URI": "/raw%2Fslash?x=1"}, "@path", "/raw%2Fslash",
                 id="raw-request-uri-wins"),
    pytest.param({"PATH_INFO": "/a", "REQUEST_URI": "http://proxy.example/a?b"}, "@path", "/a",
                 id="absolute-form"),
    pytest.param({"SCRIPT_NAME": "/api", "PATH_INFO": "/items"}, "@path", "/api/items", id="script-name"),
    pytest.param({"PATH_INFO": ""}, "@path", "/", id="empty-path"),
])
def test_environ_component_edge_cases(environ, name, value):
    base = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "HTTP_HOST": "example.com", "wsgi.url_scheme": "https"}
    assert httpsig.environ_components(dict(base, **environ)).value(name) == value


def test_header_components_and_missing_header():
    components = httpsig.environ_components(dict(RFC_ENVIRON, HTTP_X_LIST="  a, b  "))
    assert components.value("x-list") == "a, b"
    assert components.value("content-length") == "18"
    with pytest.raises(SignatureError, match="missing"):
        components.value("x-absent")
    with pytest.raises(SignatureError):
        components.value("@status")


@pytest.mark.parametrize("covered", [
    pytest.param([("@method", {}), ("@method", {})], id="repeated"),
    pytest.param([("Date", {})], id="upper-case"),
    pytest.param([("content-digest", {"sf": True})], id="component-parameter"),
    pytest.param([(Token("date"), {})], id="token-not-string"),
    pytest.param([("@signature-params", {})], id="signature-params-covered"),
])
def test_bad_covered_components(covered):
    with pytest.raises(SignatureError):
        httpsig.signature_base(httpsig.environ_components(RFC_ENVIRON), covered, {})


def test_newline_in_header_value_is_refused():
    with pytest.raises(SignatureError):
        httpsig.signature_base(httpsig.environ_components(dict(RFC_ENVIRON, HTTP_X_A="a\nb")),
                               [("x-a", {})], {})


# -- RFC 8941 --------------------------------------------------------------------------

def test_parse_dictionary_types():
    parsed = httpsig.parse_dictionary('a=1, b="x\\"y", c=tok/en, d=:AQI=:, e=?0, f, g=("x" "y");p=2;q, h=-1.5')
    assert parsed["a"] == (1, {})
    assert parsed["b"] == ('x"y', {})
    assert parsed["c"] == ("tok/en", {}) and isinstance(parsed["c"][0], Token)
    assert parsed["d"] == (b"\x01\x02", {})
    assert parsed["e"] == (False, {})
    assert parsed["f"] == (True, {})
    assert parsed["g"] == ([("x", {}), ("y", {})], {"p": 2, "q": True})
    assert parsed["h"] == (-1.5, {})


@pytest.mark.parametrize("text", [
    pytest.param('a=1, a=2', id="duplicate-key"),
    pytest.param('a=("x"', id="unterminated-inner-list"),
    pytest.param('a="x', id="unterminated-string"),
    pytest.param('a="\\n"', id="bad-escape"),
    pytest.param('A=1', id="upper-case-key"),
    pytest.param('a=1,', id="trailing-comma"),
    pytest.param('a=1 b=2', id="missing-comma"),
    pytest.param('a=:abc', id="unterminated-bytes"),
    pytest.param('a=?2', id="bad-boolean"),
    pytest.param('a=1234567890123456', id="integer-too-long"),
    pytest.param('a="caf\u00e9"', id="non-ascii"),
    pytest.param('a=' + '"x"' * 3000, id="too-long"),
    pytest.param('a=("x""y")', id="no-space-in-inner-list"),
])
def test_parse_dictionary_refuses(text):
    with pytest.raises(SignatureError):
        httpsig.parse_dictionary(text)


def test_empty_field_is_an_empty_dictionary():
    assert httpsig.parse_dictionary("  ") == {}


@settings(max_examples=150, deadline=None)
@given(
    names=st.lists(st.text(alphabet="abcdefghijklmnopqrstuvwxyz-@", min_size=1, max_size=12),
                   max_size=6, unique=True),
    created=st.integers(min_value=0, max_value=10**12),
    keyid=st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30),
    flag=st.booleans(),
)
def test_inner_list_round_trip(names, created, keyid, flag):
    params = {"created": created, "keyid": keyid}
    if flag:
        params["flag"] = True
    text = "sig=" + httpsig.serialize_inner_list([(name, {}) for name in names], params)
    parsed = httpsig.parse_dictionary(text)
    assert parsed["sig"] == ([(name, {}) for name in names], params)
    assert httpsig.serialize_dictionary(parsed) == text


@settings(max_examples=100, deadline=None)
@given(path=st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=255, blacklist_characters="?#"),
                    max_size=30),
       query=st.one_of(st.none(), st.text(alphabet="abcxyz=&%20", max_size=20)))
def test_signer_and_verifier_views_agree(path, query):
    """What a client signs from the URL is what the server rebuilds from the environ."""
    from urllib.parse import quote

    path = "/" + path
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "HTTP_HOST": "api.example.com",
               "wsgi.url_scheme": "https", "QUERY_STRING": query or ""}
    url = "https://api.example.com" + quote(path.encode("latin-1"), safe="/:@!$&'()*+,;=-._~") + (
        "?" + query if query else "")
    server, client = httpsig.environ_components(environ), httpsig.url_components("GET", url, {})
    for name in ("@path", "@query", "@authority", "@target-uri", "@request-target"):
        assert server.value(name) == client.value(name), name


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(list('abc09=;,()": ?*-.:/+\\\t@') + ["sig1", "AQID", "é", '"x"', "=:"]),
                max_size=40).map("".join))
def test_parser_only_ever_raises_signature_error(text):
    """Hostile header text: a clear refusal (SignatureError -> 401), never a 500."""
    try:
        httpsig.parse_dictionary(text)
    except SignatureError:
        pass
