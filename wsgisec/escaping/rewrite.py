"""One response on its way out of the escaping layer: decided, held (bounded), rewritten.

:class:`_Response` gives the app :class:`wsgisec.held.HeldResponse` as its
``start_response``, asks the layer (:func:`wsgisec.escaping.decide.prepare`) whether
the body is one it rewrites, holds it up to ``max_buffer`` and rewrites it whole
(reflections neutralised, JSON escaped, CSV formulas defused, JSON/XML structure and JSON
response schemas checked: :mod:`wsgisec.escaping.json_checks`), or, past the limit,
hands it to :func:`stream_overflow`, which streams it (sliding window, chunk by chunk).
"""

from __future__ import annotations

import codecs
import itertools
import re

from .. import events
from ..held import HeldResponse, replaced_headers
from ..responses import problem
from .candidates import safe_name
from .jsonsafe import JSONStream, escape_json
from .reflection import Neutraliser, neutralise
from .json_checks import UNPARSED, JSONChecks
# The structure check's codes and refusal, importable from here as before.
from .structure import RESPONSE_INVALID, STRUCTURE_INJECTION, Refused as _Refused, xml_problem

REFLECTED_INPUT_ESCAPED = "reflected-input-escaped"
CSV_FORMULA_NEUTRALIZED = "csv-formula-neutralized"

_log = events.logger_for("escaping")
_XML_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")


def _codec_name(name):
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def _ascii_compatible(name) -> bool:
    codec = _codec_name(name)
    return codec is not None and not codec.startswith(("utf-16", "utf-32", "utf_16", "utf_32"))


class _Response(JSONChecks):
    """One response on its way out: decides, buffers (bounded) and rewrites."""

    __slots__ = ("layer", "environ", "held", "request_body", "kind", "charset", "stream", "passing",
                 "found", "schema")

    def __init__(self, layer, environ, start_response, request_body):
        self.layer = layer
        self.environ = environ
        self.held = HeldResponse(start_response)
        self.request_body = request_body
        self.passing = False
        self.kind = None
        self.found = ()
        self.schema = None  # the response schema this answer must meet (response_schemas)

    @property
    def headers(self):
        return self.held.headers

    def start_response(self, status, headers, exc_info=None):
        held = self.held
        if held.sent:  # with exc_info: the server re-raises (PEP 3333)
            return held.hold(status, headers, exc_info)
        replacing = held.started
        held.hold(status, headers, exc_info)  # a call with exc_info replaces a held one
        headers = held.headers
        decided = self.layer._prepare(self.environ, status, headers)
        if decided is not None and decided[0] in ("html", "xml"):
            # Look for nothing when the caller sent nothing worth looking for: the page
            # then goes out untouched and unbuffered.
            self.found = self.layer.candidates(self.environ, self.request_body)
            if not self.found and not (decided[0] == "xml" and self.layer.check_structure):
                decided = None
        if replacing:
            # An error response replaces the one we were holding back: send it as it is.
            decided = None
        if decided is None:
            self.passing = True
            return held.send()
        self.kind, self.charset, self.stream = decided
        if self.kind == "json" and self.layer.response_schemas is not None:
            self.schema = self.layer.response_schemas.find(self.environ, status, self._mime())
        return held.write

    def body(self, app_iter):
        """The chunks to send (a generator; start_response is called before the first)."""
        held = self.held
        chunks = iter(app_iter)
        if not held.started:  # start_response is called lazily, by the first next()
            pending = []
            for chunk in chunks:
                pending.append(chunk)
                break
            if self.passing or not held.started:
                yield from pending
                yield from chunks
                return
            for chunk in pending:
                held.write(chunk)
        limit = self.layer.max_buffer
        overflow = self.stream or held.size > limit
        if not overflow:
            for chunk in chunks:
                if held.sent:
                    # start_response(exc_info) sent an error response meanwhile: what we
                    # held back belonged to the abandoned one.
                    yield chunk
                    yield from chunks
                    return
                held.write(chunk)
                if held.size > limit:
                    overflow = True
                    break
        buffered = held.take()
        if overflow:
            if self.schema is not None:
                try:
                    self._schema_failed({"check": "too-large"}, "too large to check against its schema")
                except _Refused as refused:
                    yield from self._refuse(refused)
                    return
            yield from stream_overflow(self, buffered, chunks)
            return
        original = b"".join(buffered)
        del buffered
        try:
            body = self._rewrite(original)
        except _Refused as refused:
            yield from self._refuse(refused)
            return
        held.send_body(original, body)
        if body:
            yield body

    def _rewrite(self, body: bytes) -> bytes:
        """The new body, or ``body`` itself (the same object) when nothing changed."""
        layer, kind = self.layer, self.kind
        if kind == "json":
            value = self._check_json(body) if layer.check_structure else UNPARSED
            if self.schema is not None:
                self._check_schema(body, value)
            if not layer.json_escape:
                return body
            escaped = escape_json(body)
            if len(escaped) == len(body):
                return body
            self._report_json(body)
            return escaped
        if kind == "csv":
            neutralizer = layer.csv[self.charset]  # the delimiter, for CSV
            new, changed = neutralizer(body)
            if not changed:
                return body
            self._report_csv(changed)
            return new
        charset = self._document_charset(body)
        try:
            text = body.decode(charset, "surrogateescape")
        except LookupError:
            _log.warning("escaping: unknown charset %r; response passed through unchecked", charset)
            return body
        new_text, findings = neutralise(text, self.found, xml=(kind == "xml")) if self.found else (text, ())
        if kind == "xml" and layer.check_structure:
            # What partners would parse: the document after any neutralisation.
            problem = xml_problem(new_text)
            if problem:
                raise _Refused(RESPONSE_INVALID, "the app's XML response does not parse; masked",
                               {"check": problem, "media_type": self._mime()})
        if not findings:
            return body
        try:
            new = new_text.encode(charset, "surrogateescape")
        except UnicodeEncodeError:
            new = new_text.encode(charset, "xmlcharrefreplace")
        layer.report(self.environ, findings, self._mime())
        return new

    def _mime(self) -> str:
        ctype = next((v for k, v in self.headers if k.lower() == "content-type"), "")
        return ctype.split(";", 1)[0].strip().lower()

    def _refuse(self, refused: "_Refused"):
        """Send a masked 500 instead of the held response (nothing of it went out)."""
        incident = events.emit(self.environ, refused.event, refused.reason, severity="error",
                               store=self.layer.store, logger=_log, detail=refused.detail)
        answer = problem(self.environ, 500, "The server could not produce a valid response.",
                         incident=incident, extra={"reason": refused.kind})
        captured = []
        body = answer(self.environ, lambda status, headers, exc_info=None: captured.append((status, headers)))
        status, headers = captured[0]
        present = {name.lower() for name, _ in headers}
        common, _ = self.layer.safe_headers.for_path(self.environ.get("PATH_INFO", ""))
        headers.extend((n, v) for n, v in common if n.lower() not in present)
        self.held.send(headers, status)
        yield from body

    def _report_csv(self, cells: int):
        events.emit(self.environ, CSV_FORMULA_NEUTRALIZED,
                    "spreadsheet formula cells neutralised in an export", severity="info",
                    store=self.layer.store, logger=_log, detail={"cells": cells})

    def _document_charset(self, head: bytes) -> str:
        charset = self.charset
        if charset is None and self.kind == "xml":
            match = _XML_ENCODING.match(head)
            charset = match.group(1).decode("ascii").lower() if match else None
        return charset or self.layer.default_charset or "utf-8"

