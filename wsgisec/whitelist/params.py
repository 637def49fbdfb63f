"""Query, path, header and cookie parameters against the operation's declarations.

Part of the whitelist layer (practice 2): an undeclared query parameter is refused, a
repeated one too (HTTP parameter pollution: frameworks disagree on which copy wins),
every value is coerced to its declared type and validated, then free text meets the
text policy (:mod:`wsgisec.whitelist.values`).
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

import fastjsonschema

from ..openapi import Invalid, coerce, describe, resolve
from .refusals import _LOCATION_NAMES, INPUT_INVALID, INPUT_TOO_LARGE, Refusal, _join_name, _shown

__all__ = ["ParamChecks"]


class ParamChecks:
    """The parameter checks of :class:`~wsgisec.whitelist.Whitelist` (a mixin: it uses the
    layer's limits, ``max_params`` and ``max_string_length``, and ``_walk``)."""


    def _check_query(self, environ, operation, definitions, rewrites):
        declared = operation.params["query"]
        query = environ.get("QUERY_STRING", "")
        if not query:
            for param in declared.values():
                if param.required:
                    raise Refusal(400, INPUT_INVALID, "query parameter", param.name, "is required")
            return
        try:
            pairs = parse_qsl(query, keep_blank_values=True, encoding="utf-8", errors="strict",
                              max_num_fields=self.max_params)
        except UnicodeDecodeError:
            raise Refusal(400, INPUT_INVALID, "query string", None, "must be UTF-8") from None
        except ValueError:
            raise Refusal(400, INPUT_TOO_LARGE, "query string",
                          None, f"has more than {self.max_params} parameters") from None
        grouped = {}
        for name, value in pairs:
            grouped.setdefault(name, []).append(value)
        for name in grouped:
            if name not in declared:
                raise Refusal(400, INPUT_INVALID, "query parameter", _shown(name), "is not declared")
        cleaned = {}
        for name, param in declared.items():
            values = grouped.get(name)
            if values is None:
                if param.required:
                    raise Refusal(400, INPUT_INVALID, "query parameter", name, "is required")
                continue
            value, new = self._check_scalar_param(param, values, definitions)
            if new is not value:
                cleaned[name] = new if isinstance(new, list) else [new]
        if cleaned:
            position = {name: 0 for name in cleaned}
            out = []
            for name, value in pairs:
                if name in cleaned:
                    value = str(cleaned[name][position[name]])
                    position[name] += 1
                out.append((name, value))
            rewrites["query"] = urlencode(out)

    def _check_scalar_param(self, param, values, definitions):
        """Check one parameter's raw string value(s); returns (value, value-after-cleaning)."""
        location = _LOCATION_NAMES[param.location]
        if param.kind == "array":
            items = values if param.explode else [part for value in values for part in value.split(",")]
            item_schema = resolve(param.schema, definitions).get("items", {})
            value = [self._coerce(location, param.name, text, item_schema, definitions) for text in items]
        else:
            if len(values) > 1:
                # HTTP parameter pollution: frameworks disagree on which copy wins.
                raise Refusal(400, INPUT_INVALID, location, param.name, "must not be repeated")
            value = self._coerce(location, param.name, values[0], param.schema, definitions)
        try:
            param.validate(value)
        except fastjsonschema.JsonSchemaValueException as error:
            invalid = describe(error, definitions)
            raise Refusal(400, INPUT_INVALID, location, _join_name(param.name, invalid.where),
                          invalid.rule) from None
        return value, self._walk(location, param.name, value, param.schema, definitions, decoded=True)

    def _coerce(self, location, name, text, schema, definitions):
        if len(text) > self.max_string_length and "maxLength" not in resolve(schema, definitions):
            raise Refusal(400, INPUT_TOO_LARGE, location, name,
                          f"is longer than {self.max_string_length} characters")
        try:
            return coerce(text, schema, definitions)
        except Invalid as invalid:
            raise Refusal(400, INPUT_INVALID, location, name, invalid.rule) from None

    def _check_headers(self, environ, operation, definitions):
        for name, param in operation.params["header"].items():
            if name in ("accept", "content-type", "authorization"):
                continue  # OpenAPI 3: these are described elsewhere and ignored here
            key = "HTTP_" + name.upper().replace("-", "_")
            value = environ.get(key)
            if value is None:
                if param.required:
                    raise Refusal(400, INPUT_INVALID, "header", param.name, "is required")
                continue
            values = [part.strip() for part in value.split(",")] if param.kind == "array" else [value]
            if param.kind == "array":
                param = _replace(param, explode=True)
            self._check_scalar_param(param, values, definitions)

    def _check_cookies(self, environ, operation, definitions):
        cookies = {}
        for part in environ.get("HTTP_COOKIE", "").split(";"):
            name, sep, value = part.strip().partition("=")
            if sep:
                cookies.setdefault(name, []).append(value.strip().strip('"'))
        for name, param in operation.params["cookie"].items():
            values = cookies.get(name)
            if values is None:
                if param.required:
                    raise Refusal(400, INPUT_INVALID, "cookie", name, "is required")
                continue
            self._check_scalar_param(param, values, definitions)


def _replace(param, **changes):
    import dataclasses

    return dataclasses.replace(param, **changes)
