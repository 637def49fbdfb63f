"""wsgisec.held: the one held-response helper (issue 9) keeps the PEP 3333 rules."""

from __future__ import annotations

import sys

import pytest
from webtest import TestApp

from conftest import validated
from wsgisec.held import HeldResponse, replaced_headers


class Server:
    def __init__(self):
        self.calls = []
        self.written = []

    def start_response(self, status, headers, exc_info=None):
        if self.calls and exc_info is not None:
            raise exc_info[1].with_traceback(exc_info[2])
        self.calls.append((status, list(headers), exc_info))
        return self.written.append


def error():
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        return sys.exc_info()


def test_exc_info_is_passed_on_to_the_server():
    server = Server()
    held = HeldResponse(server.start_response)
    info = error()
    held.hold("500 Internal Server Error", [("Content-Type", "text/plain")], info)
    held.send()
    assert server.calls == [("500 Internal Server Error", [("Content-Type", "text/plain")], info)]


def test_an_error_response_replaces_the_held_one_and_its_body():
    server = Server()
    held = HeldResponse(server.start_response)
    write = held.hold("200 OK", [("Content-Type", "text/html")])
    write(b"half a page")
    held.hold("500 Internal Server Error", [], error())
    assert held.status.startswith("500") and held.chunks == [] and held.size == 0
    assert server.calls == []  # nothing went out yet


def test_a_second_call_without_exc_info_is_refused():
    held = HeldResponse(Server().start_response)
    held.hold("200 OK", [])
    with pytest.raises(AssertionError):
        held.hold("200 OK", [])


def test_after_the_headers_went_out_the_server_re_raises():
    server = Server()
    held = HeldResponse(server.start_response)
    held.hold("200 OK", [])
    held.send()
    held.write(b"direct")
    assert server.written == [b"direct"]
    with pytest.raises(RuntimeError):
        held.hold("500 Internal Server Error", [], error())


def test_fill_stops_past_the_limit_and_leaves_the_rest():
    held = HeldResponse(Server().start_response)
    held.hold("200 OK", [])
    chunks = iter([b"a" * 10, b"", b"b" * 10, b"c" * 10, b"d"])
    assert held.fill(chunks, 15) is False
    assert held.size == 20 and list(chunks) == [b"c" * 10, b"d"]
    assert held.fill(iter([b"x"]), 100) is True


def test_one_rule_for_a_replaced_body():
    headers = [("Content-Type", "text/html"), ("Content-Length", "3"), ("ETag", '"x"'),
               ("Digest", "sha-256=..."), ("Vary", "Cookie")]
    assert replaced_headers(headers, b"12345") == [("Content-Type", "text/html"), ("Vary", "Cookie"),
                                                   ("Content-Length", "5")]
    assert replaced_headers(headers, None) == [("Content-Type", "text/html"), ("Vary", "Cookie")]
    server = Server()
    held = HeldResponse(server.start_response)
    held.hold("200 OK", headers)
    original = b"abc"
    held.send_body(original, original)  # unchanged: headers kept
    assert server.calls[0][1] == headers


@pytest.mark.parametrize("layer", ["escaping", "csrf", "error_masker"])
def test_each_layer_passes_exc_info_on(layer):
    """An app that starts over with exc_info gets its error response through each layer."""
    from wsgisec.errors import ErrorMasker
    from wsgisec.escaping import Escaping
    from wsgisec.signed_requests.csrf import BrowserCSRF

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/html")])
        try:
            raise ValueError("late")
        except ValueError:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")], sys.exc_info())
        return [b"try later"]

    wrap = {"escaping": lambda a: Escaping(a), "csrf": lambda a: BrowserCSRF(a, secret_keys=(b"k" * 32,)),
            "error_masker": lambda a: ErrorMasker(a)}[layer]
    response = TestApp(validated(wrap(app))).get("/?q=%3Cscript%3E", expect_errors=True)
    assert response.status_int == 503
