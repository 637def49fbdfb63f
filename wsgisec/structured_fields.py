"""RFC 8941 structured fields: the strict subset HTTP message signatures use.

``Signature-Input``, ``Signature``, ``Accept-Signature`` (RFC 9421 §4) and
``Content-Digest`` (RFC 9530) are dictionaries of items and inner lists with parameters.
:func:`parse_dictionary` reads one, refusing anything malformed (duplicate keys too, as
RFC 9421 §3.2 asks) with a fixed message that never repeats the field; the serializers
write them back. Standard library only: :mod:`wsgisec.partner` (on partners' machines)
uses it through :mod:`wsgisec.httpsig`.
"""

from __future__ import annotations

import base64
import re

__all__ = ["StructuredFieldError", "Token", "parse_dictionary", "serialize_inner_list",
           "serialize_dictionary", "MAX_FIELD_LENGTH"]


class StructuredFieldError(ValueError):
    """A structured field is malformed (fixed, secret-free text)."""


class Token(str):
    """An RFC 8941 Token (bare word), as opposed to a quoted String."""

    __slots__ = ()


_KEY = re.compile(r"[a-z*][a-z0-9_\-.*]*")
_TOKEN = re.compile(r"[A-Za-z*][A-Za-z0-9!#$%&'*+\-.^_`|~:/]*")
_NUMBER = re.compile(r"-?[0-9]{1,15}(\.[0-9]{1,3})?")
_B64 = re.compile(r"[A-Za-z0-9+/=]*")
_STRING = re.compile(r'"((?:[ !#-\[\]-~]|\\["\\])*)"')
_UNESCAPE = re.compile(r"\\(.)")
_PRINTABLE = re.compile(r"[ -~]*")
# Bounds so that a hostile header costs little to refuse.
MAX_FIELD_LENGTH = 8192


class _Parser:
    __slots__ = ("text", "pos")

    def __init__(self, text: str):
        if len(text) > MAX_FIELD_LENGTH:
            raise StructuredFieldError("structured field too long")
        if not text.isascii():
            raise StructuredFieldError("structured field is not ASCII")
        self.text = text
        self.pos = 0

    def fail(self, what: str):
        raise StructuredFieldError(f"malformed structured field: {what}")

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_sp(self):
        while self.peek() == " ":
            self.pos += 1

    def skip_ows(self):
        while self.peek() in (" ", "\t") and self.peek():
            self.pos += 1

    def key(self) -> str:
        match = _KEY.match(self.text, self.pos)
        if not match:
            self.fail("expected a key")
        self.pos = match.end()
        return match.group()

    def bare_item(self):
        char = self.peek()
        if char == '"':
            return self.string()
        if char == ":":
            end = self.text.find(":", self.pos + 1)
            if end < 0:
                self.fail("unterminated byte sequence")
            raw = self.text[self.pos + 1:end]
            if not _B64.fullmatch(raw):
                self.fail("bad byte sequence")
            self.pos = end + 1
            try:
                return base64.b64decode(raw, validate=True)
            except ValueError:
                self.fail("bad byte sequence")
        if char == "?":
            value = self.text[self.pos + 1:self.pos + 2]
            if value not in ("0", "1"):
                self.fail("bad boolean")
            self.pos += 2
            return value == "1"
        if char == "-" or char.isdigit():
            match = _NUMBER.match(self.text, self.pos)
            if not match:
                self.fail("bad number")
            self.pos = match.end()
            return float(match.group()) if match.group(1) else int(match.group())
        match = _TOKEN.match(self.text, self.pos)
        if not match:
            self.fail("unexpected character")
        self.pos = match.end()
        return Token(match.group())

    def string(self) -> str:
        # RFC 8941 §4.2.5: printable ASCII; only \" and \\ may be escaped.
        match = _STRING.match(self.text, self.pos)
        if not match:
            self.fail("bad string")
        self.pos = match.end()
        raw = match.group(1)
        return _UNESCAPE.sub(r"\1", raw) if "\\" in raw else raw

    def params(self) -> dict:
        params = {}
        while self.peek() == ";":
            self.pos += 1
            self.skip_sp()
            name = self.key()
            value = True
            if self.peek() == "=":
                self.pos += 1
                value = self.bare_item()
            params[name] = value  # RFC 8941 §4.2.3.2: a later duplicate overwrites
        return params

    def item_or_inner_list(self):
        if self.peek() == "(":
            self.pos += 1
            items = []
            while True:
                self.skip_sp()
                if self.peek() == ")":
                    self.pos += 1
                    return items, self.params()
                items.append((self.bare_item(), self.params()))
                if self.peek() not in (" ", ")"):
                    self.fail("expected space or ) in inner list")
        return self.bare_item(), self.params()


def parse_dictionary(text: str) -> dict:
    """RFC 8941 §4.2.2: ``{key: (value, params)}``; an inner list value is a list of
    ``(item, params)``. Duplicate keys are refused (RFC 9421 §3.2 asks verifiers to)."""
    text = text.strip(" \t")
    if len(text) <= MAX_FIELD_LENGTH:
        parsed = _parse_common(text)
        if parsed is not None:
            return parsed
    return _parse_any(text)


