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
"""

from __future__ import annotations

import html
import re
from typing import NamedTuple

from markupsafe import escape

__all__ = ["Candidate", "Finding", "Neutraliser", "neutralise", "is_candidate", "dangerous_url",
           "js_escape", "BLOCKED_URL"]

BLOCKED_URL = "about:invalid#wsgisec-blocked"

# Characters that can change an HTML, attribute, JS or CSS context. A value without any of
# them (and without a scheme) cannot break out of anything, so it is not even looked for.
_SPECIAL = re.compile(r"[<>\"'`&\\()=;${}]")

URL_ATTRIBUTES = frozenset({
    "href", "src", "action", "formaction", "xlink:href", "poster", "background", "cite",
    "data", "codebase", "ping", "lowsrc", "dynsrc", "manifest", "icon", "longdesc",
    "usemap", "profile", "classid", "archive", "xml:base",
})

# WHATWG URL parsing strips leading/trailing C0 controls and space and removes tab/LF/CR
# anywhere, so "java\tscript:" and " javascript:" are still javascript: URLs.
_URL_STRIP = re.compile(r"[\t\n\r]")
_SCHEME = re.compile(r"([a-zA-Z][a-zA-Z0-9+.\-]*):")
_SAFE_DATA = re.compile(r"data:image/(?:png|gif|jpe?g|webp|bmp|avif|x-icon)[;,]", re.IGNORECASE)
_DANGEROUS_SCHEMES = frozenset({"javascript", "vbscript", "data", "livescript"})


class Candidate(NamedTuple):
    """A value the caller sent: ``source`` (query/form/json/path/header), its name, value."""

    source: str
    name: str
    value: str


class Finding(NamedTuple):
    candidate: Candidate
    context: str


def dangerous_url(value: str) -> bool:
    """True if ``value``, as a browser would read it, is a javascript:/vbscript:/data: URL."""
    text = _URL_STRIP.sub("", html.unescape(value)).lstrip("\x00\x01\x02\x03\x04\x05\x06\x07\x08"
                                                           "\x0b\x0c\x0e\x0f\x10\x11\x12\x13\x14"
                                                           "\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d"
                                                           "\x1e\x1f ")
    match = _SCHEME.match(text)
    if not match or match.group(1).lower() not in _DANGEROUS_SCHEMES:
        return False
    return not _SAFE_DATA.match(text)


def is_candidate(value: str, min_length: int) -> bool:
    """The documented rule: long enough, and holding a special character or a scheme."""
    if len(value) < min_length:
        return False
    return bool(_SPECIAL.search(value)) or (":" in value and dangerous_url(value))


# -- encoders ---------------------------------------------------------------------------

_JS_SAFE = re.compile(r"[^A-Za-z0-9 _,.]")


def js_escape(value: str) -> str:
    """OWASP rule #3: every char but ``[A-Za-z0-9 _,.]`` as ``\\uXXXX``.

    ``\\u`` escapes are valid in JS strings, template literals *and* JSON strings (so it is
    safe in ``<script type="application/json">`` too); outside a string they are a
    syntax error, i.e. inert.
    """

    def one(match):
        code = ord(match.group())
        if code > 0xFFFF:  # astral: a surrogate pair
            code -= 0x10000
            return "\\u%04x\\u%04x" % (0xD800 + (code >> 10), 0xDC00 + (code & 0x3FF))
        return "\\u%04x" % code

    return _JS_SAFE.sub(one, value)


_ATTR_UNQUOTED_UNSAFE = re.compile(r"[^A-Za-z0-9]")


def _attr_unquoted(value: str) -> str:
    """OWASP rule #2 for unquoted attributes: ``&#xHH;`` for every non-alphanumeric."""
    return _ATTR_UNQUOTED_UNSAFE.sub(lambda m: "&#x%x;" % ord(m.group()), value)


_NOT_NAME = re.compile(r"[^\w-]")


# -- the scanner ------------------------------------------------------------------------

