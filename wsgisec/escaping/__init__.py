"""Escape output the legacy app forgot to escape, and send safe response headers.

Practice 3 (XSS, formula injection): "filter input, escape output". A legacy app that
echoes input into HTML, concatenates JSON or XML by hand, or exports CSV must not become
an XSS or spreadsheet-formula vector, and its code is not changed. This layer rewrites
the *response*, only where it must:

* **Reflected input in HTML and XML** (``text/html``, ``application/xhtml+xml``,
  ``application/xml``, ``text/xml``, ``*+xml``): the values the caller sent (query and
  form fields and their names, strings in a JSON body, path segments, the headers named in
  ``reflect_headers``) that appear *verbatim* in the document are neutralised where they
  stand, with the encoding of the context they landed in: element text, quoted and
  unquoted attribute values, ``on*`` handlers, URL attributes (``href``, ``src``,
  ``action``, ``formaction``, ...: ``javascript:``, ``vbscript:`` and non-image
  ``data:`` URLs become ``about:invalid#wsgisec-blocked``), ``<script>`` code, JS string
  and template literals, comments, ``<style>``, ``<title>``/``<textarea>``, CDATA. See
  :mod:`wsgisec.escaping.reflection` for the table. Each neutralised parameter emits a
  ``reflected-input-escaped`` event (its source and *name*, the contexts, the count and
  the length; never the value), so operators learn which endpoints are vulnerable.

  Which values are looked for (the documented rule): at least ``min_reflect_length``
  characters, and containing one of ``< > " ' ` & \\ ( ) = ; $ { }`` or starting (after
  browser normalisation) with ``javascript:``, ``vbscript:`` or ``data:``. Any other
  value cannot leave any context, so it is not even searched for. An occurrence is
  rewritten only if the value can leave, or is dangerous in, the context it sits in
  (``Tom & Jerry`` in element text stays as it is), so a page where nothing dangerous was
  reflected is passed on **byte-identical**, and an occurrence the app already escaped is
  not a raw occurrence and is never escaped twice.

* **JSON** (``application/json``, ``*+json``): ``<``, ``>``, ``&``, ``'``, U+2028 and
  U+2029 become ``\\u003c``, ``\\u003e``, ``\\u0026``, ``\\u0027``, ``\\u2028``,
  ``\\u2029``, as bytes, without parsing (what Jinja's ``tojson`` and Django's
  ``json_script`` do, plus the two line separators Jinja misses). This is correct for
  any body, even invalid hand-concatenated JSON: in JSON (RFC 8259 §2, §7) these
  characters are legal only *inside* strings (the structural tokens are ``{}[],:``,
  whitespace, numbers and ``true/false/null``), and inside a string ``\\u003c`` is the
  same character, so every parser reads the same value; outside a string they already
  made the document invalid, and ``\\uXXXX`` there is still invalid (a backslash is not
  legal outside strings), so no invalid document becomes a different valid one. (The one
  subtle case: ``"\\<"``, an invalid escape, becomes ``"\\\\u003c"``, a valid string; it
  is inert either way.) The output is inert to an HTML parser (no ``<``, no ``&``) and to
  a JS parser before ES2019 (no raw line separators). Bodies larger than ``max_buffer``
  are escaped chunk by chunk (a U+2028 split across chunks is carried over) and sent
  without ``Content-Length``.

* **Structure injection** (JSON and XML held whole, ``check_structure``): string-built
  documents break when a value carries their syntax. A JSON response that does not
  parse, an XML one that is not well-formed (parsed with defusedxml; entity declarations
  are refused too), or a JSON response in which a request value with a ``"`` or a bracket
  appears raw outside a single string token (it closed a string and wrote structure, as
  ``x", "admin": "1`` does) is not sent: the caller gets a masked ``500`` problem
  (``reason`` ``response-invalid`` or ``structure-injection``, the incident id, none of
  the app's content) and a ``response-invalid`` / ``structure-injection`` event (error)
  names the check, the parameter *name* and the media type. A masked 500, not a 4xx: the
  fault is the app's, and a partner quoting the incident id gets it fixed; the request
  may have been stored before the response was refused (validate stored data against
  the OpenAPI document to catch it on the way in). Documents over ``max_buffer`` go out
  as they stream (escaped or neutralised, not checked). See
  :mod:`wsgisec.escaping.structure`.

* **Response schemas** (``response_schemas = report`` or ``enforce``, off by default): a
  held JSON response is compared with the schema the OpenAPI document (``rules``, the
  whitelist's file) declares for its path template, method, status (``200``, then
  ``2XX``, then ``default``) and media type, parsed once with the structure check.
  ``report`` lets it through with an ``escaping.response-schema`` event (warning: the
  status, the failing keyword, its RFC 6901 pointer into the document and the pointer
  into the response, never a value); ``enforce`` masks it (``500``, ``reason``
  ``response-invalid``) with the same event (error). No schema declared: it passes. A
  JSON response over ``max_buffer`` cannot be checked: reported, or refused under
  ``enforce``. See :mod:`wsgisec.escaping.response_schema`.

* **CSV/TSV exports** (``text/csv``, ``text/tab-separated-values``): a cell starting with
  ``=``, ``+``, ``-``, ``@``, tab or CR (``csv_formula_prefixes``) is prefixed with
  ``'`` and quoted, with its quotes doubled (OWASP "CSV Injection"); plain numbers such as
  ``-5`` or ``+3.5e2`` are left alone (they cannot be formulas), so an ordinary export is
  unchanged. The cells are found by real RFC 4180 parsing, chunk by chunk, in time
  linear in the body (:mod:`wsgisec.escaping.csv_formulas`): a stray ``"`` inside an
  unquoted cell is an ordinary character, not the start of a quoted run.
  ``csv-formula-neutralized`` (info) counts the cells changed.

* **Headers**, on every response, never overwriting one the app set:
  ``X-Content-Type-Options: nosniff``; ``charset=<default_charset>`` added to a
  ``text/*`` type that has none (no UTF-7 sniffing); ``Referrer-Policy``,
  ``X-Frame-Options``, ``Cross-Origin-Opener-Policy``, ``Permissions-Policy``;
  ``Content-Disposition: attachment`` under ``attachment_paths`` (reflected file
  download); and on HTML/XML documents a CSP, report-only by default (CSP3: the
  ``frame-ancestors`` directive is ignored in a report-only policy, which is why
  ``X-Frame-Options`` is sent too), with ``report-uri``/``report-to`` naming
  ``csp_report_uri`` (the reports collector's endpoint) when set. ``path_overrides``
  change or switch off any of them below a path prefix (the longest prefix wins).

Streaming and bounds: a body is rewritten only if its type is one of the above, it has
no ``Content-Encoding`` (compressed bytes cannot be searched: put this layer *inside* any
gzip middleware, i.e. after it in the pipeline, closer to the app; the lesson of Django's
removed ``CsrfResponseMiddleware``), its status is not 1xx/204/206/304 and the request
is not ``HEAD``. Binary types are never buffered, and an HTML/XML page is not buffered
at all when the request carries no value worth looking for (the common case). Otherwise
the body is buffered up to ``max_buffer`` bytes, so a reflection split across chunks is
found, rewritten, and sent with a correct ``Content-Length``; ``ETag``, ``Content-MD5``
and digest headers are dropped when the body changed (kept when it did not). A larger
body (or a larger ``Content-Length``) is never held whole:

* HTML/XML is neutralised in a sliding window (the longest candidate value, at least 16
  characters, is carried from one chunk to the next, and the scanner never splits a
  token at a window edge), so padding a page past ``max_buffer`` does not defeat the
  layer; ``Content-Length``/``ETag`` are dropped;
* JSON is escaped chunk by chunk (a U+2028 split across chunks is carried over),
  without ``Content-Length``;
* a CSV export is neutralised chunk by chunk (the parser's state is carried over).

The app's iterable is always closed (:class:`wsgisec.wsgi.ClosingIterator`); an error
response started with ``exc_info`` replaces a held-back one.

ini::

    [filter:escaping]
    use = egg:wsgisec#escaping
    get store = wsgisec_store
    max_buffer = 1MB
    reflect_sources = query form json path headers
    reflect_headers = Referer User-Agent
    min_reflect_length = 3
    json_escape = true
    check_structure = true
    response_schemas = enforce
    rules = %(here)s/partner_api.openapi.yaml
    csv_neutralize = true
    csv_formula_prefixes = = + - @ tab cr
    content_security_policy = default-src 'self'; object-src 'none'; base-uri 'self';
        frame-ancestors 'none'; form-action 'self'
    csp_report_only = true
    csp_report_uri = /_wsgisec/reports/csp
    attachment_paths = /api/export.csv
    path_overrides =
        /embed X-Frame-Options SAMEORIGIN
        /embed Content-Security-Policy-Report-Only frame-ancestors 'self'

Python::

    from wsgisec.escaping import Escaping
    app = Escaping(app, csp_report_only=False, attachment_paths=("/api/export.csv",))

Settings (ini name, default):

``max_buffer`` (1MB)
    Largest body held whole; larger HTML/XML is neutralised in a sliding window, larger
    JSON escaped chunk by chunk, larger CSV record by record (no ``Content-Length``).
``reflect_sources`` (query form json path headers)
    Where reflected values come from; empty turns reflection neutralisation off.
``reflect_headers`` (Referer User-Agent)
    Request headers whose values are looked for when ``headers`` is a source.
``min_reflect_length`` (3)
    Shorter values are not looked for (they cannot carry a payload on their own, and a
    two-character value such as ``&a`` would match unrelated markup).
``json_escape`` (true)
    Escape ``< > & '`` U+2028 U+2029 in JSON responses.
``check_structure`` (true)
    Mask (500, an incident id, no app content) a JSON or XML response that does not
    parse, and a JSON response that a request value forged structure in.
``response_schemas`` (off)
    ``off``, ``report`` (an event, the response goes out) or ``enforce`` (a masked 500
    and the event) for JSON responses that break their OpenAPI response schema.
``rules`` (none)
    The OpenAPI document (YAML or JSON, relative to the ini file) whose response schemas
    ``response_schemas`` checks; required unless it is ``off``.
``csv_neutralize`` (true)
    Neutralise formula cells in CSV/TSV responses.
``csv_formula_prefixes`` (= + - @ tab cr)
    Cell prefixes that make a formula; single characters, or ``tab``/``cr``/``lf``, or
    ``fullwidth`` for ``＝ ＋ － ＠`` (non-ASCII prefixes apply to UTF-8 bodies only).
``default_charset`` (utf-8)
    Charset added to ``text/*`` types that name none (empty: add none) and assumed when
    decoding documents that name none.
``content_security_policy`` (default-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'; form-action 'self')
    CSP for HTML/XML documents; empty sends none.
``csp_report_only`` (true)
    Send it as ``Content-Security-Policy-Report-Only`` (watch reports, then enforce).
``csp_report_uri`` (none)
    Endpoint for violation reports (``report-uri``, and ``report-to`` via a
    ``Reporting-Endpoints`` header), e.g. the reports layer's collector.
``referrer_policy`` (strict-origin-when-cross-origin)
    ``Referrer-Policy``; empty sends none.
``frame_options`` (DENY)
    ``X-Frame-Options``: ``DENY``, ``SAMEORIGIN`` or ``off``.
``cross_origin_opener_policy`` (same-origin)
    ``Cross-Origin-Opener-Policy``; empty sends none.
``permissions_policy`` (camera=(), microphone=(), geolocation=(), payment=(), usb=())
    ``Permissions-Policy``; empty sends none.
``attachment_paths`` (none)
    Path prefixes whose responses get ``Content-Disposition: attachment``.
``path_overrides`` (none)
    Lines ``/prefix Header-Name value``; the value ``off`` sends no such header there.
``store`` (``wsgisec.sqlite`` beside the ini file)
    Where ``reflected-input-escaped`` events are kept for the reports collector.
"""

