"""Property-based checks: whatever a client sends, our layers answer with a deliberate
status and never fail with a 500 of their own."""

from hypothesis import HealthCheck, given, settings, strategies as st
from webtest import TestApp

from conftest import validated
from wsgisec.errors import ErrorMasker, find_leak
from wsgisec.https import HTTPSOnly
from wsgisec.settings import cidrs


def ok(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


# Header values as a WSGI server would hand them over: latin-1 text without CR/LF.
header_text = st.text(st.characters(min_codepoint=32, max_codepoint=255, blacklist_characters="\r\n"),
                      max_size=80)
path_text = st.text(st.characters(min_codepoint=33, max_codepoint=255), max_size=60).map(lambda p: "/" + p)

LAYER = HTTPSOnly(ok, allowed_hosts=("api.example.com", ".example.org"),
                  trusted_proxies=cidrs("10.0.0.0/8"), store=None)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(host=header_text, forwarded=header_text, xff=header_text, proto=header_text,
       remote=st.sampled_from(["10.1.1.1", "203.0.113.5", "", "not-an-ip"]),
       scheme=st.sampled_from(["http", "https"]), method=st.sampled_from(["GET", "HEAD", "POST", "DELETE"]),
       path=path_text)
def test_https_layer_never_fails(host, forwarded, xff, proto, remote, scheme, method, path):
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "HTTP_HOST": host, "HTTP_FORWARDED": forwarded,
               "HTTP_X_FORWARDED_FOR": xff, "HTTP_X_FORWARDED_PROTO": proto, "REMOTE_ADDR": remote,
               "wsgi.url_scheme": scheme, "SERVER_NAME": "localhost", "SERVER_PORT": "80"}
    statuses = []
    body = LAYER(environ, lambda status, headers, exc_info=None: statuses.append(status))
    b"".join(body)
    assert statuses[0][:3] in {"200", "301", "400", "403"}
    if statuses[0].startswith("301"):
        assert environ["wsgi.url_scheme"] == "http"


@settings(max_examples=200)
@given(body=st.binary(max_size=2000))
def test_find_leak_never_fails_on_arbitrary_bytes(body):
    find_leak(body)


@settings(max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=500), status=st.sampled_from(["200 OK", "404 Not Found", "500 Internal Server Error"]))
def test_error_masker_answers_every_body_validly(body, status):
    def app(environ, start_response):
        start_response(status, [("Content-Type", "text/html")])
        return [body]

    response = TestApp(validated(ErrorMasker(app, store=None))).get("/", status="*")
    assert response.status_int in (200, 404, 500)
    if response.status_int == 500:
        assert "X-Incident-Id" in response.headers
