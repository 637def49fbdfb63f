"""Request bodies: size, media type, then JSON, form, multipart, XML or text against the schema.

Part of the whitelist layer (practice 2). The size is decided from ``Content-Length``
before reading (413) and enforced while reading; the media type is parsed (RFC 9110
§8.3.1) and must be declared (415); JSON must be UTF-8 (RFC 8259 §8.1) without duplicate
keys or NaN; forms are percent-encoded ASCII; multipart goes through the one strict
reader :mod:`wsgisec.multipart`; XML only through defusedxml (no DTD, no entities).
"""

from __future__ import annotations

import io
import json
import re
from itertools import accumulate
from urllib.parse import parse_qsl, urlencode

import fastjsonschema

from .. import multipart, openapi
from ..openapi import Invalid, coerce, describe, resolve, schema_types
from ..wsgi import BodyTooLarge, content_length, has_body, read_body
from . import text_policy
from .refusals import (INPUT_ATTACK, INPUT_INVALID, INPUT_TOO_LARGE, MEDIA_TYPE_UNDECLARED, XML_UNSAFE, Refusal,
                       _join, _shown)
from .values import object_parts as _object_parts

__all__ = ["BodyChecks", "XmlBodyChecks", "json_depth"]


class _Duplicate(ValueError):
    pass


