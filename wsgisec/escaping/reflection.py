"""Find request values reflected verbatim in an HTML or XML document and neutralise them.

One idea: given the decoded text of a response and the values the caller sent, find each
raw occurrence, work out the *context* it landed in from the markup before it, and
replace it with the encoding that keeps it data in that context (OWASP XSS Prevention
Cheat Sheet, rules #1-#5; markupsafe for the HTML entity encoding):

==================  ==================================================  =====================
context             neutralised when the value contains                 replaced by
==================  ==================================================  =====================
``text``/``rcdata``  ``<``                                               ``markupsafe.escape``
``style``           ``<`` (``</style>`` breakout)                       ``\\3c `` (CSS escape)
``rawtext``         ``<``                                               ``markupsafe.escape``
``comment``         ``>`` (``-->``, ``--!>``)                           ``markupsafe.escape``
``attr-dq``         ``"``                                               ``markupsafe.escape``
``attr-sq``         ``'``                                               ``markupsafe.escape``
``attr-unquoted``   space, ``"'=<>`` or a backtick                        ``&#xHH;`` for each
                                                                        non-alphanumeric
``tag``             anything (it would add attributes)                  ``_`` for each char
                                                                        outside ``[\\w-]``
``script``          anything (it is code)                               a JS string literal
``script-string``   the quote, ``\\``, a line break or ``<``            ``\\uXXXX`` for each
``script-template`` a backtick, ``\\``, ``${`` or ``<``                 non-alphanumeric
``script-comment``  a line break, ``*/`` or ``<``                       (same)
``cdata``           ``]]>``                                             split CDATA sections
``markup``          ``<`` or ``>`` (inside ``</x``, ``<!``, ``<?``)     ``markupsafe.escape``
==================  ==================================================  =====================

Attribute values get more: ``on*`` event handlers are JavaScript after entity decoding,
so the value is JS-escaped and then HTML-escaped; ``srcdoc`` is HTML after entity
decoding, so it is escaped twice; a value that *starts* a URL-bearing attribute
(``href``, ``src``, ``action``, ``formaction``, ...) and names ``javascript:``,
``vbscript:`` or ``data:`` (other than raster images) after the browser's own
normalisation (entities decoded, tabs/newlines removed, leading controls stripped) is
replaced by ``about:invalid#wsgisec-blocked``.

An occurrence is neutralised only if the value can leave (or is dangerous in) the context
it sits in, so an already-escaped reflection (which is not a *raw* occurrence) is never
escaped again, and ``Tom & Jerry`` in element text stays byte-identical.

The scanner is a small resumable state machine (HTML tokenizer states, simplified, plus
the JS string/template/comment states inside ``<script>``); it reads the document up to
each occurrence only, so a payload cannot change the context it is judged in, and after
the neutralised value it continues in the same state (the replacement is inert there).
In XML mode there are no raw-text elements; CDATA sections, comments and PIs are known.

Four modules, one idea each: this one replaces the request values in the document
(:class:`Neutraliser`, :func:`neutralise`), :mod:`wsgisec.escaping.matching` finds where
they occur (all values in one pass), :mod:`wsgisec.escaping.html_scanner` finds the
context, :mod:`wsgisec.escaping.encoders` holds the encoders and the decision.
"""

from __future__ import annotations

import re
from typing import NamedTuple

# The encoders and the scanner live beside this module; their public names stay importable
# from here.
from .encoders import BLOCKED_URL, URL_ATTRIBUTES, dangerous_url, js_escape, replacement as _replacement
from .html_scanner import Scanner
from .matching import Matcher

__all__ = ["Candidate", "Finding", "Neutraliser", "neutralise", "is_candidate", "dangerous_url",
           "js_escape", "BLOCKED_URL", "URL_ATTRIBUTES"]

# Characters that can change an HTML, attribute, JS or CSS context. A value without any of
# them (and without a scheme) cannot break out of anything, so it is not even looked for.
_SPECIAL = re.compile(r"[<>\"'`&\\()=;${}]")


class Candidate(NamedTuple):
    """A value the caller sent: ``source`` (query/form/json/path/header), its name, value."""

    source: str
    name: str
    value: str


class Finding(NamedTuple):
    candidate: Candidate
    context: str



def is_candidate(value: str, min_length: int) -> bool:
    """The documented rule: long enough, and holding a special character or a scheme."""
    if len(value) < min_length:
        return False
    return bool(_SPECIAL.search(value)) or (":" in value and dangerous_url(value))


class Neutraliser:
    """Neutralise reflections in a document fed in pieces (or all at once).

    :meth:`feed` takes the next piece of text and returns what can be sent on; it keeps
    back the last ``longest value - 1`` characters (at least 16, the longest token the
    scanner needs to see whole), so an occurrence split across pieces is still found.
    :meth:`finish` returns the rest. ``findings`` grows as occurrences are replaced.
    """

    def __init__(self, candidates, xml: bool = False, matcher: Matcher | None = None):
        self.candidates = tuple(candidates)
        self.matcher = matcher or Matcher(self.candidates)  # compiled once per document
        self.scanner = Scanner(xml)
        self.keep = max([16] + [len(c.value) - 1 for c in self.candidates])
        self.carry = ""
        self.findings: list[Finding] = []

    def feed(self, text: str) -> str:
        text = self.carry + text if self.carry else text
        safe = len(text) - self.keep
        if safe <= 0:
            self.carry = text
            return ""
        out, consumed = self._process(text, safe, final=False)
        self.carry = text[consumed:]
        return out

    def finish(self) -> str:
        text, self.carry = self.carry, ""
        return self._process(text, len(text), final=True)[0] if text else ""

    def _process(self, text: str, safe: int, final: bool):
        """Replace occurrences that start before ``safe``; ``(output, consumed)``."""
        spans = self.matcher.spans(text, safe)  # every value in one pass: matching.py
        scanner = self.scanner
        pieces = []
        copied = scanned = 0  # text[:copied] is in pieces; the scanner has read text[:scanned]
        for start, negative_length, candidate in spans:
            if start < copied or start < scanned:
                continue  # inside an occurrence already replaced (or read as markup)
            scanner.advance(text, scanned, start)
            scanned = start
            end = start - negative_length
            decided = _replacement(candidate.value, scanner.context(), scanner, text, start)
            if decided is None:
                continue  # harmless here: the scanner reads it as the markup it is
            replacement, label = decided
            pieces.append(text[copied:start])
            pieces.append(replacement)
            self.findings.append(Finding(candidate, label))
            # The replacement is inert in this context: resume after it in the same state.
            copied = scanned = end
        if final:
            consumed = len(text)
        else:
            # Stop before a token the window boundary might split: the rest is kept and
            # read whole with the next piece.
            consumed = max(scanned, scanner.advance(text, scanned, safe, flush=True))
            # Attribute-value offsets are relative to this window; the next one starts here.
            scanner.value_start -= consumed
        pieces.append(text[copied:consumed])
        return "".join(pieces), consumed


def neutralise(text: str, candidates, xml: bool = False):
    """Return ``(new_text, findings)``; ``new_text is text`` when nothing was changed.

    ``candidates`` are :class:`Candidate` tuples already filtered by :func:`is_candidate`.
    """
    matcher = Matcher(candidates)
    if not matcher.present(text):
        return text, []
    neutraliser = Neutraliser(candidates, xml, matcher)
    neutraliser.keep = 0
    out = neutraliser._process(text, len(text), final=True)[0]
    if not neutraliser.findings:
        return text, []
    return out, neutraliser.findings
