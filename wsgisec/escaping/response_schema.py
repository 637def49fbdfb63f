"""Check the app's JSON responses against the OpenAPI document's response schemas (issue 11).

A legacy app that builds JSON by hand can send a document that parses but is not what
the API promises: a price as a string, a missing ``id``, an internal column the partner
was never meant to see (OWASP API Security Top 10 2023, API3 "Broken Object Property
Level Authorization": excessive data exposure). ``response_schemas`` compares the
response the escaping layer already holds (for ``check_structure``, the same bytes,
parsed once) with the schema the document declares for its path template, method,
status (exact code, then ``2XX``-style range, then ``default``) and media type
(``application/json``, ``+json``; see :mod:`wsgisec.openapi_responses`):

* ``off`` (the default): nothing is looked up;
* ``report``: a response that breaks its schema goes out, and a
  ``escaping.response-schema`` event (warning) names the status, the media type, the
  failing keyword and two RFC 6901 pointers: ``keyword_location`` into the OpenAPI
  document (``#/components/schemas/Item/properties/price/type``) and
  ``instance_location`` into the response (``/items/2/price``); never the value (a
  response value may be anyone's data);
* ``enforce``: the response is replaced by the masked ``500`` problem (``reason``
  ``response-invalid``, the incident id, none of the app's content) and the same event
  (error).

What passes unchecked: an operation, status or media type the document gives no JSON
schema; a response that is not JSON (the structure check and the other rewrites still
apply); ``HEAD`` and bodiless statuses. A JSON response larger than ``max_buffer`` (or
announcing a larger ``Content-Length``) is never held whole, so it cannot be validated:
with ``report`` it streams out (escaped chunk by chunk) with an event whose ``check``
is ``too-large``; with ``enforce`` it is refused like an invalid one (fail closed: an
unchecked answer is not a valid one). Raise ``max_buffer`` for operations that answer
large JSON, or declare no schema for them.
"""

from __future__ import annotations


from fastjsonschema import JsonSchemaValueException

from .. import openapi
from ..openapi_responses import json_pointer
from ..settings import ConfigurationError

__all__ = ["RESPONSE_SCHEMA", "MODES", "ResponseSchemas", "configure", "violation"]

RESPONSE_SCHEMA = "response-schema"
MODES = ("off", "report", "enforce")

# A response's property names can be anyone's data (a map keyed by e-mail addresses or
# tokens; fastjsonschema even splits keys at "."): a pointer shows array indices and the
# names the document itself declares, and "*" for every other segment.


class ResponseSchemas:
    """The document's response schemas and the mode they are enforced in."""

    __slots__ = ("document", "mode")

    def __init__(self, document, mode: str):
        self.document = document
        self.mode = mode

    def find(self, environ, status: str, media_type: str):
        """The :class:`~wsgisec.openapi_responses.ResponseSchema` for this response, or
        None (undeclared path, method, status or media type: nothing to check)."""
        try:
            code = int(status[:3])
            path = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8")
        except (ValueError, UnicodeError):
            return None
        found = self.document.match(path)
        if found is None:
            return None
        operation = found[0].operations.get(environ.get("REQUEST_METHOD", "GET").upper())
        if operation is None or not operation.responses:
            return None
        return operation.responses.find(code, media_type)


def configure(mode: str, rules):
    """The :class:`ResponseSchemas` to enforce, or None (``off``)."""
    if mode not in MODES:
        raise ConfigurationError(f"response_schemas must be one of {', '.join(MODES)}")
    if mode == "off":
        return None
    if rules is None:
        raise ConfigurationError(f"response_schemas = {mode} needs rules = the OpenAPI document "
                                 "(the whitelist's rules file) that declares the response schemas")
    if not isinstance(rules, openapi.Document):
        rules = openapi.load(rules, responses=True)
    elif any(op.responses is None for route in rules.routes for op in route.operations.values()):
        raise ConfigurationError("rules: a Document for response_schemas must be loaded with "
                                 "openapi.load(path, responses=True)")
    return ResponseSchemas(rules, mode)


def violation(schema, value) -> dict | None:
    """None if ``value`` meets ``schema``, else the event detail: the keyword and where
    (schema and response pointers), never the value."""
    try:
        schema.validate(value)
    except JsonSchemaValueException as error:
        return {"check": "schema", "keyword": error.rule,
                "keyword_location": _keyword_location(schema, error),
                "instance_location": _instance_location(error, _declared_names(schema))}
    return None


def _declared_names(schema) -> set:
    """Every property name the response's schema and the components declare."""
    names, stack = set(), [schema.schema, schema.definitions]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key in ("properties", "required"):
                if isinstance(node.get(key), (dict, list)):
                    names.update(str(name) for name in node[key])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return names


def _instance_location(error, declared: set) -> str:
    def segment(part) -> str:
        text = str(part)
        return text if text.isdigit() or text in declared else "*"

    parts = [segment(part) for part in (error.path or [])[1:]]  # [0] is fastjsonschema's "data"
    if error.rule == "required" and isinstance(error.value, dict):
        parts += [str(name) for name in error.rule_definition if name not in error.value][:1]
    elif error.rule == "additionalProperties" and isinstance(error.value, dict):
        parts.append("*")  # an undeclared member: its name is the response's data, not ours
    return json_pointer(parts)


def _keyword_location(schema, error) -> str:
    """Where in the OpenAPI document the failing keyword sits: the first sub-schema
    equal to the one that failed, in the response's schema, then in components."""
    target = error.definition
    if not isinstance(target, dict):
        return schema.location
    if "$schema" in target:  # the root: compiled with "$schema" and the definitions added
        target = {key: value for key, value in target.items() if key not in ("$schema", "definitions")}
    found = _find(schema.schema, target, [])
    if found is not None:
        return schema.location + json_pointer(found + [error.rule])
    for name, definition in schema.definitions.items():
        found = _find(definition, target, [])
        if found is not None:
            return "#" + json_pointer(["components", "schemas", name] + found + [error.rule])
    return schema.location


def _find(node, target, parts):
    if isinstance(node, dict):
        if len(node) == len(target) and node == target:
            return parts
        for key, child in node.items():
            if key != "definitions":
                found = _find(child, target, parts + [key])
                if found is not None:
                    return found
    elif isinstance(node, list):
        for index, child in enumerate(node):
            found = _find(child, target, parts + [index])
            if found is not None:
                return found
    return None
