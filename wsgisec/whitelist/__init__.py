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

Modules: this one holds the layer (routing, modes, refusals turned into events and
problem responses) and ``filter_factory``; ``params.py`` checks query/path/header/cookie
parameters, ``bodies.py`` the bodies (multipart through :mod:`wsgisec.multipart`),
``values.py`` walks every string into the text policy or nh3, ``refusals.py`` holds
:class:`Refusal` and the event kinds, ``text_policy.py`` (with ``text_rules.py`` and the
SQL tokeniser ``sqli.py``) is the free-text policy, ``learning.py`` and ``cli.py`` the
learn mode and its verb. The OpenAPI loader stays shared (:mod:`wsgisec.openapi`,
:mod:`wsgisec.schemas`): validating responses against the same document must not
import this package.

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

import os

from .. import events, openapi, settings
from ..layer import Layer, layer_factory
from ..responses import problem, store_unavailable
from ..settings import ConfigurationError
from ..store import StoreUnavailable, coerce as coerce_store
from ..wsgi import replace_body
from . import learning
from .bodies import BodyChecks, XmlBodyChecks, json_depth
from .params import ParamChecks
from .refusals import (INPUT_ATTACK, INPUT_INVALID, INPUT_TOO_LARGE, MEDIA_TYPE_UNDECLARED, METHOD_UNDECLARED,
                       ROUTE_UNDECLARED, XML_UNSAFE, Refusal, _shown)
from .values import ValueChecks

__all__ = ["Whitelist", "filter_factory", "SETTINGS", "Refusal", "json_depth"]
# The event kinds (defined in refusals.py), importable from here as before.
_KINDS = (ROUTE_UNDECLARED, METHOD_UNDECLARED, MEDIA_TYPE_UNDECLARED, INPUT_INVALID, INPUT_ATTACK,
          INPUT_TOO_LARGE, XML_UNSAFE)

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


class Whitelist(ParamChecks, ValueChecks, BodyChecks, XmlBodyChecks, Layer):
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
            return store_unavailable(environ, "whitelist", error, event=False)(environ, start_response)
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
    return layer_factory("whitelist", Whitelist, kw, global_conf)
