"""The WSGI helpers every layer relies on."""

import io

import pytest

from wsgisec.wsgi import BodyTooLarge, ClosingIterator, read_body, remove_headers, set_header


class Inner:
    def __init__(self):
        self.closed = False

    def __iter__(self):
        return iter([b"a", b"b"])

    def close(self):
        self.closed = True
        raise RuntimeError("inner close failed")


def test_closing_iterator_runs_callbacks_even_if_inner_close_raises():
    calls = []
    inner = Inner()
    iterator = ClosingIterator(inner, lambda: calls.append("cleanup"))
    assert list(iterator) == [b"a", b"b"]
    with pytest.raises(RuntimeError):
        iterator.close()
    assert inner.closed and calls == ["cleanup"]


def test_closing_iterator_closes_on_early_disconnect():
    inner = Inner()
    iterator = ClosingIterator(inner, chunks=(chunk.upper() for chunk in inner))
    assert next(iterator) == b"A"
    with pytest.raises(RuntimeError):
        iterator.close()
    assert inner.closed


def environ(body, length=True, chunked=False):
    env = {"wsgi.input": io.BytesIO(body)}
    if length:
        env["CONTENT_LENGTH"] = str(len(body))
    if chunked:
        env["HTTP_TRANSFER_ENCODING"] = "chunked"
    return env


def test_read_body_is_bounded_and_rereadable():
    env = environ(b"hello")
    assert read_body(env, 10) == b"hello"
    assert env["wsgi.input"].read() == b"hello" and env["CONTENT_LENGTH"] == "5"


def test_read_body_refuses_by_content_length_without_reading():
    env = environ(b"x" * 100)
    with pytest.raises(BodyTooLarge):
        read_body(env, 10)
    assert env["wsgi.input"].tell() == 0


def test_read_body_limits_chunked_bodies_while_reading():
    with pytest.raises(BodyTooLarge):
        read_body(environ(b"x" * 100, length=False, chunked=True), 10)
    assert read_body(environ(b"x" * 5, length=False, chunked=True), 10) == b"x" * 5


@pytest.mark.parametrize("length", ["abc", "-1"])
def test_read_body_refuses_invalid_content_length(length):
    env = {"wsgi.input": io.BytesIO(b""), "CONTENT_LENGTH": length}
    with pytest.raises(ValueError):
        read_body(env, 10)


def test_header_helpers_are_case_insensitive():
    headers = [("Content-Type", "text/plain"), ("ETag", '"1"'), ("etag", '"2"')]
    set_header(headers, "content-type", "text/html")
    remove_headers(headers, ["ETAG"])
    assert headers == [("content-type", "text/html")]