# The shape every signer sends (RFC 9421 §4): members that are an inner list of plain
# strings or a byte sequence, with parameters that are integers, plain strings or tokens.
# Matched with a few regular expressions instead of character by character (about 5x
# faster); anything else -- escapes, decimals, booleans, item parameters, an error --
# returns None and goes to the full parser, so both always agree
# (tests/signed_requests/test_structured_fields.py checks that with hypothesis).
_PLAIN = r'"[ !#-\[\]-~]*"'
_COMMON_PARAMS = (r'(?:;[a-z*][a-z0-9_\-.*]*(?:=(?:' + _PLAIN +
                  r'|-?[0-9]{1,15}|[A-Za-z*][A-Za-z0-9!#$%&\'*+\-.^_`|~:/]*))?)*')
_COMMON_MEMBER = re.compile(r'([a-z*][a-z0-9_\-.*]*)=(?:\(((?:' + _PLAIN + r'(?: ' + _PLAIN +
                            r')*)?)\)|:([A-Za-z0-9+/=]*):)(' + _COMMON_PARAMS + r')(?:,[ \t]*|\Z)')
_COMMON_PARAM = re.compile(r';([a-z*][a-z0-9_\-.*]*)(?:=(?:"([^"]*)"|(-?[0-9]+)|([^;]+)))?')
_PLAIN_ITEM = re.compile(r'"([^"]*)"')


def _parse_common(text: str) -> dict | None:
    result = {}
    pos, end = 0, len(text)
    while pos < end:
        match = _COMMON_MEMBER.match(text, pos)
        if match is None or match.group(1) in result:
            return None
        name, inner, raw_bytes, raw_params = match.groups()
        pos = match.end()
        if pos == end and text[-1] in ", \t":
            return None  # a trailing comma: the full parser names the error
        params = {}
        for param in _COMMON_PARAM.finditer(raw_params):
            key, string, integer, token = param.groups()
            params[key] = (string if string is not None else int(integer) if integer is not None
                           else Token(token) if token is not None else True)
        if inner is not None:
            result[name] = ([(item, {}) for item in _PLAIN_ITEM.findall(inner)], params)
        else:
            try:
                result[name] = (base64.b64decode(raw_bytes, validate=True), params)
            except ValueError:
                return None
    return result


def _parse_any(text: str) -> dict:
    """The full RFC 8941 §4.2.2 dictionary parser (every type; names the error)."""
    parser = _Parser(text)
    result = {}
    if not parser.text:
        return result
    while True:
        name = parser.key()
        if name in result:
            parser.fail("duplicate key")
        if parser.peek() == "=":
            parser.pos += 1
            result[name] = parser.item_or_inner_list()
        else:
            result[name] = (True, parser.params())
        parser.skip_ows()
        if not parser.peek():
            return result
        if parser.peek() != ",":
            parser.fail("expected a comma")
        parser.pos += 1
        parser.skip_ows()
        if not parser.peek():
            parser.fail("trailing comma")


def _serialize_bare(value) -> str:
    kind = type(value)
    if kind is str:  # the common cases first (component names, keyid, nonce; created)
        if value.isascii() and value.isprintable() and '"' not in value and "\\" not in value:
            return f'"{value}"'
    elif kind is int:
        return str(value)
    if isinstance(value, bool):
        return "?1" if value else "?0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".") if value != int(value) else f"{int(value)}.0"
    if isinstance(value, (bytes, bytearray)):
        return ":" + base64.b64encode(value).decode("ascii") + ":"
    if isinstance(value, Token):
        return str(value)
    if isinstance(value, str):
        if not _PRINTABLE.fullmatch(value):
            raise StructuredFieldError("string with a character structured fields cannot carry")
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    raise StructuredFieldError("value structured fields cannot carry")


def _serialize_params(params: dict) -> str:
    if not params:
        return ""
    return "".join([f";{name}" if value is True else f";{name}={_serialize_bare(value)}"
                    for name, value in params.items()])


def serialize_inner_list(items, params: dict) -> str:
    """RFC 8941 §4.1.1.1: ``("a" "b");x=1``. ``items`` are ``(value, params)`` pairs."""
    inner = " ".join([_serialize_bare(value) + _serialize_params(p) if p else _serialize_bare(value)
                      for value, p in items])
    return f"({inner})" + _serialize_params(params)


def serialize_dictionary(members: dict) -> str:
    """``{key: (value, params)}`` back to text (value may be an inner list)."""
    parts = []
    for name, (value, params) in members.items():
        if isinstance(value, list):
            parts.append(f"{name}=" + serialize_inner_list(value, params))
        elif value is True:
            parts.append(name + _serialize_params(params))
        else:
            parts.append(f"{name}={_serialize_bare(value)}{_serialize_params(params)}")
    return ", ".join(parts)
