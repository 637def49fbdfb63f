"""Load an OpenAPI 3.0/3.1 document once, check it, and compile what the whitelist enforces.

The whitelist layer's allowlist is an OpenAPI document (YAML or JSON), the format
partner-API teams already write. :func:`load` reads it at start-up and returns a
:class:`Document`: routes (literal paths first, then templates, as OpenAPI §4.8.8
requires), operations, parameters and request bodies, with every JSON Schema compiled
once by ``fastjsonschema`` (measured ~50x faster per validation than ``jsonschema`` on
this machine: 1.8 µs vs 88 µs for a 1 KB object; see the whitelist notes).

A ``format`` constrains syntax, not safety: ``format: uri`` accepts ``javascript:alert(1)``,
so give URLs that end up in links a ``pattern`` (the example allows local paths only).
Strings with a ``pattern``, ``format``, ``enum`` or ``const`` skip the free-text policy.

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
``application/octet-stream``.
"""

from __future__ import annotations

import copy
import json
import os
import re
from dataclasses import dataclass, field

import fastjsonschema

from . import multipart
from .settings import ConfigurationError

__all__ = ["load", "Document", "Route", "Operation", "Parameter", "Body", "Invalid",
           "compile_schema", "coerce", "describe", "resolve", "schema_types", "media_kind",
           "parse_media_type", "METHODS"]

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
LOCATIONS = ("query", "path", "header", "cookie")

# Keywords whose meaning we enforce (through fastjsonschema) or that only annotate.
_ENFORCED = {"type", "format", "pattern", "enum", "const", "minimum", "maximum", "exclusiveMinimum",
             "exclusiveMaximum", "multipleOf", "minLength", "maxLength", "items", "minItems",
             "maxItems", "uniqueItems", "properties", "required", "additionalProperties",
             "patternProperties", "minProperties", "maxProperties", "allOf", "anyOf", "oneOf",
             "not", "$ref", "nullable"}
_ANNOTATIONS = {"title", "description", "example", "examples", "default", "deprecated", "readOnly",
                "writeOnly", "xml", "externalDocs", "discriminator", "$comment", "contentMediaType",
                "contentEncoding"}

# fastjsonschema takes a regex *string* (searched) or a callable per custom format.
_BASE64 = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
_UUID = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"

# OpenAPI's own formats plus ours; fastjsonschema knows the JSON Schema ones. ``html`` is
# cleaned by nh3 rather than checked; ``password``/``binary`` are opaque by definition.
_INTEGER_BOUNDS = {"int32": (-2**31, 2**31 - 1), "int64": (-2**63, 2**63 - 1)}
CUSTOM_FORMATS = {
    "int32": lambda v: True,  # enforced as minimum/maximum by _convert
    "int64": lambda v: True,
    "float": lambda v: True,
    "double": lambda v: True,
    "byte": _BASE64,
    "binary": lambda v: True,
    "password": lambda v: True,
    "html": lambda v: True,
    "uuid": _UUID,
}
_FASTJSONSCHEMA_FORMATS = {"date-time", "email", "hostname", "ipv4", "ipv6", "uri", "json-pointer",
                           "uri-reference", "uri-template", "date", "iri", "iri-reference",
                           "idn-email", "idn-hostname", "relative-json-pointer", "time", "regex"}
KNOWN_FORMATS = frozenset(CUSTOM_FORMATS) | _FASTJSONSCHEMA_FORMATS
# Formats that say nothing about the characters of a string: the text policy still applies.
OPEN_FORMATS = frozenset({"password", "binary"})


class Invalid(Exception):
    """A value broke the document; ``rule`` is a fixed phrase, ``where`` a sub-path."""

    def __init__(self, rule: str, where: str = ""):
        super().__init__(rule)
        self.rule = rule
        self.where = where


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


# -- schemas --------------------------------------------------------------------------

