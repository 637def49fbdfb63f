"""Load an OpenAPI 3.0/3.1 document once, check it, and compile what the whitelist enforces.

The whitelist layer's allowlist is an OpenAPI document (YAML or JSON), the format
partner-API teams already write. :func:`load` reads it at start-up and returns a
:class:`Document`: routes (literal paths first, then templates, as OpenAPI §4.8.8
requires), operations, parameters and request bodies, with every JSON Schema compiled
once by ``fastjsonschema`` (measured ~50x faster per validation than ``jsonschema`` on
this machine: 1.8 µs vs 88 µs for a 1 KB object; see the whitelist notes).

A ``format`` constrains syntax, not safety: ``format: uri`` accepts ``javascript:alert(1)``,
so give URLs that end up in links a ``pattern`` (the example allows local paths only).
Strings with a ``format``, ``enum`` or ``const`` skip the free-text policy; patterned
strings still meet it. The JSON Schema half (conversion, compilation, coercion, error
phrases) is :mod:`wsgisec.schemas`; its names are re-exported here.

Anything the layer could not enforce is a :class:`~wsgisec.settings.ConfigurationError`
at load time, never a silent skip: a schema keyword or ``format`` we do not know, a
remote ``$ref``, a parameter style we do not parse, a media type we cannot read. Objects
are closed (``additionalProperties: false``) unless the schema says otherwise.

Supported: ``paths`` with templates; methods; ``parameters`` (path-level and
operation-level, ``$ref`` to ``components``) in query/path/header/cookie with
``schema`` (type, format, pattern, enum, const, minimum/maximum, exclusive bounds,
multipleOf, minLength/maxLength, items, min/maxItems, uniqueItems, properties, required,
additionalProperties, patternProperties, allOf/anyOf/oneOf/not, nullable (3.0), type
lists (3.1)); query arrays as repeated keys (``explode: true``, the default) or
comma-separated (``explode: false``); ``requestBody`` for ``application/json`` (and
``+json``), ``application/x-www-form-urlencoded``, ``multipart/form-data``,
``application/xml``/``text/xml`` (and ``+xml``), ``text/plain`` and
``application/octet-stream``. With ``load(path, responses=True)`` each operation's JSON
response schemas are compiled too (:mod:`wsgisec.openapi_responses`, used by the
escaping layer's ``response_schemas``); the whitelist does not ask for them.
"""

from __future__ import annotations

import copy
import json
import os
import re
from dataclasses import dataclass, field

from . import multipart
# Re-exported: importers of wsgisec.openapi keep working (the schema half moved to schemas.py).
from .schemas import (CUSTOM_FORMATS, KNOWN_FORMATS, OPEN_FORMATS, Invalid, coerce, compile_schema,
                      contains_html, convert, describe, resolve, schema_types)
from .settings import ConfigurationError

__all__ = ["load", "Document", "Route", "Operation", "Parameter", "Body", "Invalid",
           "compile_schema", "coerce", "describe", "resolve", "schema_types", "contains_html", "media_kind",
           "parse_media_type", "parse_params", "METHODS", "CUSTOM_FORMATS", "KNOWN_FORMATS", "OPEN_FORMATS"]

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
LOCATIONS = ("query", "path", "header", "cookie")

@dataclass
class Parameter:
    name: str
    location: str
    required: bool
    schema: dict
    validate: object
    kind: str            # "string", "integer", "number", "boolean", "array", "any"
    explode: bool = True
    max_length: int | None = None


@dataclass
class Body:
    media_type: str      # as declared, e.g. "application/json"
    kind: str            # json, form, multipart, xml, text, binary
    schema: dict
    validate: object
    html: bool = False   # does the schema contain format: html anywhere


@dataclass
class Operation:
    method: str
    template: str
    params: dict = field(default_factory=dict)   # location -> {name: Parameter}
    bodies: dict = field(default_factory=dict)   # "type/subtype" -> Body
    body_required: bool = False
    has_body: bool = False
    definitions: dict = field(default_factory=dict)
    responses: object = None  # openapi_responses.Responses, when loaded with responses=True


@dataclass
class Route:
    template: str
    regex: object
    names: tuple
    operations: dict     # "GET" -> Operation

    def allow(self) -> str:
        methods = set(self.operations)
        if "GET" in methods:
            methods.add("HEAD")
        return ", ".join(sorted(methods))


class Document:
    """The routes of an OpenAPI document, ready to match request paths."""

    def __init__(self, routes, source, version):
        self.source = source
        self.version = version
        self.literal = {route.template: route for route in routes if not route.names}
        # Templates with more literal characters first: "/items/mine" beats "/items/{id}".
        self.templated = sorted((route for route in routes if route.names),
                                key=lambda r: -len(re.sub(r"\{[^}]*\}", "", r.template)))
        self.routes = routes

    def match(self, path: str):
        """``(route, {name: value})`` or None."""
        route = self.literal.get(path)
        if route is not None:
            return route, {}
        for route in self.templated:
            found = route.regex.fullmatch(path)
            if found is not None:
                return route, dict(zip(route.names, found.groups()))
        return None


