"""JSON made inert to HTML and old JS parsers, without parsing it (see :mod:`wsgisec.escaping`).

``< > & '`` U+2028 U+2029 become ``\\u003c \\u003e \\u0026 \\u0027 \\u2028 \\u2029`` as bytes: in
JSON (RFC 8259 §2, §7) these characters are legal only inside strings, where the escape
is the same character, so every parser reads the same value, and an invalid document
stays invalid. :class:`JSONStream` does the same chunk by chunk.
"""

from __future__ import annotations

__all__ = ["escape_json", "JSONStream"]

_JSON_ESCAPES = ((b"<", b"\\u003c"), (b">", b"\\u003e"), (b"&", b"\\u0026"), (b"'", b"\\u0027"),
                 (b"\xe2\x80\xa8", b"\\u2028"), (b"\xe2\x80\xa9", b"\\u2029"))


def escape_json(data: bytes) -> bytes:
    """Escape ``< > & '`` U+2028 U+2029 in UTF-8 JSON bytes (see the module docstring)."""
    for raw, escaped in _JSON_ESCAPES:
        if raw in data:
            data = data.replace(raw, escaped)
    return data


class JSONStream:
    """:func:`escape_json` chunk by chunk; a U+2028/9 split across chunks is carried."""

    __slots__ = ("carry",)

    def __init__(self):
        self.carry = b""

    def feed(self, chunk: bytes) -> bytes:
        data = self.carry + chunk if self.carry else chunk
        cut = 1 if data.endswith(b"\xe2") else 2 if data.endswith(b"\xe2\x80") else 0
        if cut:
            self.carry, data = data[-cut:], data[:-cut]
        else:
            self.carry = b""
        return escape_json(data)

    def finish(self) -> bytes:
        return escape_json(self.carry)
