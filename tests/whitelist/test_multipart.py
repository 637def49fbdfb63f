"""wsgisec.multipart: the one strict multipart/form-data reader (RFC 7578), shared by the layers.

It lives in the shared layer (wsgisec/multipart.py); its tests sit with the whitelist, its
first user, until a tests/ folder for shared modules is agreed.
"""

import pytest

from wsgisec import multipart

B = b"xYz-42"


def body(*parts, preamble=b"", epilogue=b""):
    out = preamble
    for part in parts:
        out += b"--" + B + b"\r\n" + part + b"\r\n"
    return out + b"--" + B + b"--" + epilogue


FIELD = b'Content-Disposition: form-data; name="note"\r\n\r\nhello'
FILE = b'Content-Disposition: form-data; name="doc"; filename="r\xc3\xa9sum\xc3\xa9.pdf"\r\n' \
       b"Content-Type: application/pdf\r\n\r\n%PDF-\x00\xff"


def test_fields_and_files_are_read():
    found = list(multipart.parts(body(FIELD, FILE, preamble=b"ignored\r\n", epilogue=b"\r\nignored"), B, 10))
    assert [(p.name, p.filename, p.content) for p in found] == [
        ("note", None, b"hello"), ("doc", "résumé.pdf", b"%PDF-\x00\xff")]
    assert found[0].content_type == "text/plain" and found[1].content_type == "application/pdf"


def test_an_empty_field_and_a_quoted_boundary():
    params = multipart.parse_params('; boundary="xYz-42"')
    assert multipart.boundary(params) == B
    [part] = multipart.parts(body(b'Content-Disposition: form-data; name="x"\r\n\r\n'), B, 10)
    assert part.content == b""


@pytest.mark.parametrize("data, reason", [
    pytest.param(b"no delimiter at all", "is not a well-formed multipart body", id="no-delimiter"),
    pytest.param(body(FIELD)[:-2], "is not a well-formed multipart body", id="no-close-delimiter"),
    pytest.param(b"--" + B + b"\r\nno blank line\r\n--" + B + b"--", "is not a well-formed multipart body",
                 id="no-blank-line"),
    pytest.param(b"x--" + B + b"\r\n" + FIELD + b"\r\n--" + B + b"--", "is not a well-formed multipart body",
                 id="delimiter-not-at-line-start"),
    pytest.param(body(b"Content-Type: text/plain\r\n\r\nx"), "has a part without form-data disposition",
                 id="no-disposition"),
    pytest.param(body(b"Content-Disposition: attachment; name=x\r\n\r\nx"),
                 "has a part without form-data disposition", id="not-form-data"),
    pytest.param(body(b"Content-Disposition: form-data\r\n\r\nx"), "has a part without a valid name", id="no-name"),
    pytest.param(body(b"Content-Disposition: form-data; name=x; name=y\r\n\r\nx"),
                 "has a part without a valid name", id="two-names"),
    pytest.param(body(b"Content-Disposition: form-data; name=x; filename*=UTF-8''a.txt\r\n\r\nx"),
                 "has a part without a valid name", id="rfc5987-filename"),
    pytest.param(body(b"Content-Disposition: form-data; name=x\r\nContent-Disposition: form-data; name=y\r\n\r\nx"),
                 "has a part with a repeated header", id="two-dispositions"),
    pytest.param(body(b'Content-Disposition: form-data; name="\xff"\r\n\r\nx'), "has a part name that is not UTF-8",
                 id="name-not-utf8"),
    pytest.param(body(b"Bad Header Line\r\n\r\nx"), "is not a well-formed multipart body", id="bad-header"),
])
def test_anything_ambiguous_is_refused_with_a_reason(data, reason):
    with pytest.raises(multipart.MultipartError) as caught:
        list(multipart.parts(data, B, 10))
    assert caught.value.reason == reason and not caught.value.too_large


def test_too_many_parts():
    with pytest.raises(multipart.MultipartError) as caught:
        list(multipart.parts(body(FIELD, FIELD, FIELD), B, 2))
    assert caught.value.too_large and caught.value.reason == "has more than 2 fields"


@pytest.mark.parametrize("params", [{}, {"boundary": ""}, {"boundary": "x" * 71}, {"boundary": "a\x00b"},
                                    {"boundary": "ends-in-space "}])
def test_a_bad_boundary_is_refused(params):
    with pytest.raises(multipart.MultipartError, match="boundary is missing or invalid"):
        multipart.boundary(params)


def test_field_returns_one_plain_field_or_none():
    content_type = "multipart/form-data; boundary=xYz-42"
    data = body(b'Content-Disposition: form-data; name="csrf_token"; filename="t.txt"\r\n\r\nfile', FIELD,
                b'Content-Disposition: form-data; name="csrf_token"\r\n\r\ntok')
    assert multipart.field(data, content_type, "csrf_token") == b"tok"  # the file of that name is skipped
    assert multipart.field(data, content_type, "missing") is None
    assert multipart.field(b"garbage", content_type, "note") is None
    assert multipart.field(data, "multipart/form-data", "note") is None


def test_linear_in_the_body():
    import time

    data = body(*[FIELD] * 2000)
    started = time.perf_counter()
    assert len(list(multipart.parts(data, B, 5000))) == 2000
    assert time.perf_counter() - started < 2.0  # ~10 ms measured