# -- media types (RFC 9110 §8.3.1) ----------------------------------------------------

_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_MEDIA_TYPE = re.compile(rf"^\s*({_TOKEN})/({_TOKEN})\s*((?:;.*)?)$", re.DOTALL)


# Media-type parameters and Content-Disposition parameters share one grammar
# (RFC 9110 §5.6.6), written once in the shared multipart module.
parse_params = multipart.parse_params


def parse_media_type(text: str):
    """``("application/json", {"charset": "utf-8"})`` or None if it is not a media type."""
    found = _MEDIA_TYPE.match(text or "")
    if found is None:
        return None
    params = parse_params(found.group(3))
    if params is None:
        return None
    return f"{found.group(1)}/{found.group(2)}".lower(), params


def media_kind(media_type: str) -> str | None:
    """How we read a body of ``media_type``; None if we cannot (so it is refused)."""
    if media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json")):
        return "json"
    if media_type == "application/x-www-form-urlencoded":
        return "form"
    if media_type == "multipart/form-data":
        return "multipart"
    if media_type in ("application/xml", "text/xml") or (
            media_type.startswith("application/") and media_type.endswith("+xml")):
        return "xml"
    if media_type == "text/plain":
        return "text"
    if media_type == "application/octet-stream":
        return "binary"
    return None


# -- the document ---------------------------------------------------------------------

def _read(source) -> tuple[dict, str]:
    if isinstance(source, dict):
        return copy.deepcopy(source), "<dict>"
    path = os.fspath(source)
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as error:
        raise ConfigurationError(f"rules = {path}: cannot be read ({error.strerror})") from None
    try:
        if path.endswith(".json"):
            document = json.loads(text)
        else:
            import yaml

            document = yaml.safe_load(text)
    except (ValueError, ImportError) as error:
        raise ConfigurationError(f"rules = {path}: not valid YAML/JSON ({type(error).__name__})") from None
    except Exception as error:  # yaml.YAMLError has no common import-free base
        raise ConfigurationError(f"rules = {path}: not valid YAML ({str(error).splitlines()[0]})") from None
    if not isinstance(document, dict):
        raise ConfigurationError(f"rules = {path}: not an OpenAPI document (expected a mapping)")
    return document, path


def _pointer(document: dict, ref: str, where: str):
    if not isinstance(ref, str) or not ref.startswith("#/"):
        raise ConfigurationError(f"{where}: only local $ref (#/components/...) is supported")
    node = document
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            raise ConfigurationError(f"{where}: $ref {ref} does not resolve")
        node = node[part]
    return node


def _deref(document, node, where):
    seen = 0
    while isinstance(node, dict) and "$ref" in node:
        node = _pointer(document, node["$ref"], where)
        seen += 1
        if seen > 16:
            raise ConfigurationError(f"{where}: $ref loop")
    return node


_TEMPLATE = re.compile(r"\{([^{}/]+)\}")


def _route_regex(template: str, where: str):
    names = tuple(_TEMPLATE.findall(template))
    if len(set(names)) != len(names):
        raise ConfigurationError(f"{where}: a path template names a parameter twice")
    pattern = ""
    position = 0
    for found in _TEMPLATE.finditer(template):
        pattern += re.escape(template[position:found.start()]) + "([^/]+)"
        position = found.end()
    pattern += re.escape(template[position:])
    return re.compile(pattern), names


def load(source, *, responses: bool = False) -> Document:
    """Read, check and compile an OpenAPI document (a path or an already-loaded dict).

    ``responses``: also compile each operation's JSON response schemas
    (:mod:`wsgisec.openapi_responses`, for the escaping layer's ``response_schemas``).
    """
    document, path = _read(source)
    version = str(document.get("openapi", ""))
    if not re.match(r"^3\.[01]\.\d+$", version):
        raise ConfigurationError(f"rules = {path}: openapi: {version or '(missing)'} is not supported; "
                                 "write an OpenAPI 3.0.x or 3.1.x document")
    v30 = version.startswith("3.0.")
    paths = document.get("paths")
    if not isinstance(paths, dict) or not paths:
        raise ConfigurationError(f"rules = {path}: the document declares no paths")
    components = document.get("components") or {}
    raw_definitions = (components.get("schemas") or {}) if isinstance(components, dict) else {}
    definitions = {name: convert(schema, f"components.schemas.{name}", v30)
                   for name, schema in raw_definitions.items()}
    routes = []
    for template, item in paths.items():
        where = f"rules = {path}: paths.{template}"
        if not isinstance(template, str) or not template.startswith("/"):
            raise ConfigurationError(f"{where}: a path must start with /")
        item = _deref(document, item, where)
        if not isinstance(item, dict):
            raise ConfigurationError(f"{where}: must be an object")
        regex, names = _route_regex(template, where)
        shared = item.get("parameters") or []
        operations = {}
        for method, spec in item.items():
            if method in ("parameters", "summary", "description", "servers") or method.startswith("x-"):
                continue
            if method not in METHODS:
                raise ConfigurationError(f"{where}: {method!r} is not an HTTP method")
            operation = operations[method.upper()] = _operation(
                document, template, method, spec, shared, names, definitions, f"{where}.{method}", v30)
            if responses:
                from .openapi_responses import compile_responses

                operation.responses = compile_responses(
                    document, spec, definitions, ["paths", template, method], v30,
                    deref=_deref, parse_media_type=parse_media_type)
        if not operations:
            raise ConfigurationError(f"{where}: declares no operation")
        routes.append(Route(template, regex, names, operations))
    return Document(routes, path, version)


