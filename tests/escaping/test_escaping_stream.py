"""A 100 MB streamed download passes through the escaping layer with flat memory.

The app yields 1600 fresh chunks of 64 KB; the body is consumed chunk by chunk as a
server would, under ``wsgiref.validate``. ``tracemalloc``'s peak must stay far below the
size of the body: binary types are never buffered, a textual response without
``Content-Length`` is buffered only up to ``max_buffer``; beyond it a CSV export is
neutralised record by record, JSON is escaped chunk by chunk, and an HTML page whose
request carries a reflected payload is neutralised in a sliding window.

A CSV export of millions of tiny records is checked without ``tracemalloc`` (which makes
each of the CSV parser's regex matches allocate through a traced hook: 15 s instead of
1.5 s): ``sys.getallocatedblocks()`` sampled at every chunk shows that nothing is kept
per record, and the traced 100 MB pass uses rows of a realistic export width.
"""

from __future__ import annotations

import io
import sys
import tracemalloc
from wsgiref.util import setup_testing_defaults

import pytest

from conftest import validated
from wsgisec.escaping import Escaping

CHUNK = 64 * 1024
COUNT = 1600  # 100 MiB
LIMIT = 8 * 1024 * 1024  # peak allowed: under 8% of the body, for a 1 MB max_buffer


def download(content_type, filler: bytes, with_length: bool):
    chunk = (filler * (CHUNK // len(filler) + 1))[:CHUNK]
    closed = []

    class Body:
        def __iter__(self):
            for _ in range(COUNT):
                yield chunk[:-1] + chunk[-1:]  # a fresh 64 KB object, as a real file read gives

        def close(self):
            closed.append(True)

    def app(environ, start_response):
        headers = [("Content-Type", content_type)]
        if with_length:
            headers.append(("Content-Length", str(CHUNK * COUNT)))
        start_response("200 OK", headers)
        return Body()

    return app, closed


PAGE = b"<p><script>alert(1)</script></p>" + b"<p>an ordinary paragraph of the page</p>" * 100
FORMULA_ROW = b"=1+1,-2+3,<a>\r\n"
# A notes export: a formula row, then rows whose description cell runs on (~900 bytes).
CSV_EXPORT = FORMULA_ROW + (b"1," + b"an ordinary row of the export " * 30 + b",3.50\r\n") * 4
TINY_RECORDS = FORMULA_ROW + b"1,an ordinary row,3.50\r\n" * 40


@pytest.mark.parametrize("content_type, filler, with_length, rewritten", [
    pytest.param("application/octet-stream", b"\x00\x01<script>alert(1)</script>", True, False, id="binary"),
    pytest.param("text/plain", b"<script>alert(1)</script>", True, False, id="text-plain"),
    pytest.param("text/csv", CSV_EXPORT, False, True, id="csv-record-by-record"),
    pytest.param("text/html; charset=utf-8", PAGE, False, True, id="html-neutralised-in-a-window"),
    pytest.param("text/html; charset=utf-8", PAGE, True, True, id="html-with-length-neutralised"),
    pytest.param("application/json", b'"<a>\xe2\x80\xa8", ', False, True, id="json-escaped-while-streaming"),
])
def test_100mb_download_with_flat_memory(content_type, filler, with_length, rewritten):
    app, closed = download(content_type, filler, with_length)
    layer = validated(Escaping(app, store=None))
    environ = {"REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": "/download",
               "QUERY_STRING": "q=%3Cscript%3Ealert(1)%3C/script%3E", "wsgi.input": io.BytesIO()}
    setup_testing_defaults(environ)
    seen = {}

    def start_response(status, headers, exc_info=None):
        seen["headers"] = dict((k.lower(), v) for k, v in headers)
        return lambda data: None

    total = 0
    raw = 0
    tracemalloc.start()
    try:
        iterable = layer(environ, start_response)
        try:
            for chunk in iterable:
                total += len(chunk)
                raw += (chunk.count(b"<script>alert(1)</script>") + chunk.count(b'"<a>')
                        + chunk.count(b"\n=1+1"))
        finally:
            iterable.close()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert closed == [True]
    assert peak < LIMIT, f"peak {peak} bytes for a {CHUNK * COUNT} byte download"
    if rewritten:
        assert raw == 0 and total > CHUNK * COUNT
        assert "content-length" not in seen["headers"]
    else:
        assert total == CHUNK * COUNT and raw > 0  # untouched
        assert seen["headers"].get("content-length") == (str(total) if with_length else None)


def test_100mb_csv_of_tiny_records_keeps_nothing_per_record():
    """4.4 million records, each neutralised or passed on its own: the number of live
    small-object blocks stays flat from the first megabytes to the end."""
    chunk = (TINY_RECORDS * (CHUNK // len(TINY_RECORDS) + 1))[:CHUNK]
    closed, blocks = [], []

    class Body:
        def __iter__(self):
            for _ in range(COUNT):
                blocks.append(sys.getallocatedblocks())
                yield chunk[:-1] + chunk[-1:]

        def close(self):
            closed.append(True)

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/csv")])
        return Body()

    environ = {"REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": "/export", "QUERY_STRING": "",
               "wsgi.input": io.BytesIO()}
    setup_testing_defaults(environ)
    seen = {}

    def start_response(status, headers, exc_info=None):
        seen["headers"] = dict((k.lower(), v) for k, v in headers)
        return lambda data: None

    total = raw = 0
    iterable = validated(Escaping(app, store=None))(environ, start_response)
    try:
        for part in iterable:
            total += len(part)
            raw += part.count(b"\n=1+1")
    finally:
        iterable.close()
    assert closed == [True] and raw == 0 and total > CHUNK * COUNT
    assert "content-length" not in seen["headers"]
    records = CHUNK * COUNT // len(TINY_RECORDS) * TINY_RECORDS.count(b"\n")
    after_buffer = blocks[32]  # 2 MB in: past max_buffer, streaming record by record
    growth = max(blocks[32:]) - after_buffer
    assert growth < 100_000, f"{growth} more live blocks after {records} records: state kept per record"