from __future__ import annotations

import os

from .. import openapi, settings
from ..layer import Layer, layer_factory
from .csv_formulas import CSVNeutralizer
from .candidates import collect, request_body
from .decide import CSV_TYPES, prepare
from .headers import SafeHeaders
from .jsonsafe import escape_json
from .parsers import (DEFAULT_CSP, DEFAULT_PERMISSIONS, SOURCES as _SOURCES, charset as _charset,
                      formula_prefixes as _prefixes, frame_options as _frame_options, free_text as _text,
                      rules_path as _rules_path, sources as _sources)
from .reflection import Candidate
from .response_schema import MODES as SCHEMA_MODES, RESPONSE_SCHEMA, configure as configure_response_schemas
from .rewrite import (CSV_FORMULA_NEUTRALIZED, REFLECTED_INPUT_ESCAPED, RESPONSE_INVALID,
                      STRUCTURE_INJECTION, _Response, report_reflections)
from ..settings import ConfigurationError
from ..store import coerce as coerce_store
from ..wsgi import ClosingIterator

__all__ = ["Escaping", "filter_factory", "SETTINGS", "escape_json", "CSVNeutralizer",
           "REFLECTED_INPUT_ESCAPED", "CSV_FORMULA_NEUTRALIZED", "RESPONSE_INVALID",
           "STRUCTURE_INJECTION", "RESPONSE_SCHEMA"]


