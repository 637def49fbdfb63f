"""Learn mode: observe traffic, then write the OpenAPI document that allows it.

Writing an allowlist for a legacy API by hand is where allowlisting projects stall, so,
like NAXSI's learning mode, the whitelist layer can watch real (or test) traffic first.
With ``mode = learn`` every request is recorded in the store, per route and method
(namespace ``whitelist.learn``, key ``"GET /api/items/{item_id}"``):

* which query parameters, path segments and body fields appear, how often (so a field
  seen in every request becomes ``required``);
* for each value: its JSON type (for strings from URLs and forms: what the text looks
  like — an integer, a number, ``true``/``false``, or text), shortest/longest length,
  smallest/largest number, and character classes (digits, letters, space, ``-_.``,
  other punctuation, non-ASCII);
* up to 16 distinct short values as *enum candidates* (never for fields whose name says
  token, secret, password, key, csrf, session, signature or auth, and never values over
  32 characters: the store must not become a copy of partners' credentials);
* the media type of the body, the XML root element.

Path segments that look like ids (digits, UUIDs, long hex) become templates:
``/api/items/3`` is recorded as ``/api/items/{item_id}``. With a document configured, its
templates are used instead.

:func:`infer_document` turns the observations into OpenAPI 3.1 (``wsgisec learn``).
The result is deliberately conservative and meant to be read before it is enforced:
objects are closed, numbers never seen negative get ``minimum: 0`` (no upper bound is
guessed), strings get ``maxLength`` = the next power of two at or above twice
the longest value seen (at least 16), strings made only of letters, digits and ``-_.``
get a ``pattern``, other strings stay free text (so the text policy applies to them when
the document is enforced), and enum candidates are written as ``x-enum-candidates`` for
the operator to promote to ``enum`` by hand. Operations seen fewer than
``--min-samples`` times are left out (and listed on stderr).

Learning writes to the store on every request (a read and a write per route): it is for
a staging run or a short observation window, not for peak production traffic.
"""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qsl

from .. import openapi

__all__ = ["Learner", "infer_document", "NAMESPACE"]

NAMESPACE = "whitelist.learn"
MAX_VALUES = 16
MAX_VALUE_LENGTH = 32
_SECRET_NAME = re.compile(r"token|secret|passw|key|csrf|session|signature|auth|cookie", re.IGNORECASE)
_ID_SEGMENT = re.compile(r"\d+|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|"
                         r"[0-9a-fA-F]{16,}")
_INTEGER = re.compile(r"-?(?:0|[1-9][0-9]{0,17})")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]{0,17})\.[0-9]{1,17}")
_WORDISH = set("dlu_")  # digits, lower, upper, -_. : can be a pattern


def _classes(text: str) -> set:
    found = set()
    for char in text:
        if char.isdigit() and char.isascii():
            found.add("d")
        elif char.isascii() and char.islower():
            found.add("l")
        elif char.isascii() and char.isupper():
            found.add("u")
        elif char in "-_.":
            found.add("_")
        elif char == " ":
            found.add("s")
        elif char.isascii():
            found.add("p")
        else:
            found.add("n")
    return found


def _text_type(text: str) -> str:
    if _INTEGER.fullmatch(text):
        return "integer"
    if _NUMBER.fullmatch(text):
        return "number"
    if text in ("true", "false"):
        return "boolean"
    return "string"


def _new_node() -> dict:
    return {"n": 0, "t": {}}


def _observe(node: dict, value, name: str, from_text: bool) -> None:
    """Merge one value into a shape node (a small JSON-able dict)."""
    node["n"] += 1
    if value is None:
        kind = "null"
    elif isinstance(value, bool):
        kind = "boolean"
    elif isinstance(value, int):
        kind = "integer"
    elif isinstance(value, float):
        kind = "number"
    elif isinstance(value, str):
        kind = _text_type(value) if from_text else "string"
    elif isinstance(value, dict):
        kind = "object"
    elif isinstance(value, list):
        kind = "array"
    else:
        kind = "string"
    node["t"][kind] = node["t"].get(kind, 0) + 1
    if isinstance(value, str):
        length = len(value)
        node["lmin"] = min(node.get("lmin", length), length)
        node["lmax"] = max(node.get("lmax", length), length)
        node["cc"] = "".join(sorted(set(node.get("cc", "")) | _classes(value)))
        number = None
        if kind in ("integer", "number"):
            number = float(value)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        number = value
    else:
        number = None
    if number is not None:
        node["vmin"] = min(node.get("vmin", number), number)
        node["vmax"] = max(node.get("vmax", number), number)
    if isinstance(value, (str, int, float, bool)) and not _SECRET_NAME.search(name or ""):
        values = node.get("vals", [])
        if values is not None and value not in values:
            if len(values) >= MAX_VALUES or (isinstance(value, str) and len(value) > MAX_VALUE_LENGTH):
                values = None
            else:
                values = values + [value]
        node["vals"] = values
    elif isinstance(value, (str, int, float, bool)):
        node["vals"] = None
    if isinstance(value, dict):
        properties = node.setdefault("p", {})
        for key, item in value.items():
            _observe(properties.setdefault(key, _new_node()), item, key, from_text)
    elif isinstance(value, list):
        items = node.setdefault("i", _new_node())
        for item in value:
            _observe(items, item, name, from_text)


