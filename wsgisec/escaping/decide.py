"""Which responses the escaping layer rewrites, decided from the status and headers alone.

:func:`prepare` runs in the layer's ``start_response``, before any body is read: it adds
the safe headers (:mod:`wsgisec.escaping.headers`; ``Content-Disposition: attachment``
under ``attachment_paths``; a charset on ``text/*``), then returns what kind of body this
is (``html``, ``xml``, ``json`` or ``csv``) if the layer rewrites it, or None to pass it
through untouched: other types, bodiless statuses (1xx, 204, 206, 304), ``HEAD``,
compressed bodies (``Content-Encoding``: put this layer inside any gzip middleware) and
charsets the rewrite cannot read safely.
"""

from __future__ import annotations

import re

from .. import settings
from .rewrite import _ascii_compatible, _codec_name

__all__ = ["prepare", "CSV_TYPES"]

_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_XML_TYPES = frozenset({"application/xml", "text/xml", "image/svg+xml"})
_JSON_TYPES = frozenset({"application/json", "text/json"})
CSV_TYPES = {"text/csv": b",", "text/comma-separated-values": b",",
              "text/tab-separated-values": b"\t"}
_NO_BODY_REWRITE = ("1", "204", "206", "304")


def prepare(layer, environ, status, headers):
    """Add the safe headers to ``headers`` (a copy); return ``(kind, detail,
    too_large)`` of a body to rewrite (detail: the charset, or the CSV delimiter;
    too_large: stream it at once), or None to pass it through."""
    path = environ.get("PATH_INFO", "")
    present = {name.lower() for name, _ in headers}
    common, document = layer.safe_headers.for_path(path)
    for name, value in common:
        if name.lower() not in present:
            headers.append((name, value))
    if layer.attachment_paths and "content-disposition" not in present \
            and settings.path_matches(path, layer.attachment_paths):
        headers.append(("Content-Disposition", "attachment"))

    ctype = content_encoding = length = None
    for index, (name, value) in enumerate(headers):
        lowered = name.lower()
        if lowered == "content-type":
            ctype = value
            if value[:5].lower() == "text/" and layer.default_charset and "charset=" not in value.lower():
                # No charset: browsers guess, and a guessed UTF-7 runs +ADw-script+AD4-.
                ctype = f"{value}; charset={layer.default_charset}"
                headers[index] = (name, ctype)
        elif lowered == "content-encoding":
            content_encoding = value.strip().lower()
        elif lowered == "content-length":
            length = value
    if ctype is None:
        return None
    mime, _, params = ctype.partition(";")
    mime = mime.strip().lower()
    is_document = mime in _HTML_TYPES or mime in _XML_TYPES or mime.endswith("+xml")
    if is_document:
        for name, value in document:
            if name.lower() not in present:
                headers.append((name, value))

    if status[:3].startswith(_NO_BODY_REWRITE) or environ.get("REQUEST_METHOD") == "HEAD":
        return None
    if content_encoding and content_encoding != "identity":
        return None  # compressed: cannot be searched; see "put escaping inside gzip"
    charset = None
    match = re.search(r"charset\s*=\s*\"?([A-Za-z0-9._:-]+)", params, re.IGNORECASE)
    if match:
        charset = match.group(1).lower()
    try:
        too_large = length is not None and int(length) > layer.max_buffer
    except ValueError:
        too_large = False

    if mime in _JSON_TYPES or mime.endswith("+json"):
        if not (layer.json_escape or layer.check_structure or layer.response_schemas) \
                or (charset and _codec_name(charset) not in ("utf-8", "ascii")):
            return None
        return "json", "utf-8", too_large
    if is_document and (layer.reflect_sources or (layer.check_structure and mime not in _HTML_TYPES)):
        if charset and _codec_name(charset) is None:
            return None
        # Larger documents are neutralised in a sliding window (rewrite.stream_overflow).
        return ("xml" if mime not in _HTML_TYPES else "html"), charset, too_large
    if mime in CSV_TYPES:
        if not layer.csv_neutralize or (charset and not _ascii_compatible(charset)):
            return None
        utf8 = _codec_name(charset or layer.default_charset or "utf-8") == "utf-8"
        return "csv", (CSV_TYPES[mime], utf8), too_large
    return None
