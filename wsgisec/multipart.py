"""The one multipart/form-data reader (RFC 7578 on RFC 2046 §5.1), strict by design.

Shared by every layer that looks inside a form upload (the whitelist checks every field;
a CSRF check needs one field). Parsers that disagree about a multipart body are a known
way past a filter: the filter reads one field list and the app another (CVE-2023-30798
Starlette, the WAF multipart bypasses in OWASP CRS rule 922). So this reader refuses
anything it would have to guess about instead of guessing:

* the boundary comes from ``Content-Type`` (1-70 visible ASCII characters, RFC 2046
  §5.1.1 allows fewer, but clients use more), quoted or not;
* every delimiter line is ``--boundary`` followed by CRLF, the body ends with
  ``--boundary--``; the preamble and epilogue are ignored, as the RFC says;
* every part has header lines ``Name: value`` (CRLF), a blank line, then its content,
  and exactly one ``Content-Disposition: form-data`` with a ``name`` parameter (RFC 7578
  §4.2); names and filenames are UTF-8 (RFC 7578 §5.1); a repeated header in one part is
  refused; ``filename*`` (RFC 5987 encoding, which RFC 7578 §4.2 forbids) is refused;
* at most ``max_parts`` parts.

The body must already be bounded (``wsgi.read_body`` with the layer's limit); parsing is
one ``bytes.split`` plus a scan per part, linear in the body.

``parts(body, boundary, max_parts)`` yields :class:`Part`; ``field(body, content_type,
name)`` returns one plain field's bytes or None (malformed bodies give None); any
malformation raises :class:`MultipartError`, whose ``reason`` is a short fixed phrase safe
to show a caller. :func:`parse_params` is the header-parameter grammar (RFC 9110 §5.6.6)
that media types and ``Content-Disposition`` share.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field as dataclass_field

__all__ = ["Part", "MultipartError", "boundary", "parts", "field", "parse_params"]

_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_PARAM = re.compile(rf"\s*;\s*({_TOKEN})=({_TOKEN}|\"(?:[^\"\\]|\\.)*\")\s*")
# RFC 2046's bchars, widened to visible ASCII: clients send "$" and the like (WebTest does).
_BOUNDARY_CHARS = re.compile(r"[\x20-\x7e]{0,69}[\x21-\x7e]")
_HEADER_NAME = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


class MultipartError(ValueError):
    """A body this reader will not guess about; ``reason`` is safe to show, ``too_large`` says 413-like."""

    def __init__(self, reason: str, too_large: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.too_large = too_large


@dataclass(frozen=True)
class Part:
    """One part: its field ``name``, ``filename`` (None for a plain field), headers, bytes."""

    name: str
    filename: str | None
    content: bytes
    headers: dict = dataclass_field(default_factory=dict)  # lower-cased name -> value (latin-1 str)

    @property
    def content_type(self) -> str:
        """The part's declared media type; ``text/plain`` when absent (RFC 7578 §4.4)."""
        return self.headers.get("content-type", "text/plain").split(";", 1)[0].strip().lower()


def parse_params(text: str) -> dict | None:
    """``; a=b; c="d"`` -> {"a": "b", "c": "d"}; None if malformed (or a name repeats)."""
    params = {}
    position = 0
    while position < len(text):
        found = _PARAM.match(text, position)
        if found is None:
            if text[position:].strip(" \t;") == "":
                break
            return None
        name = found.group(1).lower()
        value = found.group(2)
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        if name in params:
            return None
        params[name] = value
        position = found.end()
    return params


def boundary(params: dict) -> bytes:
    """The boundary from the parsed ``Content-Type`` parameters, checked (RFC 2046 §5.1.1)."""
    value = params.get("boundary")
    if not value or not _BOUNDARY_CHARS.fullmatch(value):
        raise MultipartError("multipart boundary is missing or invalid")
    return value.encode("ascii")


_MALFORMED = "is not a well-formed multipart body"


def parts(body: bytes, boundary: bytes, max_parts: int):
    """Each :class:`Part` of a multipart/form-data ``body``, or :class:`MultipartError`."""
    delimiter = b"--" + boundary
    chunks = body.split(delimiter)
    # chunks[0] is the preamble; the last one must be the close delimiter's "--" + epilogue.
    if len(chunks) < 3 or not chunks[-1].startswith(b"--"):
        raise MultipartError(_MALFORMED)
    if len(chunks) - 2 > max_parts:
        raise MultipartError(f"has more than {max_parts} fields", too_large=True)
    if chunks[0] and not chunks[0].endswith(b"\r\n"):
        raise MultipartError(_MALFORMED)  # the first delimiter must start a line
    for chunk in chunks[1:-1]:
        yield _part(chunk)


def _part(chunk: bytes) -> Part:
    if not chunk.startswith(b"\r\n") or not chunk.endswith(b"\r\n"):
        raise MultipartError(_MALFORMED)
    head, sep, content = chunk[2:-2].partition(b"\r\n\r\n")
    if not sep:
        raise MultipartError(_MALFORMED)
    headers = {}
    for line in head.split(b"\r\n") if head else ():
        key, colon, value = line.partition(b":")
        if not colon or not _HEADER_NAME.fullmatch(key):
            raise MultipartError(_MALFORMED)
        name = key.decode("ascii").lower()
        if name in headers:
            raise MultipartError("has a part with a repeated header")
        headers[name] = value.decode("latin-1").strip()
    disposition = headers.get("content-disposition")
    if disposition is None or disposition[:9].lower() != "form-data":
        raise MultipartError("has a part without form-data disposition")
    params = parse_params(disposition[9:])
    if params is None or "name" not in params or "filename*" in params:
        raise MultipartError("has a part without a valid name")
    try:
        name = params["name"].encode("latin-1").decode("utf-8")
        filename = params.get("filename")
        if filename is not None:
            filename = filename.encode("latin-1").decode("utf-8")
    except UnicodeError:
        raise MultipartError("has a part name that is not UTF-8") from None
    return Part(name, filename, content, headers)


def field(body: bytes, content_type: str, name: str, max_parts: int = 1000) -> bytes | None:
    """The content of the first plain (non-file) field ``name``, or None.

    For a layer that needs one field (a CSRF token) and refuses on its absence: a
    malformed body, a missing boundary or no such field all give None.
    """
    _, _, rest = content_type.partition(";")
    params = parse_params(";" + rest if rest else "")
    if params is None:
        return None
    try:
        for part in parts(body, boundary(params), max_parts):
            if part.name == name and part.filename is None:
                return part.content
    except MultipartError:
        return None
    return None
