"""Allowlist input validation from an OpenAPI document, safe parsing, strict limits.

Practice 2 (injection: XSS, SQL injection, XXE, path traversal). Everything a partner
application sends is checked against an allowlist *before* the legacy app sees it, and
anything the allowlist does not name is refused:

* the allowlist is an OpenAPI 3.0/3.1 document (YAML or JSON), loaded and compiled once
  at start-up by :mod:`wsgisec.openapi` (an invalid document, or one that asks for
  something we could not enforce, is a ``ConfigurationError`` then, never later);
* an undeclared path gets 404, an undeclared method 405 with ``Allow``; an undeclared
  query parameter, form field or body property gets 400 (objects are closed unless the
  document says ``additionalProperties``); a body whose media type the operation does not
  declare gets 415. Media types are *parsed* (RFC 9110 §8.3.1): ``application/json;
  charset=utf-8`` is JSON, a type we cannot read is refused, never skipped (the bypass
  several OpenAPI validators shipped: an unknown Content-Type left the body unchecked);
* headers and cookies: only those the document declares are validated. Undeclared ones
  (``Authorization``, ``Cookie``, ``Signature``, ``Signature-Input``, ``Content-Digest``,
  ``X-Request-Token``...) pass untouched: the layers that own them sit outside this one,
  and browsers and proxies add headers no partner document lists;
* strings without a ``format``, ``enum`` or ``const`` (free text, and patterned strings
  too: a pattern that admits ``O'Brien`` admits a quote breakout) go through the
  default text policy (:mod:`wsgisec.whitelist.text_policy`): canonicalised, then refused if they
  carry markup, script URLs, SQL-injection, traversal or command-injection constructs.
  Fields declared ``format: html`` are cleaned with nh3 (Ammonia) instead, and the app
  receives the cleaned value (query string or body rewritten, ``CONTENT_LENGTH`` fixed);
  the declared ``maxLength``/``minLength`` (or ``max_string_length``) are checked again on
  the cleaned value, since cleaning can grow it (``&`` -> ``&amp;``);
* limits: ``max_body`` (413, decided from ``Content-Length`` and enforced while
  reading), ``max_params``, ``max_string_length``, ``max_json_depth``, ``max_xml_depth``,
  ``max_xml_elements`` (400);
* XML is parsed only by defusedxml: a DTD, entity declaration or external reference is
  refused with 400 (billion laughs, XXE), and memory stays bounded by ``max_body``.

The app receives exactly the bytes it would have received (or the cleaned ones), with
``wsgi.input`` readable again and ``CONTENT_LENGTH`` right. A refusal is a problem
response naming the parameter and the rule (``query parameter "id": must be an
integer``) — never the offending value — plus an event with the incident id.

Events (``wsgisec.events.whitelist``, with the parameter *name*, never its value):
``route-undeclared`` (404), ``method-undeclared`` (405), ``media-type-undeclared`` (415),
``input-invalid`` (400: undeclared, wrong type, pattern...), ``input-attack`` (400: the
text policy), ``input-too-large`` (413/400: a limit), ``xml-unsafe`` (400: DTD/entities).

Cost (``benchmarks/bench_whitelist.py``): about 12 µs for a GET with three declared
parameters; the text policy costs ~0.1 µs for a plain word, ~5 µs for a short phrase and
~65 µs per KB of free text (typed, format and enum fields skip it; ids and codes that
match a pattern take its fast path).

Modes: ``enforce`` refuses; ``report-only`` emits the same events (severity info) and lets
the request through unchanged; ``learn`` records, per route and field, the types,
lengths, character classes and enum candidates it sees in the store (no document
needed), from which ``wsgisec learn --config CONFIG [--min-samples N] > api.openapi.yaml``
writes an OpenAPI document to review, diff and then enforce (NAXSI's learning mode is
the model). With a document, ``learn`` also reports what that document would refuse.

ini::

    [filter:whitelist]
    use = egg:wsgisec#whitelist
    get store = wsgisec_store
    rules = %(here)s/partner_api.openapi.yaml
    mode = enforce
    max_body = 1MB
    exempt_paths = =/oauth/token =/oauth/revoke =/oauth/introspect

Python::

    from wsgisec.whitelist import Whitelist
    app = Whitelist(app, rules="partner_api.openapi.yaml", max_body=1024 * 1024)

Settings (ini name, default):

``rules`` (required unless ``mode = learn``)
    Path of the OpenAPI document (YAML, or JSON if it ends in ``.json``), relative to the
    ini file's directory. Python callers may pass a dict or a loaded ``Document``.
``mode`` (enforce)
    ``enforce``, ``report-only`` or ``learn``.
``max_body`` (1MB)
    Largest request body read; larger ones get 413 without being read.
``max_params`` (100)
    Most query parameters plus form/multipart fields in one request.
``max_string_length`` (4096)
    Longest string value (characters) where the schema declares no ``maxLength``.
``max_json_depth`` (32)
    Deepest nesting of JSON arrays/objects.
``max_xml_depth`` (32)
    Deepest nesting of XML elements.
``max_xml_elements`` (10000)
    Most XML elements in one body.
``store`` (``wsgisec.sqlite`` beside the ini file)
    Where events (and, in learn mode, observations) are kept.
``exempt_paths`` (none)
    Paths passed through unchecked: ``=/oauth/token`` is that exact path, ``/oauth`` a
    prefix (everything below it too). Prefer exact paths: ``wsgisec check`` warns when
    a prefix covers a path the OpenAPI document declares.
"""

