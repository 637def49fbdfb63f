"""The JSON Schema side of OpenAPI: the 3.0 dialect converted, compiled once, values coerced.

Shared (wsgisec/ level, not the whitelist's package): the whitelist checks requests with
it, and response validation against the same document can reuse it without importing
another practice's package (STYLE.md §2). :func:`compile_schema` converts OpenAPI 3.0's
dialect (``nullable``, boolean ``exclusiveMinimum``, integer formats as bounds) to JSON
Schema and compiles it with fastjsonschema; a keyword or ``format`` we cannot enforce is a
:class:`~wsgisec.settings.ConfigurationError` at load time. :func:`coerce` turns a query,
path, header or cookie string into its declared type; :func:`describe` turns a
fastjsonschema error into a fixed phrase (never the value).
"""

from __future__ import annotations

import re

import fastjsonschema

from .settings import ConfigurationError

__all__ = ["Invalid", "convert", "compile_schema", "coerce", "describe", "resolve", "schema_types", "contains_html",
           "KNOWN_FORMATS", "CUSTOM_FORMATS", "OPEN_FORMATS"]

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


# -- schemas --------------------------------------------------------------------------

def convert(schema, where: str, v30: bool):
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
            out[key] = {name: convert(sub, f"{where}.{key}.{name}", v30) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not"):
            out[key] = convert(value, f"{where}.{key}", v30)
        elif key in ("allOf", "anyOf", "oneOf"):
            if not isinstance(value, list) or not value:
                raise ConfigurationError(f"{where}.{key}: must be a non-empty list")
            out[key] = [convert(sub, f"{where}.{key}[{i}]", v30) for i, sub in enumerate(value)]
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
