"""Spreadsheet formula injection in CSV/TSV exports, neutralised per cell.

OWASP "CSV Injection": a cell whose text starts with ``=``, ``+``, ``-``, ``@``, tab or CR
is run as a formula by Excel, LibreOffice Calc and Google Sheets (``=HYPERLINK(...)``
exfiltrates the sheet, ``=cmd|' /C calc'!A0`` runs DDE). The fix is to prefix such a cell
with ``'`` (shown as text) and to quote the field so that the quote and any delimiter in
it stay inside the cell.

The fields are found by real RFC 4180 parsing, read the way Python's :mod:`csv` reader
(and the spreadsheets) read it, not by pairing quotes: a field is quoted only if its
*first* byte is ``"``; a ``"`` anywhere else in an unquoted field is an ordinary
character (the bug this module replaced: a stray ``"`` put a quote-pairing neutraliser
out of step, and every later formula cell went out live). ``""`` inside a quoted field
is one quote; bytes after a closing quote belong to the same field.

:class:`CSVStream` is a small state machine whose state (inside quotes, at a field
start, a cell still being decided) is carried from one chunk to the next, so a body of
any size is neutralised chunk by chunk, each byte looked at a bounded number of times
(linear, whatever the record length). Between cell starts it jumps with one compiled
regex search (C speed); per-byte Python work happens only on the few bytes that decide
whether a cell is a formula.

Plain numbers (``-5``, ``+3.5e2``) are left alone: they cannot be formulas, and an
ordinary export stays byte-identical. A "number" longer than :data:`NUMBER_LIMIT` bytes
is neutralised anyway (fail closed, and it keeps the undecided part bounded).

The work is on bytes: every character involved is ASCII, so any ASCII-compatible
charset works. Non-ASCII prefixes, such as the full-width forms ``＝ ＋ － ＠`` (U+FF1D
U+FF0B U+FF0D U+FF20, the word ``fullwidth`` in ``csv_formula_prefixes``), are matched as
UTF-8 and only in UTF-8 bodies. They are opt-in: an East Asian input method turns a
*typed* ``＝`` into ``=``, but no spreadsheet is documented to run an imported full-width
formula, and a neutralised cell shows its ``'`` to the reader.
"""

from __future__ import annotations

import re

__all__ = ["CSVNeutralizer", "CSVStream", "NUMBER_LIMIT", "FULLWIDTH"]

#: A longer number-like cell is neutralised rather than held back undecided.
NUMBER_LIMIT = 256

#: The full-width forms of ``= + - @`` (U+FF1D, U+FF0B, U+FF0D, U+FF20): the word
#: ``fullwidth`` in ``csv_formula_prefixes``.
FULLWIDTH = "\uff1d\uff0b\uff0d\uff20"

