"""The WSGI helpers every layer relies on."""

import io

import pytest

from wsgisec.wsgi import (BodyTooLarge, ClosingIterator, content_length, has_body, has_content, read_body, remove_headers,
                          replace_body, set_header)


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


@pytest.mark.parametrize("length", ["abc", "-1", "+5", "1_0", "5 5", "\u00b2", "\u0665", "0x10"])
def test_read_body_refuses_invalid_content_length(length):
    """RFC 9110 §8.6 ``1*DIGIT`` only: int() would take a sign, ``_``, Unicode digits."""
    env = {"wsgi.input": io.BytesIO(b""), "CONTENT_LENGTH": length}
    with pytest.raises(ValueError):
        read_body(env, 10)


@pytest.mark.parametrize("length, expected", [(None, None), ("", None), (" 12 ", 12), ("0", 0), ("007", 7)])
def test_content_length_reads_the_header_as_digits(length, expected):
    env = {} if length is None else {"CONTENT_LENGTH": length}
    assert content_length(env) == expected


class _ReadOnce(io.BytesIO):
    """A wsgi.input that fails the test if the body is read from the network twice."""

    reads = 0

    def read(self, *args):
        type(self).reads += 1
        return super().read(*args)


def test_read_body_reads_the_network_once_and_later_layers_share_the_bytes():
    env = {"wsgi.input": _ReadOnce(b"hello"), "CONTENT_LENGTH": "5"}
    first = read_body(env, 10)
    env["wsgi.input"].read()  # the app (or a layer) consumed the re-readable copy
    second = read_body(env, 10)
    assert first == second == b"hello"
    assert second is first  # the same bytes object, not a copy
    assert _ReadOnce.reads == 1
    assert env["wsgi.input"].read() == b"hello"  # rewound for the next reader


def test_cached_body_still_honours_a_smaller_limit():
    env = environ(b"x" * 50)
    read_body(env, 100)
    with pytest.raises(BodyTooLarge):
        read_body(env, 10)


def test_a_rewritten_body_is_what_later_readers_get():
    env = environ(b"name=<b>x</b>")
    read_body(env, 100)
    replace_body(env, b"name=x")
    assert read_body(env, 100) == b"name=x"
    assert env["CONTENT_LENGTH"] == "6"


def test_a_replaced_wsgi_input_is_read_afresh():
    env = environ(b"old")
    read_body(env, 100)
    env["wsgi.input"], env["CONTENT_LENGTH"] = io.BytesIO(b"newer"), "5"
    assert read_body(env, 100) == b"newer"


@pytest.mark.parametrize("env, expected", [
    ({}, False),
    ({"CONTENT_LENGTH": ""}, False),
    ({"CONTENT_LENGTH": "0"}, False),
    ({"CONTENT_LENGTH": "12"}, True),
    ({"CONTENT_LENGTH": "abc"}, True),  # malformed: the reader answers 400, nobody skips it
    ({"HTTP_TRANSFER_ENCODING": "chunked"}, True),
    ({"wsgi.input_terminated": True}, True),  # gunicorn/waitress, length-less body
])
def test_has_body_is_one_rule_for_every_layer(env, expected):
    assert has_body(env) is expected


def test_header_helpers_are_case_insensitive():
    headers = [("Content-Type", "text/plain"), ("ETag", '"1"'), ("etag", '"2"')]
    set_header(headers, "content-type", "text/html")
    remove_headers(headers, ["ETAG"])
    assert headers == [("content-type", "text/html")]


def test_has_content_reads_only_when_the_server_alone_says_there_may_be_a_body():
    waitress_get = {"wsgi.input": io.BytesIO(b""), "wsgi.input_terminated": True}
    assert has_content(waitress_get, 10) is False
    length_less = {"wsgi.input": io.BytesIO(b"data"), "wsgi.input_terminated": True}
    assert has_content(length_less, 10) is True
    assert read_body(length_less, 10) == b"data"  # cached for the app and later layers
    with pytest.raises(BodyTooLarge):
        has_content({"wsgi.input": io.BytesIO(b"x" * 20), "wsgi.input_terminated": True}, 10)
    assert has_content({"CONTENT_LENGTH": "3", "wsgi.input": _ReadOnce(b"abc")}, 10) is True