from __future__ import annotations

import io
import json
import os
import re
from itertools import accumulate
from urllib.parse import parse_qsl, urlencode

import fastjsonschema

from .. import events, multipart, openapi, pipeline, settings
from . import learning, text_policy
from ..openapi import Invalid, coerce, describe, resolve, schema_types
from ..pipeline import Layer
from ..responses import problem
from ..settings import ConfigurationError
from ..store import StoreUnavailable, coerce as coerce_store
from ..wsgi import BodyTooLarge, has_body, read_body, replace_body

__all__ = ["Whitelist", "filter_factory", "SETTINGS", "Refusal"]

# Event kinds.
ROUTE_UNDECLARED = "route-undeclared"
METHOD_UNDECLARED = "method-undeclared"
MEDIA_TYPE_UNDECLARED = "media-type-undeclared"
INPUT_INVALID = "input-invalid"
INPUT_ATTACK = "input-attack"
INPUT_TOO_LARGE = "input-too-large"
XML_UNSAFE = "xml-unsafe"

_log = events.logger_for("whitelist")

MODES = ("enforce", "report-only", "learn")


def _rules_path(text: str) -> str:
    path = text.strip()
    if not path:
        raise ValueError("the path of an OpenAPI document (YAML or JSON)")
    return path


SETTINGS = {
    "rules": (settings.optional(_rules_path), None),
    "mode": (settings.choice(*MODES), "enforce"),
    "max_body": (settings.size, "1MB"),
    "max_params": (settings.integer(1, 100000), "100"),
    "max_string_length": (settings.integer(1), "4096"),
    "max_json_depth": (settings.integer(1, 10000), "32"),
    "max_xml_depth": (settings.integer(1, 10000), "32"),
    "max_xml_elements": (settings.integer(1), "10000"),
    "store": (settings.optional(settings.store_url), None),
    "exempt_paths": (settings.path_prefixes, ""),
}


class Refusal(Exception):
    """Why a request is refused: status, event kind, where, which name, which rule."""

    def __init__(self, status: int, kind: str, location: str, name: str | None, rule: str,
                 headers=()):
        super().__init__(rule)
        self.status = status
        self.kind = kind
        self.location = location
        self.name = name
        self.rule = rule
        self.headers = list(headers)

    @property
    def detail(self) -> str:
        if self.name:
            return f'{self.location} "{self.name}": {self.rule}'
        return f"{self.location}: {self.rule}"


# Names we show back: declared names always look like this; an undeclared name that does
# not is attacker text, and we never echo attacker text.
_SHOWN_NAME = re.compile(r"[A-Za-z0-9_.\-\[\]$@:/+]{1,80}")


def _shown(name) -> str:
    name = str(name)
    return name if _SHOWN_NAME.fullmatch(name) else "(a name that is not declared)"


def _join(path: str, key) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


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