def stream_overflow(response, buffered, chunks):
    """A body over ``max_buffer``: HTML/XML in a sliding window, JSON escaped and CSV
    neutralised chunk by chunk; sent without ``Content-Length`` (not structure-checked)."""
    if response.kind in ("html", "xml"):
        yield from neutralise_streaming(response, buffered, chunks)
        return
    if response.kind == "json":
        # Escaping is local to each character, so it streams; the length changes.
        response.held.send(replaced_headers(response.headers, None))
        stream = JSONStream()
        for chunk in buffered:
            yield stream.feed(chunk)
        for chunk in chunks:
            if chunk:
                out = stream.feed(chunk)
                if out:
                    yield out
        tail = stream.finish()
        if tail:
            yield tail
        return
    # A CSV export too large to buffer: record by record.
    response.held.send(replaced_headers(response.headers, None))
    stream = response.layer.csv[response.charset].stream(response.layer.max_buffer)
    reported = False
    for chunk in itertools.chain(buffered, chunks):
        if chunk:
            out = stream.feed(chunk)
            if stream.cells and not reported:
                reported = True
                response._report_csv(stream.cells)
            if out:
                yield out
    buffered.clear()
    tail = stream.finish()
    if stream.cells and not reported:
        response._report_csv(stream.cells)
    if tail:
        yield tail


def neutralise_streaming(response, buffered, chunks):
    """A document over ``max_buffer``: neutralised in a sliding window.

    Passing it through would let a caller defeat the layer by padding the page; the
    window (the longest candidate, at least 16 characters) keeps memory flat and
    still finds an occurrence split across chunks. The length is unknown in advance,
    so ``Content-Length`` (and ``ETag``) go.
    """
    head = buffered[0] if buffered else b""
    charset = response._document_charset(head)
    try:
        decoder = codecs.getincrementaldecoder(charset)("surrogateescape")
    except LookupError:
        _log.warning("escaping: unknown charset %r; response passed through unchecked", charset)
        response.held.send()
        yield from buffered
        yield from chunks
        return
    response.held.send(replaced_headers(response.headers, None))
    neutraliser = Neutraliser(response.found, xml=(response.kind == "xml"))
    reported = set()

    def encoded(text):
        try:
            return text.encode(charset, "surrogateescape")
        except UnicodeEncodeError:
            return text.encode(charset, "xmlcharrefreplace")

    def report():
        # Drained each time, so a page full of reflections does not grow a list.
        new = [f for f in neutraliser.findings if f.candidate not in reported]
        neutraliser.findings.clear()
        if new:
            reported.update(f.candidate for f in new)
            response.layer.report(response.environ, new, response.kind == "xml" and "application/xml" or "text/html")

    def pieces():
        yield from buffered
        buffered.clear()
        yield from chunks

    for chunk in pieces():
        if chunk:
            out = neutraliser.feed(decoder.decode(chunk))
            if out:
                report()
                yield encoded(out)
    out = neutraliser.feed(decoder.decode(b"", True)) + neutraliser.finish()
    report()
    if out:
        yield encoded(out)


def report_reflections(environ, findings, mime, store):
    """One ``reflected-input-escaped`` event per parameter: names, never values."""
    grouped: dict = {}
    for finding in findings:
        entry = grouped.setdefault(finding.candidate, [0, set()])
        entry[0] += 1
        entry[1].add(finding.context)
    for candidate, (count, contexts) in grouped.items():
        events.emit(environ, REFLECTED_INPUT_ESCAPED,
                    "request value reflected unescaped in the response; neutralised",
                    store=store, logger=_log,
                    detail={"source": candidate.source, "parameter": safe_name(candidate.name),
                            "contexts": " ".join(sorted(contexts)), "occurrences": count,
                            "length": len(candidate.value), "media_type": mime})