def _no_duplicates(pairs):
    # RFC 8259 §4: names SHOULD be unique; parsers disagree on which value wins, so a
    # repeated name is a classic way to show the validator one value and the app another.
    result = dict(pairs)
    if len(result) != len(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise _Duplicate(key)
            seen.add(key)
    return result


def _no_constant(name):
    raise ValueError(f"{name} is not JSON")


# A JSON string (unrolled loop: several times faster than an alternation per character).
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")
_DEPTH_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def json_depth(text: str, limit: int) -> int:
    """Nesting depth of a JSON text, measured *before* parsing (the parser recurses).

    Strings are removed first (brackets inside them do not nest); the running sum of
    +1/-1 over what remains is computed in C. About 15 ms for 1 MB of dense JSON, and
    skipped when there are too few brackets to exceed ``limit``.
    """
    if text.count("[") + text.count("{") <= limit:
        return 0
    brackets = _NOT_BRACKETS.sub("", _JSON_STRING.sub("", text))
    return max(accumulate(map(_DEPTH_STEP.__getitem__, brackets)), default=0)


_FILENAME_BAD = re.compile(r"[/\\\x00-\x1f\x7f]|^\.+$|\.\.")


class BodyChecks:
    """The body checks of :class:`~wsgisec.whitelist.Whitelist` (a mixin)."""


    def _read(self, environ) -> bytes:
        try:
            return read_body(environ, self.max_body)
        except BodyTooLarge:
            raise Refusal(413, INPUT_TOO_LARGE, "request body", None,
                          f"is larger than {self.max_body} bytes") from None
        except ValueError:
            raise Refusal(400, INPUT_INVALID, "request body", None, "has an invalid Content-Length") from None

    def _check_body(self, environ, operation, definitions, rewrites):
        try:
            length = content_length(environ)
        except ValueError:
            raise Refusal(400, INPUT_INVALID, "request body", None, "has an invalid Content-Length") from None
        maybe = length > 0 if length is not None else has_body(environ)
        if not maybe:
            if operation.body_required:
                raise Refusal(400, INPUT_INVALID, "request body", None, "is required")
            return
        content_type = environ.get("CONTENT_TYPE", "")
        if not operation.has_body:
            if length is None and not self._read(environ):
                return  # a chunked/terminated stream that turned out empty
            if content_type:
                raise Refusal(415, MEDIA_TYPE_UNDECLARED, "request body", None,
                              "this operation accepts no request body")
            raise Refusal(400, INPUT_INVALID, "request body", None, "this operation accepts no request body")
        if not content_type:
            raise Refusal(415, MEDIA_TYPE_UNDECLARED, "Content-Type", None, "is required with a request body",
                          headers=[("Accept-Post", ", ".join(operation.bodies))])
        parsed = openapi.parse_media_type(content_type)
        if parsed is None:
            raise Refusal(415, MEDIA_TYPE_UNDECLARED, "Content-Type", None, "is not a valid media type",
                          headers=[("Accept-Post", ", ".join(operation.bodies))])
        media_type, params = parsed
        spec = operation.bodies.get(media_type)
        if spec is None:
            raise Refusal(415, MEDIA_TYPE_UNDECLARED, "media type", _shown(media_type),
                          "is not declared for this operation",
                          headers=[("Accept-Post", ", ".join(operation.bodies))])
        charset = params.get("charset", "utf-8").lower()
        if spec.kind != "binary" and charset not in ("utf-8", "utf8", "us-ascii"):
            raise Refusal(415, MEDIA_TYPE_UNDECLARED, "Content-Type", None, "charset must be utf-8",
                          headers=[("Accept-Post", ", ".join(operation.bodies))])
        body = self._read(environ)
        if not body:
            if operation.body_required:
                raise Refusal(400, INPUT_INVALID, "request body", None, "is required")
            return
        if spec.kind == "json":
            new = self._check_json(body, spec, definitions)
        elif spec.kind == "form":
            new = self._check_form(body, spec, definitions)
        elif spec.kind == "multipart":
            new = self._check_multipart(body, params, spec, definitions)
        elif spec.kind == "xml":
            new = self._check_xml(body, spec, definitions)
        elif spec.kind == "text":
            new = self._check_text(body, spec, definitions)
        else:
            new = None  # application/octet-stream: opaque bytes, bounded by max_body
        if new is not None:
            rewrites["body"] = new

    def _validate_body(self, spec, value, definitions, location):
        try:
            spec.validate(value)
        except fastjsonschema.JsonSchemaValueException as error:
            invalid = describe(error, definitions)
            if invalid.where:
                raise Refusal(400, INPUT_INVALID, location, _shown(invalid.where), invalid.rule) from None
            raise Refusal(400, INPUT_INVALID, "request body", None, invalid.rule) from None

    def _check_json(self, body, spec, definitions):
        try:
            text = body.decode("utf-8")  # RFC 8259 §8.1: UTF-8, no BOM
        except UnicodeDecodeError:
            raise Refusal(400, INPUT_INVALID, "request body", None, "must be UTF-8") from None
        if json_depth(text, self.max_json_depth) > self.max_json_depth:
            raise Refusal(400, INPUT_TOO_LARGE, "request body", None,
                          f"is nested deeper than {self.max_json_depth} levels")
        try:
            value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
        except _Duplicate as duplicate:
            raise Refusal(400, INPUT_INVALID, "body property", _shown(duplicate.args[0]),
                          "appears more than once") from None
        except (ValueError, RecursionError):
            raise Refusal(400, INPUT_INVALID, "request body", None, "is not valid JSON") from None
        self._validate_body(spec, value, definitions, "body property")
        new = self._walk("body property", "", value, spec.schema, definitions, decoded=False)
        if new is value:
            return None
        return json.dumps(new, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def _fields(self, pairs, schema, definitions, location):
        """Form/multipart fields -> an object typed as the schema says."""
        properties, extra, patterns = _object_parts(resolve(schema, definitions), definitions)
        grouped = {}
        for name, value in pairs:
            grouped.setdefault(name, []).append(value)
        result = {}
        for name, values in grouped.items():
            sub = properties.get(name)
            if sub is None:
                sub = next((s for p, s in patterns if p.search(name)), extra)
                if sub is False or sub is None:
                    raise Refusal(400, INPUT_INVALID, location, _shown(name), "is not declared")
            sub = resolve(sub, definitions)
            if "array" in schema_types(sub):
                result[name] = [self._field_value(location, name, v, sub.get("items", {}), definitions)
                                for v in values]
            elif len(values) > 1:
                raise Refusal(400, INPUT_INVALID, location, _shown(name), "must not be repeated")
            else:
                result[name] = self._field_value(location, name, values[0], sub, definitions)
        return result

    def _field_value(self, location, name, value, schema, definitions):
        if isinstance(value, bytes):
            return value.decode("latin-1")  # a file upload: only its size and declared type matter
        return self._coerce(location, _shown(name), value, schema, definitions)

    def _check_form(self, body, spec, definitions):
        if not body.isascii():
            raise Refusal(400, INPUT_INVALID, "request body", None, "must be percent-encoded ASCII")
        try:
            pairs = parse_qsl(body.decode("ascii"), keep_blank_values=True, encoding="utf-8",
                              errors="strict", max_num_fields=self.max_params)
        except UnicodeDecodeError:
            raise Refusal(400, INPUT_INVALID, "request body", None, "must be UTF-8") from None
        except ValueError:
            raise Refusal(400, INPUT_TOO_LARGE, "request body", None,
                          f"has more than {self.max_params} fields") from None
        value = self._fields(pairs, spec.schema, definitions, "form field")
        self._validate_body(spec, value, definitions, "form field")
        new = self._walk("form field", "", value, spec.schema, definitions, decoded=True)
        if new is value:
            return None
        out = []
        position = {}
        for name, raw in pairs:
            cleaned = new.get(name)
            if cleaned is not value.get(name):
                if isinstance(cleaned, list):
                    index = position.get(name, 0)
                    position[name] = index + 1
                    raw = str(cleaned[index])
                else:
                    raw = str(cleaned)
            out.append((name, raw))
        return urlencode(out).encode("ascii")

    def _check_multipart(self, body, params, spec, definitions):
        pairs = []
        try:
            for part in multipart.parts(body, multipart.boundary(params), self.max_params):
                name, filename, content = part.name, part.filename, part.content
                if filename is not None:
                    if _FILENAME_BAD.search(filename) or text_policy.check(filename) is not None:
                        raise Refusal(400, INPUT_ATTACK, "multipart field", _shown(name),
                                      "filename must be a plain file name")
                    pairs.append((name, content))
                else:
                    try:
                        pairs.append((name, content.decode("utf-8")))
                    except UnicodeDecodeError:
                        raise Refusal(400, INPUT_INVALID, "multipart field", _shown(name),
                                      "must be UTF-8") from None
        except multipart.MultipartError as error:
            raise Refusal(400, INPUT_TOO_LARGE if error.too_large else INPUT_INVALID, "request body", None,
                          error.reason) from None
        value = self._fields(pairs, spec.schema, definitions, "multipart field")
        self._validate_body(spec, value, definitions, "multipart field")
        files = {name for name, content in pairs if isinstance(content, bytes)}
        texts = {key: item for key, item in value.items() if key not in files}
        self._walk("multipart field", "", texts, spec.schema, definitions, decoded=False)
        return None

    def _check_text(self, body, spec, definitions):
        try:
            value = body.decode("utf-8")
        except UnicodeDecodeError:
            raise Refusal(400, INPUT_INVALID, "request body", None, "must be UTF-8") from None
        self._validate_body(spec, value, definitions, "request body")
        self._walk("request body", "", value, spec.schema, definitions, decoded=False)
        return None


class XmlBodyChecks:
    """XML bodies of :class:`~wsgisec.whitelist.Whitelist` (a mixin): defusedxml only, bounded."""

    def _check_xml(self, body, spec, definitions):
        root = self._parse_xml(body)
        schema = resolve(spec.schema, definitions)
        expected = (schema.get("xml") or {}).get("name")
        if expected and _local(root.tag) != expected:
            raise Refusal(400, INPUT_INVALID, "request body", None, "has an undeclared root element")
        try:
            value = _xml_value(root, schema, definitions, "")
        except Invalid as invalid:
            raise Refusal(400, INPUT_INVALID, "body element", _shown(invalid.where) if invalid.where else None,
                          invalid.rule) from None
        self._validate_body(spec, value, definitions, "body element")
        self._walk("body element", "", value, spec.schema, definitions, decoded=False)
        return None

    def _parse_xml(self, body):
        import defusedxml
        from defusedxml import ElementTree as SafeElementTree
        from xml.etree.ElementTree import ParseError

        count = depth = 0
        root = None
        try:
            # OWASP XXE Prevention Cheat Sheet: no DTD, no entities, no external references.
            for event, element in SafeElementTree.iterparse(
                    io.BytesIO(body), events=("start", "end"), forbid_dtd=True,
                    forbid_entities=True, forbid_external=True):
                if event == "start":
                    count += 1
                    depth += 1
                    if depth > self.max_xml_depth:
                        raise Refusal(400, INPUT_TOO_LARGE, "request body", None,
                                      f"XML is nested deeper than {self.max_xml_depth} elements")
                    if count > self.max_xml_elements:
                        raise Refusal(400, INPUT_TOO_LARGE, "request body", None,
                                      f"XML has more than {self.max_xml_elements} elements")
                else:
                    depth -= 1
                    root = element
        except defusedxml.DefusedXmlException:
            raise Refusal(400, XML_UNSAFE, "request body", None,
                          "XML DTDs, entity declarations and external references are not allowed") from None
        except ParseError:
            raise Refusal(400, INPUT_INVALID, "request body", None, "is not well-formed XML") from None
        except (ValueError, LookupError):
            # expat refuses some declared encodings itself (utf-7, utf-32: "multi-byte
            # encodings are not supported") with a ValueError, not a ParseError (issue 14).
            raise Refusal(400, INPUT_INVALID, "request body", None,
                          "declares an XML encoding this service does not read") from None
        if root is None:
            raise Refusal(400, INPUT_INVALID, "request body", None, "is not well-formed XML")
        return root


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1] if tag.startswith("{") else tag


def _xml_value(element, schema, definitions, path):
    """An XML element as the JSON value its schema describes (OpenAPI's XML object)."""
    schema = resolve(schema, definitions)
    types = schema_types(schema)
    if "object" in types or "properties" in schema:
        properties = schema.get("properties") or {}
        value = {}
        for key, text in element.attrib.items():
            key = _local(key)
            value[key] = coerce(text, properties.get(key, {}), definitions) if key in properties else text
        for child in element:
            name = _local(child.tag)
            sub = resolve(properties.get(name, {}), definitions)
            where = _join(path, name)
            if "array" in schema_types(sub):
                value.setdefault(name, []).append(_xml_value(child, sub.get("items", {}), definitions, where))
            elif name in value:
                raise Invalid("must not be repeated", where)
            else:
                value[name] = _xml_value(child, sub, definitions, where)
        if len(element) and (element.text or "").strip():
            raise Invalid("must not mix text and elements", path)
        return value
    if "array" in types:
        return [_xml_value(child, schema.get("items", {}), definitions, _join(path, index))
                for index, child in enumerate(element)]
    if len(element):
        raise Invalid("must be a value, not elements", path)
    try:
        return coerce(element.text or "", schema, definitions)
    except Invalid as invalid:
        raise Invalid(invalid.rule, path) from None
