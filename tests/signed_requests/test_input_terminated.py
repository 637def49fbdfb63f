"""signed_requests honours ``wsgi.input_terminated`` (issue 9): a length-less body that a
server such as gunicorn or waitress hands over as an EOF-terminated input counts as a
body, so the Content-Digest rule applies to it; an empty one has nothing to protect."""

from __future__ import annotations

import pytest
from webtest import TestApp

from conftest import validated

from .test_signed_requests import creds, layer, make_layer, refusal, send, signed  # noqa: F401


def lengthless(app):
    """What such a server passes on: no CONTENT_LENGTH, an input that ends at EOF."""
    def server(environ, start_response):
        environ.pop("CONTENT_LENGTH", None)
        environ["wsgi.input_terminated"] = True
        return app(environ, start_response)
    return server


@pytest.fixture
def app(layer):  # noqa: F811
    return TestApp(lengthless(validated(layer)))


def test_a_lengthless_body_with_its_digest_passes_and_stays_readable(app, creds):  # noqa: F811
    response = send(app, signed(creds, body=b'{"name": "widget"}'))
    assert response.status_int == 200, response.text
    assert response.json["body"] == '{"name": "widget"}'


def test_a_lengthless_body_without_a_covered_digest_is_refused(app, creds):  # noqa: F811
    response = refusal(send(app, signed(creds, body=b'{"name": "widget"}', digest=False)), "signature-invalid")
    assert "content-digest" in response.json["detail"]


def test_a_lengthless_body_that_does_not_match_its_digest_is_refused(app, creds):  # noqa: F811
    method, path, headers, _body = signed(creds, body=b'{"name": "widget"}')
    refusal(send(app, (method, path, headers, b'{"name": "gadget"}')), "digest-mismatch")


def test_an_empty_lengthless_input_needs_no_digest(app, creds):  # noqa: F811
    """waitress sets wsgi.input_terminated on every request, a GET too."""
    response = send(app, signed(creds, "GET", "/items", b"", digest=False))
    assert response.status_int == 200, response.text


def test_a_lengthless_body_over_max_body_size_is_413(store, creds):  # noqa: F811
    app = TestApp(lengthless(validated(make_layer(store, max_body_size=16))))
    response = send(app, signed(creds, body=b"x" * 64))
    assert response.status_int == 413
