"""The response half of an OpenAPI document: the JSON schemas an operation may answer with.

Loaded only on request (``openapi.load(path, responses=True)``; the escaping layer's
``response_schemas`` setting): the whitelist never needs them, and a document whose
response schemas use a keyword we cannot enforce must not stop the whitelist starting.

OpenAPI §4.8.16-17 (Responses, Response objects): an operation's ``responses`` maps a
status to a response. A key is an exact code (``"200"``; YAML's integer ``200`` too), a
range (``"2XX"``, any of ``1XX``-``5XX``) or ``default``; the most specific key that
matches a status applies (exact, then range, then ``default``), and only that one. A
response (or a ``$ref`` to ``#/components/responses/...``) has ``content`` keyed by media
type; the JSON ones (``application/json``, ``application/*+json``) and the ranges
``application/*`` and ``*/*`` are compiled here, through the same conversion as request
schemas (:mod:`wsgisec.schemas`: ``$ref`` to ``#/components/schemas/...``, OpenAPI 3.0
``nullable``, 3.1 type lists; an object without ``additionalProperties`` is closed, so an
undeclared property in a response, such as a leaked internal column, breaks it). Other
media types (XML, CSV, HTML) have no JSON schema to check and are skipped.

:meth:`Responses.find` returns the :class:`ResponseSchema` for a status and a response
media type (exact media type, then ``type/*``, then ``*/*``), or None when the document
declares none: no schema, nothing to check.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .schemas import compile_schema, convert
from .settings import ConfigurationError

__all__ = ["ResponseSchema", "Responses", "compile_responses", "json_pointer"]

_STATUS_KEY = re.compile(r"^(?:[1-5][0-9][0-9]|[1-5]XX|default)$")


def json_pointer(parts) -> str:
    """RFC 6901: ``["paths", "/api/items"]`` -> ``/paths/~1api~1items``."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in parts)


@dataclass
class ResponseSchema:
    media_type: str      # as declared: "application/json", "application/*", ...
    schema: dict         # converted (draft-07), as compiled
    validate: object     # the compiled fastjsonschema validator
    location: str        # "#/paths/~1api~1items/get/responses/200/content/application~1json/schema"
    definitions: dict    # components.schemas, converted (where a $ref lands)


class Responses:
    """One operation's response schemas: ``{status key: {media type: ResponseSchema}}``."""

    __slots__ = ("by_status", "any")

    def __init__(self, by_status: dict):
        self.by_status = by_status
        self.any = any(by_status.values())

    def __bool__(self):
        return self.any

    def find(self, status: int, media_type: str) -> ResponseSchema | None:
        """The schema that applies to a ``status`` answer of ``media_type``, or None."""
        by_status = self.by_status
        content = by_status.get(str(status))
        if content is None:
            content = by_status.get(f"{status // 100}XX")
        if content is None:
            content = by_status.get("default")
        if not content:
            return None
        found = content.get(media_type)
        if found is None:
            found = content.get(media_type.split("/", 1)[0] + "/*") or content.get("*/*")
        return found


def _is_json(media_type: str) -> bool:
    return media_type in ("application/json", "application/*", "*/*") or (
        media_type.startswith("application/") and media_type.endswith("+json"))


def compile_responses(document, spec, definitions, where, v30, *, deref, parse_media_type) -> Responses:
    """The JSON response schemas of one operation (``spec``), compiled once.

    ``where`` is the operation's RFC 6901 location as a list (``["paths", template,
    method]``); ``deref``/``parse_media_type`` come from :mod:`wsgisec.openapi`.
    """
    raw = spec.get("responses")
    text_where = "rules: " + json_pointer(where)
    if raw is None:
        return Responses({})
    if not isinstance(raw, dict):
        raise ConfigurationError(f"{text_where}/responses: must be an object")
    by_status = {}
    for key, response in raw.items():
        status = str(key).upper() if str(key).lower() != "default" else "default"
        if isinstance(key, str) and key.startswith("x-"):
            continue
        location = where + ["responses", str(key)]
        if not _STATUS_KEY.match(status):
            raise ConfigurationError(f"{text_where}/responses: {key!r} is not a status code, "
                                     "a range such as 2XX, or default")
        if isinstance(response, dict) and isinstance(response.get("$ref"), str) \
                and response["$ref"].startswith("#/"):
            location = [part.replace("~1", "/").replace("~0", "~") for part in response["$ref"][2:].split("/")]
        response = deref(document, response, f"{text_where}/responses/{key}")
        if not isinstance(response, dict):
            raise ConfigurationError(f"{text_where}/responses/{key}: must be an object")
        content = response.get("content") or {}
        if not isinstance(content, dict):
            raise ConfigurationError(f"{json_pointer(location)}/content: must be an object")
        compiled = {}
        for declared, media in content.items():
            parsed = parse_media_type(declared) if declared != "*/*" else ("*/*", {})
            media_type = parsed[0] if parsed else None
            if media_type is None or not _is_json(media_type):
                continue  # not JSON: nothing here can check it
            if not isinstance(media, dict) or "schema" not in media:
                continue  # a JSON answer without a schema: anything goes
            schema_location = json_pointer(location + ["content", declared, "schema"])
            schema = convert(media["schema"], "rules: " + schema_location, v30)
            compiled[media_type] = ResponseSchema(
                media_type, schema, compile_schema(schema, definitions, "rules: " + schema_location),
                "#" + schema_location, definitions)
        by_status[status] = compiled
    return Responses(by_status)