(DATA, TAG_NAME, TAG, ATTR_NAME, AFTER_ATTR_NAME, BEFORE_VALUE, ATTR_DQ, ATTR_SQ, ATTR_UNQ,
 END_TAG, COMMENT, DECL, PI, CDATA, RAWTEXT, RCDATA,
 JS, JS_DQ, JS_SQ, JS_TPL, JS_LINE, JS_BLOCK) = range(22)

_RAWTEXT_TAGS = frozenset({"style", "xmp", "iframe", "noembed", "noframes", "noscript"})
_RCDATA_TAGS = frozenset({"textarea", "title"})
_TAG_NAME = re.compile(r"[^\s/>]*")
# A whole start tag in one step (the common case; possessive quantifiers, so no
# backtracking blow-up). Anything unusual (a stray "=", a tag cut off by the insertion
# point) falls back to the state-by-state path below.
_START_TAG_PATTERN = r"""<([A-Za-z][^\s/>]*+)(?:[\s/]*+[^\s/>="'<]++(?:\s*+=\s*+(?:"[^"]*+"|'[^']*+'|[^\s>"'=<`]++))?+)*+[\s/]*+>"""
# A run of text, end tags, comments and start tags that open no raw-text element: what
# most of a page is, skipped in one C-level match before the state machine takes over.
_DATA_RUN = re.compile(
    r"""(?:[^<]++|</[A-Za-z][^>]*+>|<!--(?:[^-]++|-(?!->))*+-->"""
    r"""|(?=<(?!(?i:script|style|textarea|title|xmp|iframe|noembed|noframes|noscript|plaintext)[\s/>]))"""
    + _START_TAG_PATTERN.replace("([A-Za-z]", "(?:[A-Za-z]") + r""")*+""")
_START_TAG = re.compile(_START_TAG_PATTERN)
_SPACES_SLASHES = re.compile(r"[\s/]*")
_SPACES = re.compile(r"\s*")
_ATTR_NAME = re.compile(r"[^\s/>=]*")
_UNQUOTED_VALUE = re.compile(r"[^\s>]*")
_JS_CODE_STOP = re.compile(r"[\"'`/{}<]")
_JS_DQ_STOP = re.compile(r"[\"\\\n<]")
_JS_SQ_STOP = re.compile(r"['\\\n<]")
_JS_TPL_STOP = re.compile(r"[`\\$<]")
_JS_LINE_STOP = re.compile(r"[\n\u2028\u2029<]")
_JS_BLOCK_STOP = re.compile(r"\*/|<")