def _object_from_pairs(pairs) -> dict:
    grouped = {}
    for key, value in pairs:
        grouped.setdefault(key, []).append(value)
    return {key: values[0] if len(values) == 1 else values for key, values in grouped.items()}


def _template(path: str) -> tuple[str, dict]:
    segments = path.split("/")
    names = {}
    for index, segment in enumerate(segments):
        if segment and _ID_SEGMENT.fullmatch(segment):
            before = segments[index - 1] if index else ""
            base = re.sub(r"[^A-Za-z0-9_]", "_", before[:-1] if before.endswith("s") else before) or "id"
            name = f"{base}_id" if base != "id" else "id"
            while name in names:
                name += "_"
            names[name] = segment
            segments[index] = "{" + name + "}"
    return "/".join(segments), names


class Learner:
    """Records what a request looks like in the store (see the module docstring)."""

    def __init__(self, store, document=None):
        self.store = store
        self.document = document

    def observe(self, environ: dict, body: bytes) -> None:
        path = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8")
        method = environ.get("REQUEST_METHOD", "GET").upper()
        matched = self.document.match(path) if self.document is not None else None
        if matched is not None:
            template, path_values = matched[0].template, matched[1]
        else:
            template, path_values = _template(path)
        key = f"{method} {template}"
        record = self.store.get(NAMESPACE, key) or {"method": method, "path": template, "n": 0,
                                                        "query": _new_node(), "params": {}, "bodies": {},
                                                        "with_body": 0}
        record["n"] += 1
        query = parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True, errors="strict")
        _observe(record["query"], _object_from_pairs(query), "", from_text=True)
        for name, value in path_values.items():
            _observe(record["params"].setdefault(name, _new_node()), value, name, from_text=True)
        if body:
            record["with_body"] += 1
            parsed = openapi.parse_media_type(environ.get("CONTENT_TYPE", ""))
            media_type = parsed[0] if parsed else "application/octet-stream"
            kind = openapi.media_kind(media_type)
            node = record["bodies"].setdefault(media_type, _new_node())
            if kind == "json":
                _observe(node, json.loads(body.decode("utf-8")), "", from_text=False)
            elif kind == "form":
                _observe(node, _object_from_pairs(parse_qsl(body.decode("ascii"), keep_blank_values=True,
                                                            errors="strict")), "", from_text=True)
            elif kind == "xml":
                from defusedxml import ElementTree as SafeElementTree

                root = SafeElementTree.fromstring(body, forbid_dtd=True)
                node["root"] = root.tag.rsplit("}", 1)[-1]
                _observe(node, _xml_plain(root), "", from_text=True)
            elif kind == "text":
                _observe(node, body.decode("utf-8"), "", from_text=False)
            else:
                node["n"] += 1
                node["t"]["binary"] = node["t"].get("binary", 0) + 1
        self.store.put(NAMESPACE, key, record)


def _xml_plain(element):
    if len(element) == 0 and not element.attrib:
        return element.text or ""
    value = {key.rsplit("}", 1)[-1]: text for key, text in element.attrib.items()}
    for child in element:
        name = child.tag.rsplit("}", 1)[-1]
        item = _xml_plain(child)
        if name in value:
            value[name] = value[name] + [item] if isinstance(value[name], list) else [value[name], item]
        else:
            value[name] = item
    return value


# -- inference ------------------------------------------------------------------------

def _max_length(longest: int) -> int:
    length = 16
    while length < 2 * longest:
        length *= 2
    return length