SETTINGS = {
    "max_buffer": (settings.size, "1MB"),
    "reflect_sources": (_sources, "query form json path headers"),
    "reflect_headers": (settings.words, "Referer User-Agent"),
    "min_reflect_length": (settings.integer(1, 1000), "3"),
    "json_escape": (settings.boolean, "true"),
    "check_structure": (settings.boolean, "true"),
    "csv_neutralize": (settings.boolean, "true"),
    "csv_formula_prefixes": (_prefixes, "= + - @ tab cr"),
    "default_charset": (_charset, "utf-8"),
    "content_security_policy": (_text, DEFAULT_CSP),
    "csp_report_only": (settings.boolean, "true"),
    "csp_report_uri": (_text, ""),
    "referrer_policy": (_text, "strict-origin-when-cross-origin"),
    "frame_options": (_frame_options, "DENY"),
    "cross_origin_opener_policy": (_text, "same-origin"),
    "permissions_policy": (_text, DEFAULT_PERMISSIONS),
    "attachment_paths": (settings.path_prefixes, ""),
    "path_overrides": (settings.lines, ""),
    "response_schemas": (settings.choice(*SCHEMA_MODES), "off"),
    "rules": (settings.optional(_rules_path), None),
    "store": (settings.optional(settings.store_url), None),
}

