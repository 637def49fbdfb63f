"""The request values the escaping layer looks for in a response ("reflection candidates").

Query and form fields and their names, strings (and keys) of a JSON body, the path and
its segments, and the request headers named in ``reflect_headers``: at most 256 values,
each at least ``min_reflect_length`` characters, and only those that could leave a
context (:func:`wsgisec.escaping.reflection.is_candidate`) or, for the structure check,
forge JSON (:func:`wsgisec.escaping.structure.is_structural`). The request body is read
once, bounded, through :func:`wsgisec.wsgi.read_body`.
"""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qsl

from .reflection import Candidate, is_candidate
from ..wsgi import BodyTooLarge, read_body

__all__ = ["collect", "may_hold", "request_body", "safe_name", "MAX_CANDIDATES"]

MAX_CANDIDATES = 256
_SAFE_NAME = re.compile(r"[\w.\[\]-]{1,64}")
_FORM = "application/x-www-form-urlencoded"
_JSON_TYPES = frozenset({"application/json", "text/json"})


def collect(environ, body, *, sources, minimum, header_keys, rule=None) -> list[Candidate]:
    """The candidates of one request; ``body`` is ``(kind, bytes)`` from :func:`request_body`."""
    found: dict[str, Candidate] = {}

    def add(source, name, value):
        if value not in found and len(found) < MAX_CANDIDATES and len(value) >= minimum \
                and (rule(value) if rule else is_candidate(value, minimum)):
            found[value] = Candidate(source, name, value)

    if "query" in sources:
        query = _wsgi_text(environ.get("QUERY_STRING", ""))
        if query:
            for name, value in parse_qsl(query, keep_blank_values=True):
                add("query", name, value)
                add("query", name, name)
    if body is not None:
        kind, data = body
        if kind == "form":
            for name, value in parse_qsl(data.decode("utf-8", "replace"), keep_blank_values=True):
                add("form", name, value)
                add("form", name, name)
        else:
            try:
                document = json.loads(data)
            except ValueError:
                document = None
            for name, value in _json_strings(document, ""):
                add("json", name, value)
    if "path" in sources:
        path = _wsgi_text(environ.get("PATH_INFO", ""))
        add("path", "path", path)
        for index, segment in enumerate(path.split("/")):
            if segment:
                add("path", f"segment {index}", segment)
    if "headers" in sources:
        for key, name in header_keys:
            value = environ.get(key)
            if value:
                add("header", name, _wsgi_text(value))
    return list(found.values())


def may_hold(environ, body, chars: str, *, sources, header_keys) -> bool:
    """False only if no value :func:`collect` could return holds one of ``chars`` (ASCII):
    a check of the raw query string, path and headers, so a request with nothing to look
    for skips the parsing. Percent-encoding (``%``) and a JSON body (``\\u`` escapes)
    count as "may"; UTF-8 re-decoding never yields an ASCII character."""
    looked = set(chars) | {"%"}
    if body is not None and (body[0] == "json" or not looked.isdisjoint(body[1].decode("latin-1"))):
        return True
    raw = []
    if "query" in sources:
        raw.append(environ.get("QUERY_STRING", ""))
    if "path" in sources:
        raw.append(environ.get("PATH_INFO", ""))
    if "headers" in sources:
        raw.extend(environ.get(key) or "" for key, _name in header_keys)
    return any(not looked.isdisjoint(value) for value in raw)


def request_body(environ, sources, limit):
    """``("form"|"json", bytes)`` of a form or JSON request body (bounded; the app still
    reads it whole), or None."""
    ctype = environ.get("CONTENT_TYPE", "").split(";", 1)[0].strip().lower()
    if ctype == _FORM:
        kind = "form"
    elif ctype in _JSON_TYPES or ctype.endswith("+json"):
        kind = "json"
    else:
        return None
    if kind not in sources:
        return None
    try:
        # Content-Length is present (checked by the caller), so nothing is read when
        # it is too large: the app still gets the whole stream.
        return kind, read_body(environ, min(limit, 1024 * 1024))
    except (BodyTooLarge, ValueError):
        return None


def safe_name(name: str) -> str:
    """A parameter name fit for an event: names are chosen by the caller too."""
    return name if _SAFE_NAME.fullmatch(name) else f"<unusual name, {len(name)} chars>"


def _wsgi_text(value: str) -> str:
    """PEP 3333 strings are latin-1-decoded bytes; most clients sent UTF-8."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def _json_strings(value, path, depth=0):
    if depth > 32:
        return
    if isinstance(value, str):
        yield path or "(body)", value
    elif isinstance(value, dict):
        for key, item in value.items():
            name = f"{path}.{key}" if path else str(key)
            yield name, str(key)
            yield from _json_strings(item, name, depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _json_strings(item, f"{path}[{index}]", depth + 1)