def _merge(first: dict, second: dict, exclude=()) -> dict:
    """Two shape nodes as one (counts added, ranges widened, classes and values joined)."""
    merged = {"n": first.get("n", 0) + sum(n for kind, n in second.get("t", {}).items() if kind not in exclude),
              "t": dict(first.get("t", {}))}
    for kind, count in second.get("t", {}).items():
        if kind not in exclude:
            merged["t"][kind] = merged["t"].get(kind, 0) + count
    for key, pick in (("lmin", min), ("lmax", max), ("vmin", min), ("vmax", max)):
        values = [node[key] for node in (first, second) if key in node]
        if values:
            merged[key] = pick(values)
    merged["cc"] = "".join(sorted(set(first.get("cc", "")) | set(second.get("cc", ""))))
    if first.get("vals") is None and "vals" in first or second.get("vals") is None and "vals" in second:
        merged["vals"] = None
    else:
        merged["vals"] = list(dict.fromkeys((first.get("vals") or []) + (second.get("vals") or [])))[:MAX_VALUES]
    return merged


def _schema(node: dict) -> dict:
    types = {kind for kind in node.get("t", {}) if kind != "null"}
    nullable = "null" in node.get("t", {})
    if types == {"binary"}:
        return {"type": "string", "format": "binary"}
    if types <= {"integer"} and types:
        schema = {"type": "integer"}
    elif types <= {"integer", "number"} and types:
        schema = {"type": "number"}
    elif types == {"boolean"}:
        schema = {"type": "boolean"}
    elif types == {"object"}:
        properties = {name: _schema(sub) for name, sub in sorted(node.get("p", {}).items())}
        objects = node["t"]["object"]
        required = [name for name, sub in sorted(node.get("p", {}).items()) if sub["n"] >= objects]
        schema = {"type": "object", "properties": properties}
        if required:
            schema["required"] = required
        schema["additionalProperties"] = False
    elif "array" in types:
        # A query/form parameter seen both once and repeated is a list (a single value
        # is a one-item list when enforced); the single values are folded into items.
        items = node.get("i") or _new_node()
        if types != {"array"}:
            items = _merge(items, {key: value for key, value in node.items() if key not in ("i", "p")},
                           exclude=("array", "object"))
        schema = {"type": "array", "items": _schema(items) if items.get("n") else {}}
    elif not types:
        schema = {}
    else:
        schema = {"type": "string", "maxLength": _max_length(node.get("lmax", 0))}
        classes = set(node.get("cc", ""))
        if classes and classes <= _WORDISH:
            schema["pattern"] = "^[A-Za-z0-9_.-]*$"
    if schema.get("type") in ("integer", "number") and node.get("vmin", -1) >= 0:
        schema["minimum"] = 0  # never negative so far; upper bounds are left to the reviewer
    if nullable and "type" in schema:
        schema["type"] = [schema["type"], "null"]
    values = node.get("vals")
    if values and schema.get("type") in ("string", "integer", "number") and node["n"] >= 2 * len(values):
        convert = {"integer": int, "number": float}.get(schema["type"], str)
        try:
            schema["x-enum-candidates"] = sorted({convert(value) for value in values}, key=str)
        except (TypeError, ValueError):
            pass
    return schema


def infer_document(records, min_samples: int = 1, title: str = "Learned by wsgisec"):
    """An OpenAPI 3.1 document from learned ``(key, record)`` pairs; (document, skipped keys)."""
    paths = {}
    skipped = []
    for key, record in sorted(records, key=lambda item: item[0]):
        if record.get("n", 0) < min_samples:
            skipped.append(key)
            continue
        operation = {"summary": f"learned from {record['n']} request(s)"}
        parameters = []
        for name, node in sorted(record.get("params", {}).items()):
            parameters.append({"name": name, "in": "path", "required": True, "schema": _schema(node)})
        query = record.get("query", {})
        for name, node in sorted(query.get("p", {}).items()):
            schema = _schema(node)
            parameters.append({"name": name, "in": "query", "required": node["n"] >= record["n"],
                               "schema": schema})
        if parameters:
            operation["parameters"] = parameters
        if record.get("bodies"):
            content = {}
            for media_type, node in sorted(record["bodies"].items()):
                schema = _schema(node)
                if node.get("root"):
                    schema["xml"] = {"name": node["root"]}
                content[media_type] = {"schema": schema}
            operation["requestBody"] = {"required": record.get("with_body", 0) >= record["n"],
                                        "content": content}
        operation["responses"] = {"default": {"description": "as the application answers"}}
        paths.setdefault(record["path"], {})[record["method"].lower()] = operation
    document = {
        "openapi": "3.1.0",
        "info": {"title": title, "version": "learned",
                 "description": "Inferred by `wsgisec learn` from observed traffic. Review it "
                                "(lengths, required fields, x-enum-candidates) before you enforce it."},
        "paths": paths,
    }
    return document, skipped
