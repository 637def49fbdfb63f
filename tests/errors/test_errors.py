"""error_masker: exceptions, 5xx bodies and leaking responses never reach the caller."""

import gzip
import logging
import sys

import pytest
from hypothesis import given, settings as hypothesis_settings, strategies as st
from webtest import TestApp

from conftest import ClosingBody, validated
from wsgisec.errors import ErrorMasker, find_leak
from wsgisec.responses import problem
from wsgisec.settings import ConfigurationError


def respond(status="200 OK", body=b"fine", content_type="text/plain; charset=utf-8", headers=()):
    def app(environ, start_response):
        start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))]
                       + list(headers))
        return [body]
    return app


def raises_before_start(environ, start_response):
    raise RuntimeError("db password is hunter2")


def raises_after_start_with_exc_info(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    try:
        raise ValueError("secret detail")
    except ValueError:
        start_response("500 Internal Server Error", [("Content-Type", "text/plain")], sys.exc_info())
        return [b"Traceback (most recent call last):\n  ValueError: secret detail"]


def lazy_generator_raises(environ, start_response):
    def body():
        start_response("200 OK", [("Content-Type", "text/plain")])
        raise KeyError("internal-key")
        yield b"never"
    return body()




def app_returning(iterable, content_type="application/octet-stream"):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", content_type)])
        return iterable
    return app


def masked(app, **kw):
    return TestApp(validated(ErrorMasker(app, **kw)))


def assert_generic(response, *forbidden):
    assert response.headers["Cache-Control"] == "no-store"
    incident = response.headers["X-Incident-Id"]
    assert incident in response.text
    for word in forbidden + ("Traceback", "File \""):
        assert word not in response.text


def test_exception_before_start_response_becomes_generic_500(caplog):
    caplog.set_level(logging.ERROR, "wsgisec")
    response = masked(raises_before_start).get("/x", status=500)
    assert response.content_type == "application/problem+json"
    assert_generic(response, "hunter2", "RuntimeError")
    # ... but the operator has it, under the same incident id
    incident = response.json["incident_id"]
    assert any(incident in record.getMessage() and record.exc_info for record in caplog.records)


def test_exc_info_replacement_is_masked():
    response = masked(raises_after_start_with_exc_info).get("/x", status=500)
    assert_generic(response, "secret detail", "ValueError")


def test_exception_raised_by_a_lazy_generator_is_masked():
    assert_generic(masked(lazy_generator_raises).get("/x", status=500), "internal-key")


def test_exception_while_streaming_ends_the_body_without_a_trace(caplog):
    caplog.set_level(logging.ERROR, "wsgisec")
    inner = ClosingBody([b"part one,", b"part two,", b"three"], fail_after=2)
    response = masked(app_returning(inner)).get("/download", status=200)
    assert response.body == b"part one,part two,"
    assert inner.closed
    assert "body-aborted" in caplog.text


@pytest.mark.parametrize("accept, content_type", [
    pytest.param(None, "application/problem+json", id="default-json"),
    pytest.param("text/html", "text/html", id="html"),
    pytest.param("text/plain", "text/plain", id="text"),
    pytest.param("application/json", "application/problem+json", id="json"),
])
def test_5xx_body_is_replaced_in_the_callers_format(accept, content_type):
    app = respond("500 Internal Server Error", b"<h1>KeyError at /api: 'DATABASE_URL'</h1>", "text/html")
    headers = {"Accept": accept} if accept else {}
    response = masked(app).get("/api", headers=headers, status=500)
    assert response.content_type == content_type
    assert_generic(response, "DATABASE_URL", "KeyError")


def test_5xx_keeps_status_and_retry_after():
    app = respond("503 Service Unavailable", b"maintenance on db-7.internal", headers=[("Retry-After", "120")])
    response = masked(app).get("/x", status=503)
    assert response.headers["Retry-After"] == "120"
    assert_generic(response, "db-7.internal")


def test_our_own_5xx_with_this_requests_incident_id_passes_unchanged():
    def store_down(environ, start_response):
        return problem(environ, 503, "Try again later.")(environ, start_response)

    response = masked(store_down).get("/x", status=503)
    assert response.json["detail"] == "Try again later."
    assert response.json["incident_id"] == response.headers["X-Incident-Id"]


def test_app_cannot_smuggle_a_5xx_by_faking_an_incident_header():
    app = respond("500 Internal Server Error", b"Traceback (most recent call last):",
                  headers=[("X-Incident-Id", "0000")])
    assert_generic(masked(app).get("/x", status=500))


LEAKS = [
    pytest.param(b'Traceback (most recent call last):\n  File "/srv/app/views.py", line 42, in get', "python-traceback",
                 id="python-traceback"),
    pytest.param(b'{"error": "  File \\"/srv/app.py\\", line 9, in lookup"}', "python-traceback", id="traceback-in-json"),
    pytest.param(b"<title>Werkzeug Debugger</title>", "werkzeug-debugger", id="werkzeug"),
    pytest.param(b"You're seeing this error because you have <code>DEBUG = True</code> in your Django settings",
                 "django-debug", id="django"),
    pytest.param(b"<h2>Traceback:</h2><pre>...</pre>", "bottle-debug", id="bottle"),
    pytest.param(b"pyramid_debugtoolbar", "pyramid-debug", id="pyramid"),
    pytest.param(b"sqlite3.OperationalError: no such table: users", "sqlite-error", id="sqlite"),
    pytest.param(b'near "\'": syntax error', "sqlite-error", id="sqlite-near"),
    pytest.param(b'ERROR:  syntax error at or near "OR"', "postgresql-error", id="postgres"),
    pytest.param(b"psycopg2.errors.UndefinedTable: relation", "postgresql-error", id="psycopg2"),
    pytest.param(b"You have an error in your SQL syntax; check the manual that corresponds to your MySQL",
                 "mysql-error", id="mysql"),
    pytest.param(b"SQLSTATE[42000]: Syntax error", "mysql-error", id="sqlstate"),
    pytest.param(b"ORA-00933: SQL command not properly ended", "oracle-error", id="oracle"),
    pytest.param(b"Unclosed quotation mark after the character string ''.", "mssql-error", id="mssql"),
    pytest.param(b"sqlalchemy.exc.ProgrammingError", "sqlalchemy-error", id="sqlalchemy"),
    pytest.param(b"Exception in thread \"main\" java.lang.NullPointerException", "java-trace", id="java"),
    pytest.param(b"<b>Fatal error</b>: Uncaught Error in /var/www/x.php on line <b>3</b>", "php-error", id="php"),
    pytest.param(b"/usr/lib/python3/dist-packages/flask/app.py", "server-path", id="path"),
]


@pytest.mark.parametrize("body, kind", LEAKS)
def test_find_leak(body, kind):
    assert find_leak(body) == kind


@pytest.mark.parametrize("body, kind", LEAKS)
def test_every_leak_kind_passes_the_fast_prefilter(body, kind):
    from wsgisec.errors import _NEEDLES

    assert any(needle in body for needle in _NEEDLES)


@pytest.mark.parametrize("body", [
    pytest.param(b'{"items": [{"id": 1, "name": "Widget"}]}', id="json"),
    pytest.param(b"<p>Our file format: see the docs. Select the error you see from the list.</p>", id="prose"),
    pytest.param(b"SELECT your plan; the ORA-level tier costs more", id="sql-words"),
    pytest.param(b"Error: not found", id="plain-error"),
])
def test_ordinary_bodies_are_not_leaks(body):
    assert find_leak(body) is None


@pytest.mark.parametrize("body, kind", LEAKS)
def test_leaking_200_becomes_a_generic_500(body, kind, caplog):
    caplog.set_level(logging.ERROR, "wsgisec")
    response = masked(respond(body=body, content_type="text/html")).get("/x", status=500)
    assert_generic(response)
    assert f'"leak":"{kind}"' in caplog.text


def test_mask_leaks_5xx_leaves_successful_responses_alone():
    body = b"sqlite3.OperationalError: no such table: users"
    assert masked(respond(body=body), mask_leaks="5xx").get("/x", status=200).body == body


def test_binary_and_compressed_bodies_are_not_scanned():
    body = b"Traceback (most recent call last):"
    assert masked(respond(body=body, content_type="image/png")).get("/x").body == body
    gz = respond(body=gzip.compress(body), content_type="text/html", headers=[("Content-Encoding", "gzip")])
    assert masked(gz).get("/x").body == body  # WebTest decodes it


def test_a_leak_beyond_max_scan_size_is_not_held_back():
    chunks = [b"a" * 1024] * 8 + [b"Traceback (most recent call last):"]
    inner = ClosingBody(chunks)
    response = masked(app_returning(inner, "text/plain"), max_scan_size=2048).get("/big", status=200)
    assert response.body == b"".join(chunks)
    assert inner.closed


def test_a_leak_within_the_scanned_prefix_of_a_large_body_is_masked():
    inner = ClosingBody([b"Traceback (most recent call last):\n"] + [b"x" * 1024] * 8)
    masked(app_returning(inner, "text/plain"), max_scan_size=2048).get("/big", status=500)
    assert inner.closed


@pytest.mark.parametrize("header", ["Server", "X-Powered-By", "X-AspNet-Version", "X-Runtime"])
def test_fingerprinting_headers_are_removed(header):
    response = masked(respond(headers=[(header, "Thing/1.2.3")])).get("/x")
    assert header not in response.headers


def test_passing_response_is_byte_identical_and_iterable_closed():
    inner = ClosingBody([b'{"a": ', b"1}"])
    response = masked(app_returning(inner, "application/json")).get("/x")
    assert response.body == b'{"a": 1}' and inner.closed


def test_legacy_write_callable_is_supported():
    def writer(environ, start_response):
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written, ")
        return [b"returned"]

    assert masked(writer).get("/x").body == b"written, returned"


def test_debug_shows_the_traceback_and_is_warned_about():
    layer = ErrorMasker(raises_before_start, debug=True)
    response = TestApp(layer).get("/x", status=500, expect_errors=True)
    assert "RuntimeError" in response.text and "Traceback" in response.text
    assert layer.warnings() and "debug" in layer.warnings()[0]


def test_extra_leak_patterns():
    app = respond(body=b"connect to db-prod-7.corp.internal failed")
    masked(app, extra_leak_patterns=(r"\.corp\.internal",)).get("/x", status=500)
    with pytest.raises(ConfigurationError):
        ErrorMasker(app, extra_leak_patterns=("(unclosed",))


def test_head_request_of_a_masked_error_has_no_body():
    response = masked(respond("500 Internal Server Error", b"boom")).head("/x", status=500)
    assert response.body == b""


def test_masking_events_reach_the_store(store):
    response = masked(raises_before_start, store=store).get("/x", status=500)
    [event] = store.events(kinds=["error_masker.exception-masked"])
    assert event["incident_id"] == response.json["incident_id"]
    assert event["path"] == "/x" and "hunter2" not in str(event)


# -- the one-pass leak scan (issue 13) ------------------------------------------------

ORDINARY = (b'<tr><td><a href="/items/7" title="Item &quot;7&quot;">Item number 7</a></td>'
            b"<td>No errors; debug off. Exceptions: none.</td></tr>\n") * 800  # ~100 KB


@pytest.mark.parametrize("body, kind", LEAKS)
def test_leak_is_found_anywhere_in_a_large_ordinary_page(body, kind):
    """The anchor scan confirms each hit in a window: a leak deep in a big page is found."""
    for page in (body + ORDINARY, ORDINARY + body, ORDINARY + body + ORDINARY):
        assert find_leak(page) == kind
    assert find_leak(ORDINARY) is None


FRAGMENTS = [sample.values[0] for sample in LEAKS] + [
    b"Traceback", b"File ", b"x error", b"xist", b"no such ", b"table: ", b"column: ", b'"', b"'", b"\n",
    b"relation \"users\" does not exist", b"Error", b"error", b"&quot;", b" ", b"<b>", b"</b>: ", b"line ",
    b"\tat java.util(", b"/usr/", b"lib/python3", b"yError", b"Integrity", b"sqlite3.", b"42",
    # the scan translates rare lead bytes to NUL: real NULs and stray leads must not confuse it
    b"\x00", b"\x00raceback", b"T", b"q", b"x", b"_", b"no such table: t", b"quoted string"]


@hypothesis_settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=25))
def test_one_pass_scan_finds_what_the_reference_expression_finds(pieces):
    """Same detections as the single alternation of every pattern (the old slow scan)."""
    from wsgisec.errors import _LEAK_PATTERNS, _compile

    body = b"".join(pieces)
    reference = _compile(_LEAK_PATTERNS).search(body)
    found = find_leak(body)
    assert (found is None) == (reference is None)
