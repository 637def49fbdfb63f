"""The context scan behind reflection neutralising: a small, resumable HTML/XML tokenizer.

:class:`Scanner` reads a decoded document up to a position and says which *context* a
string inserted there would land in (``text``, ``attr-dq``, ``script-string``, ...; the
table is in :mod:`wsgisec.escaping.reflection`). It is the HTML tokenizer's states,
simplified (WHATWG HTML §13.2.5: data, tag open, attribute name and value, comment,
raw text and RCDATA elements, plus CDATA and processing instructions in XML mode),
with the JavaScript states inside ``<script>`` (strings, template literals with nested
``${}``, line and block comments; :class:`_ScriptStates`). It reads each document up to
each occurrence only, so a payload cannot change the context it is judged in; streaming
callers pass ``flush`` so that a window edge never splits a token.
"""

from __future__ import annotations

import re

__all__ = ["Scanner", "DATA", "BEFORE_VALUE", "JS_DQ"]

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


class _ScriptStates:
    """The JavaScript half of :class:`Scanner`: one step inside ``<script>``, and the
    context names of every state."""

    __slots__ = ()

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


class Scanner(_ScriptStates):
    """Where an inserted string would land: the HTML (or XML) tokenizer states, resumable.

    :meth:`advance` reads ``text[pos:end]``; :meth:`context` then names the state.
    """

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