# -- the layer --------------------------------------------------------------------------


class Escaping(Layer):
    """Neutralise reflected input, escape JSON, defuse CSV formulas, add safe headers.

    See the module docstring for what is rewritten, when, and every setting.
    """

    wsgisec_layer = "escaping"

    def __init__(self, app, *, max_buffer=1024 * 1024,
                 reflect_sources=_SOURCES, reflect_headers=("Referer", "User-Agent"),
                 min_reflect_length=3, json_escape=True, check_structure=True, csv_neutralize=True,
                 csv_formula_prefixes="=+-@\t\r", default_charset="utf-8",
                 content_security_policy=DEFAULT_CSP, csp_report_only=True, csp_report_uri="",
                 referrer_policy="strict-origin-when-cross-origin", frame_options="DENY",
                 cross_origin_opener_policy="same-origin", permissions_policy=DEFAULT_PERMISSIONS,
                 attachment_paths=(), path_overrides=(), response_schemas="off", rules=None, store=None):
        self.app = app
        if max_buffer < 1024:
            raise ConfigurationError("max_buffer must be at least 1KB")
        unknown = set(reflect_sources) - set(_SOURCES)
        if unknown:
            raise ConfigurationError(f"reflect_sources: unknown {sorted(unknown)}; use {' '.join(_SOURCES)}")
        if min_reflect_length < 1:
            raise ConfigurationError("min_reflect_length must be at least 1")
        for path in attachment_paths:
            if not path.startswith("/"):
                raise ConfigurationError(f"attachment_paths: {path!r} does not start with /")
        frame_options = _frame_options(frame_options)
        self.max_buffer = max_buffer
        self.reflect_sources = frozenset(reflect_sources)
        self.header_keys = tuple(("HTTP_" + name.upper().replace("-", "_"), name)
                                 for name in reflect_headers)
        self.min_reflect_length = min_reflect_length
        self.json_escape = json_escape
        self.check_structure = check_structure
        self.csv_neutralize = csv_neutralize
        # Keyed by (delimiter, UTF-8 body): non-ASCII prefixes are matched only in UTF-8.
        self.csv = {(delimiter, utf8): CSVNeutralizer(csv_formula_prefixes, delimiter, wide=utf8)
                    for delimiter in set(CSV_TYPES.values()) for utf8 in (True, False)} \
            if csv_neutralize else {}
        self.default_charset = default_charset
        self.attachment_paths = tuple(attachment_paths)
        self.safe_headers = SafeHeaders(
            referrer_policy=referrer_policy, frame_options=frame_options,
            cross_origin_opener_policy=cross_origin_opener_policy, permissions_policy=permissions_policy,
            content_security_policy=content_security_policy, csp_report_only=csp_report_only,
            csp_report_uri=csp_report_uri, path_overrides=path_overrides)
        self.overrides = self.safe_headers.overrides
        self.store = coerce_store(store)
        self.response_schemas = configure_response_schemas(response_schemas, rules)
        # Requests whose body may hold reflected values are read (bounded) before the app.
        self._read_bodies = bool(self.reflect_sources & {"form", "json"})

        self.settings = {
            "max_buffer": max_buffer, "reflect_sources": sorted(self.reflect_sources),
            "reflect_headers": list(reflect_headers), "min_reflect_length": min_reflect_length,
            "json_escape": json_escape, "check_structure": check_structure,
            "csv_neutralize": csv_neutralize,
            "csv_formula_prefixes": csv_formula_prefixes, "default_charset": default_charset,
            "content_security_policy": content_security_policy, "csp_report_only": csp_report_only,
            "csp_report_uri": csp_report_uri, "referrer_policy": referrer_policy,
            "frame_options": frame_options or "off",
            "cross_origin_opener_policy": cross_origin_opener_policy,
            "permissions_policy": permissions_policy, "attachment_paths": list(self.attachment_paths),
            "path_overrides": [f"{o.prefix} {o.name} {o.value or 'off'}" for o in self.overrides],
            "response_schemas": response_schemas,
            "rules": getattr(getattr(self.response_schemas, "document", None), "source", rules),
            "store": getattr(self.store, "url", None),
        }

    def warnings(self):
        found = []
        if not self.reflect_sources:
            found.append("reflect_sources is empty: reflected input is not neutralised")
        if not self.json_escape:
            found.append("json_escape is off: hand-built JSON may carry markup into HTML contexts")
        if not self.check_structure:
            found.append("check_structure is off: ill-formed or forged JSON/XML reaches partners")
        if self.response_schemas is not None and self.response_schemas.mode == "report":
            found.append("response_schemas = report: responses that break the OpenAPI document are "
                         "reported, not stopped")
        if not self.csv_neutralize:
            found.append("csv_neutralize is off: exported cells may run as spreadsheet formulas")
        if not any(name.startswith("Content-Security-Policy") for name, _ in self.safe_headers.document):
            found.append("no content_security_policy")
        if not any(name == "X-Frame-Options" for name, _ in self.safe_headers.common):
            found.append("frame_options is off: pages may be framed (clickjacking)")
        return found

    # -- the request --------------------------------------------------------------

    def __call__(self, environ, start_response):
        body = None
        if self._read_bodies and environ.get("CONTENT_LENGTH") and environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            body = request_body(environ, self.reflect_sources, self.max_buffer)
        response = _Response(self, environ, start_response, body)
        app_iter = self.app(environ, response.start_response)
        if response.passing:
            return app_iter  # untouched: not even wrapped
        return ClosingIterator(app_iter, chunks=response.body(app_iter))

    def candidates(self, environ, body, rule=None) -> list[Candidate]:
        """The request values worth looking for (the documented rule, or ``rule(value)``),
        at most 256 (:func:`wsgisec.escaping.candidates.collect`)."""
        return collect(environ, body, sources=self.reflect_sources, minimum=self.min_reflect_length,
                       header_keys=self.header_keys, rule=rule)

    def report(self, environ, findings, mime):
        """One ``reflected-input-escaped`` event per parameter: names, never values."""
        report_reflections(environ, findings, mime, self.store)

    def _prepare(self, environ, status, headers):
        """Add the safe headers; what kind of body to rewrite (:func:`.decide.prepare`)."""
        return prepare(self, environ, status, headers)


def filter_factory(global_conf, **local_conf):
    """PasteDeploy ``egg:wsgisec#escaping``."""
    kw = settings.parse("escaping", SETTINGS, local_conf, global_conf)
    rules = kw.get("rules")
    if rules is not None and kw.get("response_schemas", "off") != "off":
        if not os.path.isabs(rules) and (global_conf or {}).get("here"):
            rules = os.path.join(global_conf["here"], rules)
        try:
            kw["rules"] = openapi.load(os.path.normpath(rules), responses=True)  # compiled once
        except ConfigurationError as error:
            raise settings.config_error("escaping", global_conf, str(error)) from None
    return layer_factory("escaping", Escaping, kw, global_conf)