def _convert(schema, where: str, v30: bool):
    """OpenAPI schema -> draft-07 JSON Schema, refusing what we would not enforce."""
    if isinstance(schema, bool):
        return schema
    if not isinstance(schema, dict):
        raise ConfigurationError(f"{where}: a schema must be an object")
    out = {}
    for key, value in schema.items():
        if key.startswith("x-") or key in _ANNOTATIONS:
            if key == "xml":
                out["xml"] = value
            continue
        if key not in _ENFORCED:
            raise ConfigurationError(f"{where}: schema keyword {key!r} is not supported by the "
                                     "whitelist (it would not be enforced)")
        if key == "$ref":
            if not isinstance(value, str) or not value.startswith("#/components/schemas/"):
                raise ConfigurationError(f"{where}: only local $ref to #/components/schemas/... is supported")
            out["$ref"] = "#/definitions/" + value.rsplit("/", 1)[1]
        elif key in ("properties", "patternProperties"):
            if not isinstance(value, dict):
                raise ConfigurationError(f"{where}.{key}: must be an object")
            out[key] = {name: _convert(sub, f"{where}.{key}.{name}", v30) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not"):
            out[key] = _convert(value, f"{where}.{key}", v30)
        elif key in ("allOf", "anyOf", "oneOf"):
            if not isinstance(value, list) or not value:
                raise ConfigurationError(f"{where}.{key}: must be a non-empty list")
            out[key] = [_convert(sub, f"{where}.{key}[{i}]", v30) for i, sub in enumerate(value)]
        elif key == "format":
            if value not in KNOWN_FORMATS:
                raise ConfigurationError(f"{where}: format {value!r} is not known to the whitelist; "
                                         f"use a pattern instead (known: {', '.join(sorted(KNOWN_FORMATS))})")
            out[key] = value
        elif key == "pattern":
            try:
                re.compile(value)
            except (re.error, TypeError):
                raise ConfigurationError(f"{where}: pattern {value!r} is not a valid regular expression") from None
            out[key] = value
        elif key == "nullable":
            continue
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and isinstance(value, bool):
            # OpenAPI 3.0 (JSON Schema draft 4): a flag on minimum/maximum.
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            if value and bound in schema:
                out[key] = schema[bound]
                out.pop(bound, None)
            continue
        elif key in ("minimum", "maximum") and schema.get("exclusive" + key[:1].upper() + key[1:]) is True:
            continue
        else:
            out[key] = value
    if out.get("format") in _INTEGER_BOUNDS:
        # fastjsonschema checks formats on strings only: enforce int32/int64 as bounds.
        low, high = _INTEGER_BOUNDS[out["format"]]
        out["minimum"] = max(out.get("minimum", low), low)
        out["maximum"] = min(out.get("maximum", high), high)
    if schema.get("nullable") is True:
        kind = out.get("type")
        if isinstance(kind, str):
            out["type"] = [kind, "null"]
        elif isinstance(kind, list) and "null" not in kind:
            out["type"] = kind + ["null"]
    objectish = out.get("type") == "object" or (isinstance(out.get("type"), list) and "object" in out["type"]) \
        or "properties" in out
    if objectish and "additionalProperties" not in out and "patternProperties" not in out \
            and not any(k in out for k in ("allOf", "anyOf", "oneOf", "$ref")):
        # Strict by default: an undeclared property is refused.
        out["additionalProperties"] = False
    return out


def compile_schema(schema: dict, definitions: dict, where: str):
    document = dict(schema)
    document["$schema"] = "http://json-schema.org/draft-07/schema#"
    if definitions:
        document["definitions"] = definitions
    try:
        return fastjsonschema.compile(document, formats=CUSTOM_FORMATS)
    except fastjsonschema.JsonSchemaDefinitionException as error:
        raise ConfigurationError(f"{where}: invalid schema ({error})") from None


def resolve(schema, definitions: dict):
    seen = 0
    while isinstance(schema, dict) and "$ref" in schema and seen < 32:
        schema = definitions.get(schema["$ref"].rsplit("/", 1)[1], {})
        seen += 1
    return schema if isinstance(schema, dict) else {}


def schema_types(schema) -> tuple:
    """The ``type`` of a (resolved) schema as a tuple; () when it names none."""
    kind = schema.get("type") if isinstance(schema, dict) else None
    if kind is None:
        return ()
    return tuple(kind) if isinstance(kind, list) else (kind,)


_INTEGER = re.compile(r"-?(?:0|[1-9][0-9]{0,30})")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]{0,30})(?:\.[0-9]{1,30})?(?:[eE][-+]?[0-9]{1,3})?")
_TYPE_WORDS = {"integer": "an integer", "number": "a number", "boolean": "true or false",
               "string": "a string", "array": "a list", "object": "an object", "null": "null"}