class Whitelist(Layer):
    """Refuse input the OpenAPI allowlist does not declare (see the module docstring)."""

    wsgisec_layer = "whitelist"

    def __init__(self, app, *, rules=None, mode="enforce", max_body=1024 * 1024, max_params=100,
                 max_string_length=4096, max_json_depth=32, max_xml_depth=32, max_xml_elements=10000,
                 store=None, exempt_paths=()):
        self.app = app
        if mode not in MODES:
            raise ConfigurationError(f"mode must be one of {', '.join(MODES)}")
        if rules is None and mode != "learn":
            raise ConfigurationError("rules is required: the path of the OpenAPI document to enforce "
                                     "(or set mode = learn to record traffic and write one)")
        if isinstance(rules, openapi.Document) or rules is None:
            self.document = rules
        else:
            self.document = openapi.load(rules)
        self.store = coerce_store(store)
        if mode == "learn" and self.store is None:
            raise ConfigurationError("mode = learn needs a store to keep its observations")
        self.mode = mode
        self.max_body = max_body
        self.max_params = max_params
        self.max_string_length = max_string_length
        self.max_json_depth = max_json_depth
        self.max_xml_depth = max_xml_depth
        self.max_xml_elements = max_xml_elements
        self.exempt_paths = tuple(exempt_paths)
        self.learner = learning.Learner(self.store, self.document) if mode == "learn" else None
        self.settings = {
            "rules": self.document.source if self.document is not None else None,
            "mode": mode, "max_body": max_body, "max_params": max_params,
            "max_string_length": max_string_length, "max_json_depth": max_json_depth,
            "max_xml_depth": max_xml_depth, "max_xml_elements": max_xml_elements,
            "store": getattr(self.store, "url", None), "exempt_paths": list(self.exempt_paths),
        }

    def warnings(self):
        found = []
        if self.mode == "report-only":
            found.append("mode = report-only: invalid input is reported but reaches the app")
        elif self.mode == "learn":
            found.append("mode = learn: input is recorded, not checked; enforce the learned document")
        if self.max_body > 16 * 1024 * 1024:
            found.append(f"max_body is {self.max_body} bytes: large bodies are held in memory to be checked")
        found.extend(self._exempt_warnings())
        return found

    def _exempt_warnings(self):
        """An exempt *prefix* that covers a declared route lets every route below it skip
        the allowlist, including ones added to the app later: name exact paths (``=/x``)."""
        if self.document is None:
            return []
        found = []
        for prefix in self.exempt_paths:
            if prefix.startswith("="):
                continue
            covered = [route.template for route in self.document.routes
                       if settings.path_matches(route.template, (prefix,))]
            if covered:
                shown = ", ".join(covered[:3]) + (", ..." if len(covered) > 3 else "")
                found.append(f"exempt_paths = {prefix} is a prefix that covers declared paths ({shown}), "
                             f"which then skip the allowlist; name exact paths (={prefix}/...)")
        return found

    # -- the request --------------------------------------------------------------

    def __call__(self, environ, start_response):
        if self.exempt_paths and settings.path_matches(environ.get("PATH_INFO", ""), self.exempt_paths):
            return self.app(environ, start_response)
        try:
            if self.learner is not None:
                self._learn(environ)
            if self.document is not None:
                rewrites = self._check(environ)
                if rewrites and self.mode == "enforce":
                    _apply(environ, rewrites)
        except Refusal as refusal:
            if self.mode == "enforce":
                return self._refuse(environ, refusal)(environ, start_response)
            self._report(environ, refusal)
        except StoreUnavailable as error:
            # Only learn mode writes per request; fail closed like every other layer.
            _log.error("whitelist store unavailable: %s", error)
            return problem(environ, 503, "The service is temporarily unavailable.")(environ, start_response)
        return self.app(environ, start_response)

    def _refuse(self, environ, refusal: Refusal):
        incident = events.emit(environ, refusal.kind, refusal.rule, store=self.store, logger=_log,
                               detail={"in": refusal.location, "parameter": refusal.name, "mode": self.mode})
        extra = {"in": refusal.location, "rule": refusal.rule}
        if refusal.name:
            extra["parameter"] = refusal.name
        return problem(environ, refusal.status, refusal.detail, incident=incident,
                       headers=refusal.headers, extra=extra)

    def _report(self, environ, refusal: Refusal):
        events.emit(environ, refusal.kind, refusal.rule, severity="info", store=self.store, logger=_log,
                    detail={"in": refusal.location, "parameter": refusal.name, "mode": self.mode,
                            "status": refusal.status})
        environ["wsgisec.whitelist.reported"] = refusal.detail

    def _learn(self, environ):
        from xml.etree.ElementTree import ParseError

        body = self._read(environ)
        try:
            self.learner.observe(environ, body)
        except (ValueError, ParseError, RecursionError):
            # What cannot be parsed (bad UTF-8/JSON/XML, a DTD, absurd nesting) cannot be
            # learned from; with a document, _check reports it.
            _log.info("whitelist learn: skipped a request that could not be parsed")

    # -- routing --------------------------------------------------------------------

    def _check(self, environ) -> dict:
        raw_path = environ.get("PATH_INFO", "")
        try:
            path = raw_path.encode("latin-1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            raise Refusal(400, INPUT_INVALID, "path", None, "must be UTF-8") from None
        found = self.document.match(path)
        if found is None:
            raise Refusal(404, ROUTE_UNDECLARED, "path", None, "is not declared")
        route, path_values = found
        method = environ.get("REQUEST_METHOD", "GET").upper()
        operation = route.operations.get(method)
        if operation is None and method == "HEAD":
            operation = route.operations.get("GET")  # RFC 9110 §9.3.2: GET without the body
        if operation is None:
            raise Refusal(405, METHOD_UNDECLARED, "method", _shown(method), "is not allowed on this path",
                          headers=[("Allow", route.allow())])
        rewrites = {}
        definitions = operation.definitions
        self._check_query(environ, operation, definitions, rewrites)
        for name, value in path_values.items():
            self._check_scalar_param(operation.params["path"][name], [value], definitions)
        if operation.params["header"]:
            self._check_headers(environ, operation, definitions)
        if operation.params["cookie"]:
            self._check_cookies(environ, operation, definitions)
        self._check_body(environ, operation, definitions, rewrites)
        return rewrites

    # -- parameters -----------------------------------------------------------------

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

    # -- free text, html --------------------------------------------------------------

    def _walk(self, location, path, value, schema, definitions, decoded):
        """Apply the text policy (or nh3) to every string; returns the value, cleaned."""
        schema = resolve(schema, definitions)
        if isinstance(value, str):
            if len(value) > self.max_string_length and "maxLength" not in schema:
                raise Refusal(400, INPUT_TOO_LARGE, location or "request body", path or None,
                              f"is longer than {self.max_string_length} characters")
            fmt = schema.get("format")
            if fmt == "html":
                import nh3

                # Ammonia's allowlist: no script/style, no event handlers, no javascript: URLs.
                cleaned = nh3.clean(value)
                if cleaned == value:
                    return value
                self._check_cleaned_length(location, path, cleaned, schema)
                return cleaned
            if fmt or "enum" in schema or "const" in schema:
                return value  # the document names the exact values or their grammar
            # A pattern still goes through the policy: one that admits a name like
            # O'Brien also admits "x' or name is not null or 'a" (letters, blanks, a quote).
            # Values of ids and codes take the policy's fast path (~0.1 µs).
            violation = text_policy.check(value, decoded)
            if violation is not None:
                raise Refusal(400, INPUT_ATTACK, location or "request body", path or None, violation.rule)
            return value
        if isinstance(value, dict):
            properties, extra, patterns = _object_parts(schema, definitions)
            new = None
            for key, item in value.items():
                sub = properties.get(key)
                if sub is None:
                    violation = text_policy.check(key, decoded)
                    if violation is not None:
                        raise Refusal(400, INPUT_ATTACK, location or "request body", path or None,
                                      "property name: " + violation.rule)
                    sub = next((s for p, s in patterns if p.search(key)), extra)
                out = self._walk(location, _join(path, key), item, sub, definitions, decoded)
                if out is not item:
                    if new is None:
                        new = dict(value)
                    new[key] = out
            return value if new is None else new
        if isinstance(value, list):
            items = schema.get("items", {}) if isinstance(schema.get("items"), dict) else {}
            new = None
            for index, item in enumerate(value):
                out = self._walk(location, _join(path, index), item, items, definitions, decoded)
                if out is not item:
                    if new is None:
                        new = list(value)
                    new[index] = out
            return value if new is None else new
        return value

    def _check_cleaned_length(self, location, path, cleaned, schema):
        """Cleaning can grow a value (``&`` -> ``&amp;``, ``rel="noopener noreferrer"``
        added) or shrink it (a ``<script>`` dropped): the app gets the cleaned value, so
        that is what the declared length limits must hold for."""
        where = location or "request body", path or None
        longest = schema.get("maxLength", self.max_string_length)
        if len(cleaned) > longest:
            raise Refusal(400, INPUT_TOO_LARGE, *where, f"is longer than {longest} characters once cleaned")
        shortest = schema.get("minLength", 0)
        if len(cleaned) < shortest:
            raise Refusal(400, INPUT_INVALID, *where, f"is shorter than {shortest} characters once cleaned")

    # -- bodies ---------------------------------------------------------------------

    def _read(self, environ) -> bytes:
        try:
            return read_body(environ, self.max_body)
        except BodyTooLarge:
            raise Refusal(413, INPUT_TOO_LARGE, "request body", None,
                          f"is larger than {self.max_body} bytes") from None
        except ValueError:
            raise Refusal(400, INPUT_INVALID, "request body", None, "has an invalid Content-Length") from None

    def _check_body(self, environ, operation, definitions, rewrites):
        length_text = environ.get("CONTENT_LENGTH") or ""
        if length_text:
            try:
                length = int(length_text)
            except ValueError:
                raise Refusal(400, INPUT_INVALID, "request body", None, "has an invalid Content-Length") from None
            if length < 0:
                raise Refusal(400, INPUT_INVALID, "request body", None, "has an invalid Content-Length")
            maybe = length > 0
        else:
            length = None
            maybe = has_body(environ)
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
        if root is None:
            raise Refusal(400, INPUT_INVALID, "request body", None, "is not well-formed XML")
        return root

    def _check_text(self, body, spec, definitions):
        try:
            value = body.decode("utf-8")
        except UnicodeDecodeError:
            raise Refusal(400, INPUT_INVALID, "request body", None, "must be UTF-8") from None
        self._validate_body(spec, value, definitions, "request body")
        self._walk("request body", "", value, spec.schema, definitions, decoded=False)
        return None


_LOCATION_NAMES = {"query": "query parameter", "path": "path parameter", "header": "header",
                   "cookie": "cookie"}


def _join_name(name, where):
    return f"{name}{where if where.startswith('[') else '.' + where}" if where else name


def _replace(param, **changes):
    import dataclasses

    return dataclasses.replace(param, **changes)


def _object_parts(schema, definitions):
    """(properties, schema-for-other-keys, [(regex, schema)]) of an object schema.

    ``allOf``/``anyOf``/``oneOf`` branches contribute their properties, so the text policy
    still reaches every string; a key no branch declares is checked as free text.
    """
    properties = dict(schema.get("properties") or {})
    extra = schema.get("additionalProperties", {})
    patterns = [(re.compile(p), s) for p, s in (schema.get("patternProperties") or {}).items()]
    for keyword in ("allOf", "anyOf", "oneOf"):
        for branch in schema.get(keyword) or ():
            branch = resolve(branch, definitions)
            for name, sub in (branch.get("properties") or {}).items():
                properties.setdefault(name, sub)
    if extra is True:
        extra = {}
    return properties, extra, patterns


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


def _apply(environ, rewrites):
    """Give the app the cleaned values (format: html fields) instead of the originals."""
    if "query" in rewrites:
        environ["wsgisec.whitelist.orig_query"] = environ.get("QUERY_STRING", "")
        environ["QUERY_STRING"] = rewrites["query"]
    if "body" in rewrites:
        replace_body(environ, rewrites["body"])


def filter_factory(global_conf, **local_conf):
    """PasteDeploy ``egg:wsgisec#whitelist``."""
    kw = settings.parse("whitelist", SETTINGS, local_conf, global_conf)
    rules = kw.get("rules")
    if rules is not None:
        if not os.path.isabs(rules) and (global_conf or {}).get("here"):
            rules = os.path.join(global_conf["here"], rules)
        try:
            kw["rules"] = openapi.load(os.path.normpath(rules))  # compiled once, shared by every instance
        except ConfigurationError as error:
            raise settings.config_error("whitelist", global_conf, str(error)) from None
    return pipeline.layer_factory("whitelist", Whitelist, kw, global_conf)
