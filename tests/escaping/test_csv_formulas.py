"""CSV formula injection (issue 11): cells found by RFC 4180 parsing, neutralised per cell.

The property tests read input and output with Python's :mod:`csv` reader (what a
spreadsheet's import does): whatever the CSV (quotes in unquoted cells, CR/LF inside and
outside quotes, formula prefixes anywhere) and however it is cut into chunks, the output
has the same rows and cells, no cell of it starts a formula, and every cell that was not
a formula is unchanged.
"""

from __future__ import annotations

import csv
import io
import re

import pytest
from hypothesis import given, settings as hsettings, strategies as st
from webtest import TestApp

from conftest import validated
from wsgisec.escaping import Escaping
from wsgisec.escaping.csv_formulas import FULLWIDTH, NUMBER_LIMIT, CSVNeutralizer

PREFIXES = "=+-@\t\r"
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def is_formula(cell: str, prefixes: str = PREFIXES) -> bool:
    if not cell or cell[0] not in prefixes:
        return False
    if cell[0] in "+-" and len(cell.encode()) <= NUMBER_LIMIT and _NUMBER.fullmatch(cell):
        return False  # a plain number
    return True


def rows(data: bytes, delimiter=","):
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline=""), delimiter=delimiter))


def chunked(neutralizer, data: bytes, cuts) -> bytes:
    stream = neutralizer.stream()
    out, position = [], 0
    for cut in sorted(set(cuts)):
        if position < cut < len(data):
            out.append(stream.feed(data[position:cut]))
            position = cut
    out.append(stream.feed(data[position:]))
    out.append(stream.finish())
    return b"".join(out)


def assert_neutralised(source: bytes, output: bytes, prefixes=PREFIXES, delimiter=","):
    before, after = rows(source, delimiter), rows(output, delimiter)
    assert len(before) == len(after)
    for row_in, row_out in zip(before, after):
        assert len(row_in) == len(row_out)
        for cell_in, cell_out in zip(row_in, row_out):
            assert not is_formula(cell_out, prefixes), (cell_in, cell_out)
            assert cell_out == ("'" + cell_in if is_formula(cell_in, prefixes) else cell_in)


# Arbitrary text over the bytes that matter (not only what csv.writer produces).
PIECES = st.sampled_from(['"', '""', ",", "\r", "\n", "\r\n", "=", "+", "-", "@", "\t", "1", "5",
                          ".", "e", "a", "x y", "=HYPERLINK(", "-2+3", "+3.5e2", "'", "\uff1d", "é"])
RAW_CSV = st.lists(PIECES, max_size=40).map("".join)
CUTS = st.lists(st.integers(1, 200), max_size=10)


@hsettings(max_examples=400, deadline=None)
@given(text=RAW_CSV, cuts=CUTS)
def test_arbitrary_csv_in_arbitrary_chunks_has_no_formula_left(text, cuts):
    data = text.encode()
    neutralizer = CSVNeutralizer(PREFIXES)
    whole, changed = neutralizer(data)
    assert chunked(neutralizer, data, cuts) == (whole if changed else data)
    assert_neutralised(data, whole)


CELLS = st.text(alphabet=st.sampled_from(list('"\r\n,=+-@\t15.eax \'')), max_size=12)


@hsettings(max_examples=300, deadline=None)
@given(table=st.lists(st.lists(CELLS, min_size=1, max_size=5), min_size=1, max_size=8), cuts=CUTS,
       quoting=st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]))
def test_written_csv_in_arbitrary_chunks_has_no_formula_left(table, cuts, quoting):
    buffer = io.StringIO()
    csv.writer(buffer, quoting=quoting).writerows(table)
    data = buffer.getvalue().encode()
    neutralizer = CSVNeutralizer(PREFIXES)
    out = chunked(neutralizer, data, cuts)
    assert_neutralised(data, out)


@hsettings(max_examples=200, deadline=None)
@given(text=st.lists(st.sampled_from(['"', "\t", "\n", "=", "-1", "a", "@", ","]), max_size=30).map("".join),
       cuts=CUTS)
def test_tsv(text, cuts):
    data = text.encode()
    out = chunked(CSVNeutralizer(PREFIXES, b"\t"), data, cuts)
    assert_neutralised(data, out, prefixes="=+-@\r", delimiter="\t")


@pytest.mark.parametrize("body, expected", [
    # The review's finding: a " inside an unquoted cell put the old quote-pairing out of
    # step, and the formula cells after it went out live.
    pytest.param(b'1,5" screen,ok\r\n2,=HYPERLINK("http://evil.example"),x\r\n',
                 b'1,5" screen,ok\r\n2,"\'=HYPERLINK(""http://evil.example"")",x\r\n', id="stray-quote"),
    pytest.param(b'a"b\n=1\n"c\n',
                 b'a"b\n"\'=1"\n"c\n', id="stray-quote-then-unterminated"),
    pytest.param(b'"",""=1,"-5"+1\r\n', b'"",""=1,"-5"+1\r\n'.replace(b'""=1', b'"\'"=1')
                 .replace(b'"-5"+1', b'"\'-5"+1'), id="text-after-a-closing-quote"),
    pytest.param(b'"-5","+3.5e2",-1e3\n', b'"-5","+3.5e2",-1e3\n', id="quoted-numbers-stay"),
    pytest.param(b'-' + b'1' * (NUMBER_LIMIT + 5) + b'\n',
                 b'"\'-' + b'1' * (NUMBER_LIMIT + 5) + b'"\n', id="overlong-number-neutralised"),
])
def test_regressions(body, expected):
    out, _ = CSVNeutralizer(PREFIXES)(body)
    assert out == expected
    assert_neutralised(body, out)


def test_fullwidth_prefixes_are_opt_in_and_utf8_only():
    body = "id,name\r\n1,\uff1dHYPERLINK(1)\r\n".encode()
    app = lambda charset: (lambda environ, start_response: (  # noqa: E731
        start_response("200 OK", [("Content-Type", f"text/csv; charset={charset}")]), [body])[1])
    plain = TestApp(validated(Escaping(app("utf-8")))).get("/")
    assert plain.body == body
    wide = TestApp(validated(Escaping(app("utf-8"), csv_formula_prefixes="=+-@\t\r" + FULLWIDTH))).get("/")
    assert wide.body == "id,name\r\n1,\"'\uff1dHYPERLINK(1)\"\r\n".encode()
    latin = TestApp(validated(Escaping(app("latin-1"), csv_formula_prefixes="=" + FULLWIDTH))).get("/")
    assert latin.body == body  # those bytes are other characters there


def test_fullwidth_setting_word():
    from wsgisec.escaping import filter_factory

    layer = filter_factory({}, csv_formula_prefixes="= fullwidth")(lambda e, s: [])
    assert layer.settings["csv_formula_prefixes"] == "=" + FULLWIDTH


def test_unchanged_body_is_the_same_object_and_keeps_its_length():
    body = b"id,name,price\r\n1,Widget,-5\r\n2,\"quoted, cell\",+3.5\r\n"
    assert CSVNeutralizer(PREFIXES)(body) == (body, 0)
    response = TestApp(validated(Escaping(lambda e, s: (s("200 OK", [
        ("Content-Type", "text/csv"), ("Content-Length", str(len(body)))]), [body])[1]))).get("/")
    assert response.body == body and response.headers["Content-Length"] == str(len(body))