_NUMBER = re.compile(rb"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# Every prefix of a number (the cell may still become one).
_NUMBER_START = re.compile(rb"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]*)?(?:[eE][+-]?[0-9]*)?")

_KEEP, _NEUTRALISE, _UNDECIDED = 0, 1, 2
# States carried between chunks.
_OUTSIDE, _QUOTED, _QUOTE, _DECIDE_BARE, _DECIDE_QUOTED = range(5)
_QUOTE_BYTE = 0x22


class CSVNeutralizer:
    """The rules for one delimiter: which cell starts are formulas.

    ``neutralizer(data)`` returns ``(new_data, cells_changed)`` for a whole body (the same
    ``data`` object when nothing changed); ``neutralizer.stream()`` gives a
    :class:`CSVStream` for a body fed in chunks.
    """

    def __init__(self, prefixes: str, delimiter: bytes = b",", *, wide: bool = True):
        if len(delimiter) != 1:
            raise ValueError("the delimiter is one byte")
        self.delimiter = delimiter
        # The delimiter cannot start a cell's text (it ends the cell); an unquoted cell
        # cannot start with a line break either (that ends the record).
        prefixes = prefixes.replace(delimiter.decode("ascii"), "")
        self.prefixes = frozenset(c.encode("ascii")[0] for c in prefixes if c.isascii())
        self.signs = self.prefixes & frozenset(b"+-")  # may still be a plain number
        # Non-ASCII prefixes (the full-width forms) as UTF-8: only for UTF-8 bodies.
        self.wide = frozenset(c.encode("utf-8") for c in prefixes if not c.isascii()) if wide else frozenset()
        self.wide_leads = frozenset(w[0] for w in self.wide)
        self.boundaries = frozenset(delimiter + b"\r\n")
        self.starts = frozenset(self.prefixes | self.wide_leads | {_QUOTE_BYTE})
        self.active = bool(self.prefixes or self.wide)
        boundary_class = b"[" + re.escape(delimiter) + b"\r\n]"
        start_class = b"[" + b"".join(re.escape(bytes([c])) for c in sorted(self.starts)) + b"]"
        # A field boundary followed by a byte that may start a quoted or a formula cell:
        # everything between two such places is copied as it is.
        self._event = re.compile(boundary_class + b"(?=" + start_class + b")")
        self._boundary = re.compile(boundary_class)
        # Cheap test for a whole body: can any cell start with a formula at all? (A
        # formula may also follow a quote: ``""=1`` reads as the cell ``=1``.)
        cell_start = b"|".join([re.escape(bytes([c])) for c in sorted(self.prefixes)]
                               + [re.escape(w) for w in sorted(self.wide)]) or b"(?!)"
        self._quick = re.compile(b"(?:^|[" + re.escape(delimiter) + b'\r\n"])(?:' + cell_start + b")")
        self._safe_run = self._safe_fields(delimiter)
        self._formula = self._formula_field(delimiter)

    def _formula_field(self, delimiter: bytes):
        """A regex for one whole field, ended by a boundary in the chunk, that is surely a
        formula: group 1 unquoted, group 2 a quoted one after its opening quote. Tried
        where :meth:`_safe_fields` stopped, so an unquoted sign cell here is no short
        number (those were safe); a quoted sign cell is left to the state machine."""
        d = re.escape(delimiter)
        bare = b"".join(re.escape(bytes([c])) for c in sorted(self.prefixes))
        quoted = b"".join(re.escape(bytes([c])) for c in sorted(self.prefixes - self.signs))
        alternatives = []
        if bare:
            alternatives.append(b"([" + bare + b"][^" + d + b"\r\n]*)")
        if quoted:
            alternatives.append(b'"([' + quoted + b'](?:[^"]|"")*"(?!")[^' + d + b"\r\n]*)")
        if not alternatives:
            return None
        return re.compile(b"(?:" + b"|".join(alternatives) + b")(?=[" + d + b"\r\n])")

    def _safe_fields(self, delimiter: bytes):
        """A regex for a run of whole fields, each ended by a boundary in the chunk, that
        cannot be formulas (matched at a field start, so that ordinary cells cost one C
        call, not a Python step each). Unambiguous by construction: a closing quote is
        never followed by another quote, so backtracking cannot find a second parse."""
        d = re.escape(delimiter)
        risky = b"".join(re.escape(bytes([c])) for c in sorted(self.prefixes | self.wide_leads))
        fields = [
            b'[^"' + d + b"\r\n" + risky + b"][^" + d + b"\r\n]*",  # unquoted, safe first byte
            b'"(?:[^"' + risky + b']|"")(?:[^"]|"")*"(?!")[^' + d + b"\r\n]*",  # quoted, safe first byte
            b'""(?!")',  # empty quoted (text after it would decide the cell: not matched)
        ]
        if self.signs:
            sign = b"[" + b"".join(re.escape(bytes([c])) for c in sorted(self.signs)) + b"]"
            fields.append(b"(?=[^" + d + b"\r\n]{1,%d}[" % NUMBER_LIMIT + d + b"\r\n])" + sign
                          + b"(?:[0-9]+(?:\\.[0-9]*)?|\\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
        # At most 256 fields a match: the regex engine keeps state per repetition, so a
        # bounded run keeps each match (and its memory) small; the caller loops.
        return re.compile(b"(?:(?:" + b"|".join(fields) + b")?[" + d + b"\r\n]){1,256}")

    def __call__(self, data: bytes) -> tuple[bytes, int]:
        """``(new_data, cells_changed)``; ``data`` itself when no cell is a formula."""
        if not self.active or not self._quick.search(data):
            return data, 0
        stream = CSVStream(self)
        out = stream.feed(data) + stream.finish()
        return (out, stream.cells) if stream.cells else (data, 0)

    def stream(self, limit: int | None = None) -> "CSVStream":
        """A chunk-by-chunk neutraliser (``limit`` is accepted for compatibility: the
        stream holds at most one undecided cell start, never a record)."""
        return CSVStream(self)

    def decide(self, content, final: bool) -> int:
        """Whether a cell whose text starts with ``content`` is a formula."""
        if not content:
            return _KEEP if final else _UNDECIDED
        first = content[0]
        if first in self.signs:
            if final:
                return _KEEP if len(content) <= NUMBER_LIMIT and _NUMBER.fullmatch(content) else _NEUTRALISE
            if len(content) > NUMBER_LIMIT or not _NUMBER_START.fullmatch(content):
                return _NEUTRALISE
            return _UNDECIDED
        if first in self.prefixes:
            return _NEUTRALISE
        if first in self.wide_leads:
            # The UTF-8 lead byte says how long the character is.
            size = 2 if first < 0xE0 else 3 if first < 0xF0 else 4
            if len(content) < size:
                return _KEEP if final else _UNDECIDED
            return _NEUTRALISE if bytes(content[:size]) in self.wide else _KEEP
        return _KEEP


class CSVStream:
    """The RFC 4180 state machine over a body fed in chunks (see the module docstring).

    ``feed(chunk)`` returns the bytes that can go out now, ``finish()`` the rest;
    ``cells`` counts the cells neutralised so far. Output and input differ only in
    neutralised cells: ``'`` after the opening quote of a quoted cell; an unquoted cell
    becomes ``"'`` + its text with quotes doubled + ``"``.
    """

    __slots__ = ("rules", "state", "at_start", "bare_open", "pending", "content", "quote_seen",
                 "cells")

    def __init__(self, rules: CSVNeutralizer):
        self.rules = rules
        self.state = _OUTSIDE
        self.at_start = True      # _OUTSIDE: the next byte starts a field
        self.bare_open = False    # _OUTSIDE: inside an unquoted cell we opened a quote for
        self.pending = None       # raw bytes of the cell being decided (not sent yet)
        self.content = None       # its text (quoted: without the quotes, "" read as ")
        self.quote_seen = False   # _DECIDE_QUOTED: a " whose meaning the next byte tells
        self.cells = 0

    def feed(self, data: bytes) -> bytes:
        if not self.rules.active:
            return data
        out: list[bytes] = []
        i, n = 0, len(data)
        rules = self.rules
        while i < n:
            state = self.state
            if state == _OUTSIDE:
                if self.bare_open:
                    match = rules._boundary.search(data, i)
                    end = match.start() if match else n
                    out.append(data[i:end].replace(b'"', b'""'))
                    i = end
                    if match:
                        out.append(b'"')
                        self.bare_open = False
                        self.at_start = True
                    continue
                if self.at_start:
                    start = i
                    match = rules._safe_run.match(data, i)
                    while match:
                        i = match.end()
                        match = rules._safe_run.match(data, i) if i < n else None
                    if i > start:
                        out.append(data[start:i])
                        if i == n:
                            break
                    byte = data[i]
                    if byte in rules.boundaries:  # an empty field
                        out.append(data[i:i + 1])
                        i += 1
                        continue
                    formula = rules._formula and rules._formula.match(data, i)
                    if formula:
                        bare = formula.group(1)
                        out.append(b"\"'" + bare.replace(b'"', b'""') + b'"' if bare is not None
                                   else b"\"'" + formula.group(2))
                        self.cells += 1
                        i = formula.end()
                        continue
                    if byte == _QUOTE_BYTE:
                        self._begin(_DECIDE_QUOTED, b'"')
                        i += 1
                        continue
                    if byte in rules.starts:
                        self._begin(_DECIDE_BARE, b"")
                        continue
                    self.at_start = False
                match = rules._event.search(data, i)
                if match is None:
                    out.append(data[i:] if i else data)
                    self.at_start = data[-1] in rules.boundaries
                    i = n
                else:
                    end = match.end()
                    out.append(data[i:end])
                    i = end
                    self.at_start = True
            elif state == _QUOTED:
                end = data.find(b'"', i)
                if end < 0:
                    out.append(data[i:])
                    i = n
                else:
                    out.append(data[i:end + 1])
                    i = end + 1
                    self.state = _QUOTE
            elif state == _QUOTE:
                if data[i] == _QUOTE_BYTE:  # "" inside quotes: one quote, still quoted
                    out.append(b'"')
                    i += 1
                    self.state = _QUOTED
                else:  # the quote closed the field; what follows is in the same field
                    self.state = _OUTSIDE
                    self.at_start = False
            elif state == _DECIDE_BARE:
                i = self._decide_bare(data, i, out)
            else:
                i = self._decide_quoted(data, i, out)
        return b"".join(out)

    def finish(self) -> bytes:
        """The end of the body: decide a cell still undecided, close a quote we opened."""
        out: list[bytes] = []
        if self.state in (_DECIDE_BARE, _DECIDE_QUOTED):
            # (A quoted cell: closed by its last quote, or unterminated and read to the
            # end all the same, as the csv module does.)
            self._emit(self.rules.decide(self.content, True), out, closed=True)
        elif self.state == _OUTSIDE and self.bare_open:
            out.append(b'"')
            self.bare_open = False
        self.state, self.at_start = _OUTSIDE, True
        return b"".join(out)

    # -- deciding one cell, a byte at a time (a few bytes per cell) ---------------

    def _begin(self, state, raw: bytes):
        self.state = state
        self.pending = bytearray(raw)
        self.content = bytearray()
        self.quote_seen = False

    def _decide_bare(self, data, i, out) -> int:
        rules, n = self.rules, len(data)
        while i < n:
            byte = data[i]
            if byte in rules.boundaries:
                self._emit(rules.decide(self.content, True), out, closed=True)
                self.state, self.at_start = _OUTSIDE, True
                return i
            self.pending.append(byte)
            self.content.append(byte)
            i += 1
            verdict = rules.decide(self.content, False)
            if verdict != _UNDECIDED:
                self._emit(verdict, out)
                self.state, self.at_start = _OUTSIDE, False
                return i
        return i

    def _decide_quoted(self, data, i, out) -> int:
        rules, n = self.rules, len(data)
        while i < n:
            byte = data[i]
            if self.quote_seen:
                if byte != _QUOTE_BYTE:
                    # The quote closed the quoted part; what follows up to the delimiter
                    # is still this cell's text (``"-5"+1`` reads as ``-5+1``), so the
                    # decision goes on over it, as for an unquoted cell.
                    self.state = _DECIDE_BARE
                    return i
                self.quote_seen = False
                self.content.append(byte)
            elif byte == _QUOTE_BYTE:
                self.quote_seen = True
                self.pending.append(byte)
                i += 1
                continue
            else:
                self.content.append(byte)
            self.pending.append(byte)
            i += 1
            verdict = rules.decide(self.content, False)
            if verdict != _UNDECIDED:
                self._emit(verdict, out)
                self.state = _QUOTED
                return i
        return i

    def _emit(self, verdict, out, closed=False):
        """Send the held cell start, neutralised or as it was (``closed``: the cell
        ended with it)."""
        pending, self.pending, self.content = self.pending, None, None
        quoted = pending[:1] == b'"'
        if verdict == _NEUTRALISE:
            self.cells += 1
            if quoted:
                out.append(b"\"'" + bytes(pending[1:]))
            else:
                out.append(b"\"'" + bytes(pending).replace(b'"', b'""'))
                if closed:
                    out.append(b'"')
                else:
                    self.bare_open = True  # the quote is closed at the field's end
        else:
            out.append(bytes(pending))