class _Scanner:
    __slots__ = ("xml", "state", "tag", "attr", "value_start", "end_re", "braces")

    def __init__(self, xml: bool):
        self.xml = xml
        self.state = DATA
        self.tag = ""
        self.attr = ""
        self.value_start = 0
        self.end_re = None
        self.braces = []  # template-literal nesting: open-brace depth per ${

    def _close_tag(self):
        tag = self.tag
        if self.xml:
            self.state = DATA
        elif tag == "script":
            self.state, self.braces = JS, []
        elif tag in _RAWTEXT_TAGS or tag in _RCDATA_TAGS:
            self.state = RAWTEXT if tag in _RAWTEXT_TAGS else RCDATA
            self.end_re = re.compile("</" + re.escape(tag), re.IGNORECASE)
        else:
            self.state = DATA

    def advance(self, text: str, pos: int, end: int, flush: bool = False) -> int:
        """Consume ``text[pos:end]`` and return where the scanner stopped.

        By default it stops exactly at ``end``, in a state that says what an inserted
        string would be there (``end`` is where a reflected value starts). With
        ``flush`` (streaming: more text follows ``end`` in the next window) it stops
        *before* any token it cannot see whole (``<!--``, ``-->``, ``</script``, ``${``,
        a backslash escape...), so a window boundary never splits one; the return value
        may then be less than ``end``, and the caller keeps the rest for the next window.
        """
        while pos < end:
            st = self.state
            if st == DATA:
                pos = _DATA_RUN.match(text, pos, end).end()
                if pos >= end:
                    return pos
                i = text.find("<", pos, end)
                if i < 0:
                    return end
                if flush and i + 9 > end:
                    return i  # "<!--", "<![CDATA[", "<tag": decide with the next window
                if i + 1 >= end:  # a bare "<" right before the insertion: it names a tag
                    self.state, self.tag = TAG_NAME, ""
                    return end
                nxt = text[i + 1]
                if text.startswith("<!--", i, end):
                    self.state, pos = COMMENT, i + 4
                elif self.xml and text.startswith("<![CDATA[", i, end):
                    self.state, pos = CDATA, i + 9
                elif nxt == "/":
                    self.state, pos = END_TAG, i + 2
                elif nxt == "!":
                    self.state, pos = DECL, i + 2
                elif nxt == "?":
                    self.state, pos = PI, i + 2
                elif nxt.isascii() and nxt.isalpha():
                    m = _START_TAG.match(text, i, end)
                    if m:
                        self.tag = m.group(1).lower()
                        self._close_tag()
                        pos = m.end()
                    else:
                        self.state, self.tag, pos = TAG_NAME, "", i + 1
                else:
                    pos = i + 1
            elif st == TAG_NAME:
                m = _TAG_NAME.match(text, pos, end)
                self.tag += m.group().lower()
                pos = m.end()
                if pos < end:
                    self.state = TAG
            elif st == TAG:
                pos = _SPACES_SLASHES.match(text, pos, end).end()
                if pos >= end:
                    return pos
                c = text[pos]
                if c == ">":
                    self._close_tag()
                    pos += 1
                elif c == "=":  # a stray "=": what follows is a value
                    self.state, self.attr, pos = BEFORE_VALUE, "", pos + 1
                else:
                    self.state, self.attr = ATTR_NAME, ""
            elif st == ATTR_NAME:
                m = _ATTR_NAME.match(text, pos, end)
                self.attr += m.group().lower()
                pos = m.end()
                if pos < end:
                    self.state = AFTER_ATTR_NAME
            elif st == AFTER_ATTR_NAME:
                pos = _SPACES.match(text, pos, end).end()
                if pos >= end:
                    return pos
                c = text[pos]
                if c == "=":
                    self.state, pos = BEFORE_VALUE, pos + 1
                elif c == ">":
                    self._close_tag()
                    pos += 1
                elif c == "/":
                    self.state = TAG
                else:
                    self.state, self.attr = ATTR_NAME, ""
            elif st == BEFORE_VALUE:
                pos = _SPACES.match(text, pos, end).end()
                if pos >= end:
                    return pos
                c = text[pos]
                if c == '"':
                    self.state, pos = ATTR_DQ, pos + 1
                    self.value_start = pos
                elif c == "'":
                    self.state, pos = ATTR_SQ, pos + 1
                    self.value_start = pos
                elif c == ">":
                    self._close_tag()
                    pos += 1
                else:
                    self.state, self.value_start = ATTR_UNQ, pos
            elif st == ATTR_DQ or st == ATTR_SQ:
                i = text.find('"' if st == ATTR_DQ else "'", pos, end)
                if i < 0:
                    return end
                self.state, pos = TAG, i + 1
            elif st == ATTR_UNQ:
                pos = _UNQUOTED_VALUE.match(text, pos, end).end()
                if pos >= end:
                    return pos
                if text[pos] == ">":
                    self._close_tag()
                    pos += 1
                else:
                    self.state = TAG
            elif st in (END_TAG, DECL) or (st == PI and not self.xml):
                i = text.find(">", pos, end)
                if i < 0:
                    return end
                self.state, pos = DATA, i + 1
            elif st in (PI, COMMENT, CDATA):
                closer = "?>" if st == PI else "-->" if st == COMMENT else "]]>"
                i = text.find(closer, pos, end)
                if i < 0:
                    # keep a closer that may be cut by the window boundary
                    return max(pos, end - len(closer) + 1) if flush else end
                self.state, pos = DATA, i + len(closer)
            elif st == RAWTEXT or st == RCDATA:
                m = self.end_re.search(text, pos, end)
                if not m:
                    return max(pos, end - len(self.tag) - 1) if flush else end
                self.state, pos = END_TAG, m.end()
            else:
                stopped = self._advance_js(text, pos, end, flush)
                if stopped is None:
                    return pos
                pos = stopped
        return pos

    def _script_end(self, text, i, end) -> bool:
        return i + 8 <= end and text[i:i + 8].lower() == "</script"

    def _advance_js(self, text, pos, end, flush):
        """One step inside <script>; the new position, or None to stop at ``pos`` (flush)."""
        st = self.state
        if st == JS:
            m = _JS_CODE_STOP.search(text, pos, end)
            if not m:
                return end
            i, c = m.start(), m.group()
            if flush and (c == "/" and i + 2 > end or c == "<" and i + 8 > end):
                return i if i > pos else None
            if c == '"':
                self.state = JS_DQ
            elif c == "'":
                self.state = JS_SQ
            elif c == "`":
                self.state = JS_TPL
            elif c == "/":
                if text.startswith("//", i, end):
                    self.state = JS_LINE
                    return i + 2
                if text.startswith("/*", i, end):
                    self.state = JS_BLOCK
                    return i + 2
            elif c == "{":
                if self.braces:
                    self.braces[-1] += 1
            elif c == "}":
                if self.braces:
                    if self.braces[-1] == 0:
                        self.braces.pop()
                        self.state = JS_TPL
                    else:
                        self.braces[-1] -= 1
            elif self._script_end(text, i, end):
                self.state = END_TAG
                return i + 8
            return i + 1
        if st == JS_LINE:
            m = _JS_LINE_STOP.search(text, pos, end)
            if not m:
                return end
            i = m.start()
            if m.group() != "<":
                self.state = JS
            elif flush and i + 8 > end:
                return i if i > pos else None
            elif self._script_end(text, i, end):
                self.state = END_TAG
                return i + 8
            return i + 1
        if st == JS_BLOCK:
            m = _JS_BLOCK_STOP.search(text, pos, end)
            if not m:
                if flush and text.endswith("*", pos, end):
                    return end - 1 if end - 1 > pos else None
                return end
            i = m.start()
            if m.group() == "*/":
                self.state = JS
                return i + 2
            if flush and i + 8 > end:
                return i if i > pos else None
            if self._script_end(text, i, end):
                self.state = END_TAG
                return i + 8
            return i + 1
        # strings and template literals
        pattern = _JS_DQ_STOP if st == JS_DQ else _JS_SQ_STOP if st == JS_SQ else _JS_TPL_STOP
        m = pattern.search(text, pos, end)
        if not m:
            return end
        i, c = m.start(), m.group()
        if flush and (c == "\\" and i + 2 > end or c == "$" and i + 2 > end or c == "<" and i + 8 > end):
            return i if i > pos else None
        if c == "\\":
            return min(i + 2, end)
        if c == "<":
            if self._script_end(text, i, end):
                self.state = END_TAG
                return i + 8
            return i + 1
        if c == "$":
            if text.startswith("${", i, end):
                self.braces.append(0)
                self.state = JS
                return i + 2
            return i + 1
        self.state = JS  # closing quote/backtick, or a newline ending a broken string
        return i + 1

    def context(self) -> str:
        st = self.state
        if st == DATA:
            return "xml-text" if self.xml else "text"
        if st in (TAG_NAME, TAG, ATTR_NAME, AFTER_ATTR_NAME):
            return "tag"
        if st == BEFORE_VALUE or st == ATTR_UNQ:
            return "attr-unquoted"
        if st == ATTR_DQ:
            return "attr-dq"
        if st == ATTR_SQ:
            return "attr-sq"
        if st in (END_TAG, DECL, PI):
            return "markup"
        if st == COMMENT:
            return "comment"
        if st == CDATA:
            return "cdata"
        if st == RAWTEXT:
            return "style" if self.tag == "style" else "rawtext"
        if st == RCDATA:
            return "rcdata"
        if st == JS:
            return "script"
        if st in (JS_DQ, JS_SQ):
            return "script-string"
        if st == JS_TPL:
            return "script-template"
        return "script-comment"


