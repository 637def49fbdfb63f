"""Structure injection into string-built JSON and XML responses (issue 11).

A legacy app that builds JSON or XML by concatenation lets a value change the document's
*structure*: a stored name ``Evil", "price": 1}, {"id": 1, ...`` forges objects, a stored
``AT&T 3 < 5`` makes every XML response ill-formed for every partner (OWASP "Injection
Theory"; RFC 8259 §7: a string ends at the first unescaped ``"``). Escaping cannot repair
that after the fact, so the layer refuses instead:

* :func:`json_problem` / :func:`xml_problem`: the (bounded, already buffered) response
  does not parse. XML is parsed with defusedxml (entity declarations and external
  references are refused too: a response must not carry an XXE or entity-expansion
  payload to a partner's parser).
* :func:`injected` : a request value (the layer's reflection candidates) that contains
  a ``"`` or a bracket (``{ } [ ]``) and appears, raw, anywhere in a JSON response other
  than strictly inside one string token. Inside a string token a raw ``"`` cannot occur
  (it would be ``\\"``), so a value with a quote found raw has closed a string: the caller
  chose part of the document's structure. Values without those characters are not looked
  for (``?ids=1,2`` echoed as ``[1,2]`` is the app's design, not a forged object).

The layer answers both with a masked 500 (``responses.problem``, an incident id, no app
content) and an event; see :mod:`wsgisec.escaping`.
"""

from __future__ import annotations

import bisect
import json
import re
from xml.etree.ElementTree import ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as parse_xml

__all__ = ["json_problem", "parse_json", "xml_problem", "injected", "is_structural", "STRUCTURAL_CHARS", "EMPTY",
           "Refused", "RESPONSE_INVALID", "STRUCTURE_INJECTION"]

RESPONSE_INVALID = "response-invalid"
STRUCTURE_INJECTION = "structure-injection"

#: What :func:`parse_json` returns for an empty body (no document: nothing to parse).
EMPTY = object()

# In valid JSON no '"' occurs outside strings, so this finds exactly the string tokens.
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
#: A request value holding one of these could forge JSON structure.
STRUCTURAL_CHARS = '"{}[]'
_STRUCTURAL = frozenset(STRUCTURAL_CHARS)


def is_structural(value: str) -> bool:
    """Whether a request value could forge JSON structure (see the module docstring)."""
    return not _STRUCTURAL.isdisjoint(value)


def json_problem(body: bytes) -> str | None:
    """None if ``body`` is one JSON document (or empty), else a short reason."""
    return parse_json(body)[1]


def parse_json(body: bytes):
    """``(value, None)`` for one JSON document (``(EMPTY, None)`` for an empty body), or
    ``(None, "not-json")``: parsed once, for the structure and the schema checks."""
    if not body.strip():
        return EMPTY, None
    try:
        return json.loads(body), None
    except (ValueError, RecursionError):
        return None, "not-json"


def xml_problem(text: str) -> str | None:
    """None if ``text`` (decoded) is a well-formed XML document without entity
    declarations or external references (or empty), else a short reason."""
    if not text.strip():
        return None
    try:
        parse_xml(text)
    except DefusedXmlException:
        return "xml-entities"
    except (ParseError, ValueError, UnicodeError, RecursionError):
        return "not-xml"
    return None


def injected(body: bytes, values) -> list:
    """The values (each with a ``value`` str attribute) found raw outside a single JSON
    string token of ``body`` (a document that parsed). Linear in the body per value."""
    spans = None
    found = []
    for candidate in values:
        needle = candidate.value.encode("utf-8", "surrogateescape")
        start = body.find(needle)
        if start < 0:
            continue
        if spans is None:
            spans = [(m.start(), m.end()) for m in _JSON_STRING.finditer(body)]
            starts = [s for s, _ in spans]
        while start >= 0:
            end = start + len(needle)
            index = bisect.bisect_right(starts, start - 1) - 1  # last token opening before
            if index < 0 or not (spans[index][0] < start and end < spans[index][1]):
                found.append(candidate)
                break
            start = body.find(needle, start + 1)
    return found


class Refused(Exception):
    """Internal: the held response must not go out (kind: the caller's ``reason``; the
    event's reason and detail; ``event``: the event's kind when it is not ``kind``)."""

    def __init__(self, kind, reason, detail, event=None):
        super().__init__(kind)
        self.kind, self.reason, self.detail = kind, reason, detail
        self.event = event or kind