def _operation(document, template, method, spec, shared, names, definitions, where, v30):
    if not isinstance(spec, dict):
        raise ConfigurationError(f"{where}: must be an object")
    operation = Operation(method.upper(), template, params={loc: {} for loc in LOCATIONS},
                          definitions=definitions)
    declared = {}
    for index, raw in enumerate(list(shared) + list(spec.get("parameters") or [])):
        param_where = f"{where}.parameters[{index}]"
        raw = _deref(document, raw, param_where)
        declared[(raw.get("in"), raw.get("name"))] = (raw, param_where)  # operation overrides path item
    for (location, name), (raw, param_where) in declared.items():
        parameter = _parameter(raw, location, name, definitions, param_where, v30)
        if location == "header":
            name = name.lower()
        operation.params[location][name] = parameter
    for name in names:
        if name not in operation.params["path"]:
            raise ConfigurationError(f"{where}: path parameter {{{name}}} is not declared")
    for name in operation.params["path"]:
        if name not in names:
            raise ConfigurationError(f"{where}: path parameter {name!r} is not in the path template")
    body = spec.get("requestBody")
    if body is not None:
        body = _deref(document, body, f"{where}.requestBody")
        content = body.get("content") if isinstance(body, dict) else None
        if not isinstance(content, dict) or not content:
            raise ConfigurationError(f"{where}.requestBody: declares no content")
        operation.has_body = True
        operation.body_required = bool(body.get("required", False))
        for media_type, media in content.items():
            body_where = f"{where}.requestBody.content.{media_type}"
            parsed = parse_media_type(media_type)
            kind = media_kind(parsed[0]) if parsed else None
            if kind is None:
                raise ConfigurationError(
                    f"{body_where}: the whitelist cannot read {media_type!r} bodies, so it cannot "
                    "allow them (supported: JSON, form, multipart/form-data, XML, text/plain, "
                    "application/octet-stream)")
            raw_schema = (media or {}).get("schema", {"type": "string"} if kind in ("text", "binary") else None)
            if raw_schema is None:
                raise ConfigurationError(f"{body_where}: declares no schema")
            schema = convert(raw_schema, f"{body_where}.schema", v30)
            html = contains_html(schema, definitions)
            if html and kind in ("xml", "multipart", "text", "binary"):
                raise ConfigurationError(f"{body_where}: format: html is supported in query, form and "
                                         "JSON fields only")
            operation.bodies[parsed[0]] = Body(parsed[0], kind, schema,
                                               compile_schema(schema, definitions, body_where), html)
    return operation


def _parameter(raw, location, name, definitions, where, v30) -> Parameter:
    if location not in LOCATIONS:
        raise ConfigurationError(f"{where}: in: {location!r} must be one of {', '.join(LOCATIONS)}")
    if not isinstance(name, str) or not name:
        raise ConfigurationError(f"{where}: a parameter needs a name")
    if "content" in raw or "schema" not in raw:
        raise ConfigurationError(f"{where}: parameter {name!r} needs a schema (content is not supported)")
    style = raw.get("style", "form" if location in ("query", "cookie") else "simple")
    if (location == "query" and style != "form") or (location != "query" and style not in ("simple", "form")):
        raise ConfigurationError(f"{where}: style {style!r} is not supported for {location} parameters")
    schema = convert(raw["schema"], f"{where}.schema", v30)
    resolved = resolve(schema, definitions)
    types = schema_types(resolved)
    if "object" in types:
        raise ConfigurationError(f"{where}: object-valued parameters are not supported")
    kind = "array" if "array" in types else (types[0] if len(types) == 1 else "any")
    required = bool(raw.get("required", False)) or location == "path"
    return Parameter(name, location, required, schema, compile_schema(schema, definitions, where), kind,
                     explode=bool(raw.get("explode", style == "form")),
                     max_length=resolved.get("maxLength"))
