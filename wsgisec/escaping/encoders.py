"""The per-context encoders of reflection neutralising, and the choice between them.

Given a reflected value and the context the :class:`~wsgisec.escaping.html_scanner.Scanner`
found it in, :func:`replacement` decides whether it can leave that context and, if so,
returns the encoding that keeps it data there (OWASP XSS Prevention Cheat Sheet rules
#1-#5; the table is in :mod:`wsgisec.escaping.reflection`): ``markupsafe.escape`` for
HTML text and quoted attributes, ``&#xHH;`` for unquoted attributes, ``\\uXXXX``
(:func:`js_escape`) in scripts, ``\\3c`` in CSS, split CDATA sections, and
``about:invalid#wsgisec-blocked`` for a ``javascript:``/``vbscript:``/``data:`` URL
(:func:`dangerous_url`, read as the browser's URL parser would) at the start of a URL
attribute.
"""

from __future__ import annotations

import html
import re

from markupsafe import escape

from .html_scanner import BEFORE_VALUE, JS_DQ, Scanner

__all__ = ["BLOCKED_URL", "URL_ATTRIBUTES", "dangerous_url", "js_escape", "replacement"]

BLOCKED_URL = "about:invalid#wsgisec-blocked"

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


# -- deciding -------------------------------------------------------------------------

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


def replacement(value: str, context: str, scanner: Scanner, text: str, start: int):
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