# -- deciding and replacing -------------------------------------------------------------

_BREAKS = {
    "text": re.compile(r"<"), "xml-text": re.compile(r"<"), "rcdata": re.compile(r"<"),
    "rawtext": re.compile(r"<"), "style": re.compile(r"<"),
    "comment": re.compile(r">"), "markup": re.compile(r"[<>]"),
    "attr-unquoted": re.compile(r"[\s\"'=<>`]"),
    "tag": re.compile(r"[\s\S]"), "script": re.compile(r"[\s\S]"),
    "script-template": re.compile(r"[`\\<]|\$\{"),
    "script-comment": re.compile(r"[\n\r\u2028\u2029<]|\*/"),
    "cdata": re.compile(r"\]\]>"),
}
_DQ_BREAK = re.compile(r'"')
_SQ_BREAK = re.compile(r"'")
_JS_DQ_BREAK = re.compile(r"[\"\\\n\r<]")
_JS_SQ_BREAK = re.compile(r"['\\\n\r<]")


def _replacement(value: str, context: str, scanner: _Scanner, text: str, start: int):
    """``(replacement, context label)`` for this occurrence, or None to leave it alone."""
    if context in ("attr-dq", "attr-sq", "attr-unquoted"):
        attr = scanner.attr
        quoted_break = _DQ_BREAK if context == "attr-dq" else _SQ_BREAK if context == "attr-sq" else _BREAKS["attr-unquoted"]
        encode = escape if context != "attr-unquoted" else _attr_unquoted
        # The value starts the URL when only white space precedes it in the attribute
        # (value_start < 0: it began in an earlier streamed window; assume it starts).
        prefix = "" if scanner.state == BEFORE_VALUE or scanner.value_start < 0 \
            else text[scanner.value_start:start]
        if attr in URL_ATTRIBUTES and not prefix.strip():
            if dangerous_url(value):
                return BLOCKED_URL, context + ":url-scheme"
        if attr.startswith("on"):  # an event handler: JavaScript once entities are decoded
            return str(encode(js_escape(value))), context + ":event-handler"
        if attr == "srcdoc" and "<" in value:  # HTML once entities are decoded
            return str(escape(str(escape(value)))), context + ":srcdoc"
        if not quoted_break.search(value):
            return None
        return str(encode(value)), context
    if context == "script-string":
        quote = _JS_DQ_BREAK if scanner.state == JS_DQ else _JS_SQ_BREAK
        return (js_escape(value), context) if quote.search(value) else None
    if not _BREAKS[context].search(value):
        return None
    if context == "tag":
        return _NOT_NAME.sub("_", value), context
    if context == "script":
        return '"' + js_escape(value) + '"', context
    if context in ("script-template", "script-comment"):
        return js_escape(value), context
    if context == "style":
        return value.replace("<", "\\3c "), context
    if context == "cdata":
        return value.replace("]]>", "]]]]><![CDATA[>"), context
    return str(escape(value)), context


class Neutraliser:
    """Neutralise reflections in a document fed in pieces (or all at once).

    :meth:`feed` takes the next piece of text and returns what can be sent on; it keeps
    back the last ``longest value - 1`` characters (at least 16, the longest token the
    scanner needs to see whole), so an occurrence split across pieces is still found.
    :meth:`finish` returns the rest. ``findings`` grows as occurrences are replaced.
    """

    def __init__(self, candidates, xml: bool = False):
        self.candidates = tuple(candidates)
        self.scanner = _Scanner(xml)
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
        spans = []
        for candidate in self.candidates:
            value = candidate.value
            i = text.find(value)
            while 0 <= i < safe:
                spans.append((i, -len(value), candidate))
                i = text.find(value, i + len(value))
        spans.sort()
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
    if not any(candidate.value in text for candidate in candidates):
        return text, []
    neutraliser = Neutraliser(candidates, xml)
    neutraliser.keep = 0
    out = neutraliser._process(text, len(text), final=True)[0]
    if not neutraliser.findings:
        return text, []
    return out, neutraliser.findings