def coerce(text: str, schema: dict, definitions: dict):
    """A string from a URL, form or XML text, converted as ``schema``'s type says."""
    schema = resolve(schema, definitions)
    types = schema_types(schema)
    if not types or "string" in types:
        return text
    for kind in types:
        if kind == "integer" and _INTEGER.fullmatch(text):
            return int(text)
        if kind == "number" and _NUMBER.fullmatch(text):
            value = float(text)
            return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value
        if kind == "boolean" and text in ("true", "false"):
            return text == "true"
        if kind == "null" and text == "":
            return None
    raise Invalid("must be " + " or ".join(_TYPE_WORDS.get(kind, kind) for kind in types))


# What a refusal says for each JSON Schema keyword ({} is the keyword's value from the
# document, never the caller's value).
_RULE_PHRASES = {
    "enum": "must be one of the declared values",
    "const": "must be the declared value",
    "pattern": "must match the declared pattern",
    "format": "must be a valid {}",
    "minLength": "must be at least {} characters long",
    "maxLength": "must be at most {} characters long",
    "minimum": "must be >= {}",
    "maximum": "must be <= {}",
    "exclusiveMinimum": "must be > {}",
    "exclusiveMaximum": "must be < {}",
    "multipleOf": "must be a multiple of {}",
    "minItems": "must have at least {} items",
    "maxItems": "must have at most {} items",
    "uniqueItems": "must not repeat items",
    "minProperties": "must have at least {} properties",
    "maxProperties": "must have at most {} properties",
}


def describe(error: fastjsonschema.JsonSchemaValueException, definitions: dict) -> Invalid:
    """A fastjsonschema error as a fixed phrase plus the sub-path; never the value."""
    path = [part for part in (error.path or [])[1:]]
    rule, definition, value = error.rule, error.rule_definition, error.value
    schema = error.definition if isinstance(error.definition, dict) else {}
    if rule == "type":
        kinds = definition if isinstance(definition, list) else [definition]
        text = "must be " + " or ".join(_TYPE_WORDS.get(kind, str(kind)) for kind in kinds)
    elif rule in _RULE_PHRASES:
        text = _RULE_PHRASES[rule].format(definition)
    elif rule == "required" and isinstance(value, dict):
        missing = [name for name in definition if name not in value]
        return Invalid("is required", _join(path + missing[:1]))
    elif rule == "additionalProperties" and isinstance(value, dict):
        declared = set(schema.get("properties", {}))
        patterns = [re.compile(p) for p in schema.get("patternProperties", {})]
        extra = sorted(name for name in value if name not in declared
                       and not any(p.search(name) for p in patterns))
        return Invalid("is not declared", _join(path + extra[:1]))
    else:
        text = "does not match the declared schema"
    return Invalid(text, _join(path))


def _join(parts) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int) or (isinstance(part, str) and part.isdigit()):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def contains_html(schema, definitions, seen=None) -> bool:
    seen = seen if seen is not None else set()
    if isinstance(schema, dict):
        if schema.get("format") == "html":
            return True
        ref = schema.get("$ref")
        if ref:
            if ref in seen:
                return False
            seen.add(ref)
            return contains_html(resolve(schema, definitions), definitions, seen)
        return any(contains_html(value, definitions, seen) for key, value in schema.items() if key != "xml")
    if isinstance(schema, list):
        return any(contains_html(item, definitions, seen) for item in schema)
    return False


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


def load(source) -> Document:
    """Read, check and compile an OpenAPI document (a path or an already-loaded dict)."""
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
    definitions = {name: _convert(schema, f"components.schemas.{name}", v30)
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
            operations[method.upper()] = _operation(document, template, method, spec, shared, names,
                                                    definitions, f"{where}.{method}", v30)
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
            schema = _convert(raw_schema, f"{body_where}.schema", v30)
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
    schema = _convert(raw["schema"], f"{where}.schema", v30)
    resolved = resolve(schema, definitions)
    types = schema_types(resolved)
    if "object" in types:
        raise ConfigurationError(f"{where}: object-valued parameters are not supported")
    kind = "array" if "array" in types else (types[0] if len(types) == 1 else "any")
    required = bool(raw.get("required", False)) or location == "path"
    return Parameter(name, location, required, schema, compile_schema(schema, definitions, where), kind,
                     explode=bool(raw.get("explode", style == "form")),
                     max_length=resolved.get("maxLength"))
