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

import codecs
import itertools
import json
import re
from collections import OrderedDict
from typing import NamedTuple
from urllib.parse import parse_qsl

from .. import events, pipeline, settings
from ..pipeline import Layer
from .csv_formulas import FULLWIDTH, CSVNeutralizer
from .reflection import Candidate, Finding, Neutraliser, is_candidate, neutralise
from .structure import injected, is_structural, json_problem, xml_problem
from ..responses import problem
from ..settings import ConfigurationError
from ..store import coerce as coerce_store
from ..held import HeldResponse, replaced_headers
from ..wsgi import BodyTooLarge, ClosingIterator, read_body

__all__ = ["Escaping", "filter_factory", "SETTINGS", "escape_json", "CSVNeutralizer",
           "REFLECTED_INPUT_ESCAPED", "CSV_FORMULA_NEUTRALIZED", "RESPONSE_INVALID",
           "STRUCTURE_INJECTION"]

REFLECTED_INPUT_ESCAPED = "reflected-input-escaped"
RESPONSE_INVALID = "response-invalid"
STRUCTURE_INJECTION = "structure-injection"
CSV_FORMULA_NEUTRALIZED = "csv-formula-neutralized"

_log = events.logger_for("escaping")

_SOURCES = ("query", "form", "json", "path", "headers")
_PREFIX_NAMES = {"tab": "\t", "cr": "\r", "lf": "\n", "space": " "}

DEFAULT_CSP = ("default-src 'self'; object-src 'none'; base-uri 'self'; "
               "frame-ancestors 'none'; form-action 'self'")
DEFAULT_PERMISSIONS = "camera=(), microphone=(), geolocation=(), payment=(), usb=()"


def _text(text: str) -> str:
    """Free text; lines are joined with single spaces (a CSP may span lines)."""
    return " ".join(text.split())


def _sources(text: str) -> tuple[str, ...]:
    values = settings.words(text.lower())
    for value in values:
        if value not in _SOURCES:
            raise ValueError("some of: " + " ".join(_SOURCES))
    return values


def _prefixes(text: str) -> str:
    chars = []
    for word in settings.words(text):
        if word.lower() == "fullwidth":
            chars.extend(FULLWIDTH)
            continue
        char = _PREFIX_NAMES.get(word.lower(), word)
        if len(char) != 1 or not char.isprintable() and char not in "\t\r\n":
            raise ValueError("single characters, tab/cr/lf or fullwidth, e.g. = + - @ tab cr")
        chars.append(char)
    return "".join(chars)


def _frame_options(text: str) -> str:
    word = text.strip().upper()
    if word not in ("DENY", "SAMEORIGIN", "OFF", ""):
        raise ValueError("DENY, SAMEORIGIN or off")
    return "" if word in ("OFF", "") else word


def _charset(text: str) -> str:
    word = text.strip().lower()
    if word:
        try:
            codecs.lookup(word)
        except LookupError:
            raise ValueError("a charset name such as utf-8") from None
    return word


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
    "store": (settings.optional(settings.store_url), None),
}

# -- JSON -------------------------------------------------------------------------------

_JSON_ESCAPES = ((b"<", b"\\u003c"), (b">", b"\\u003e"), (b"&", b"\\u0026"), (b"'", b"\\u0027"),
                 (b"\xe2\x80\xa8", b"\\u2028"), (b"\xe2\x80\xa9", b"\\u2029"))


def escape_json(data: bytes) -> bytes:
    """Escape ``< > & '`` U+2028 U+2029 in UTF-8 JSON bytes (see the module docstring)."""
    for raw, escaped in _JSON_ESCAPES:
        if raw in data:
            data = data.replace(raw, escaped)
    return data


class _JSONStream:
    """:func:`escape_json` chunk by chunk; a U+2028/9 split across chunks is carried."""

    __slots__ = ("carry",)

    def __init__(self):
        self.carry = b""

    def feed(self, chunk: bytes) -> bytes:
        data = self.carry + chunk if self.carry else chunk
        cut = 1 if data.endswith(b"\xe2") else 2 if data.endswith(b"\xe2\x80") else 0
        if cut:
            self.carry, data = data[-cut:], data[:-cut]
        else:
            self.carry = b""
        return escape_json(data)

    def finish(self) -> bytes:
        return escape_json(self.carry)


# -- the layer --------------------------------------------------------------------------

_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_XML_TYPES = frozenset({"application/xml", "text/xml", "image/svg+xml"})
_JSON_TYPES = frozenset({"application/json", "text/json"})
_CSV_TYPES = {"text/csv": b",", "text/comma-separated-values": b",",
              "text/tab-separated-values": b"\t"}
_NO_BODY_REWRITE = ("1", "204", "206", "304")
_CSP_NAMES = ("content-security-policy", "content-security-policy-report-only",
              "reporting-endpoints")
_FORM = "application/x-www-form-urlencoded"
_MAX_CANDIDATES = 256
_SAFE_NAME = re.compile(r"[\w.\[\]-]{1,64}")
_XML_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")


class _Override(NamedTuple):
    prefix: str
    name: str
    value: str | None  # None: send no such header here


def _parse_overrides(rules) -> tuple[_Override, ...]:
    found = []
    for rule in rules:
        if isinstance(rule, _Override):
            found.append(rule)
            continue
        parts = rule.split(None, 2)
        if len(parts) < 3 or not parts[0].startswith("/") or not re.fullmatch(r"[A-Za-z0-9-]+", parts[1]):
            raise ConfigurationError(
                f"path_overrides: {rule!r} is not '/prefix Header-Name value' (value 'off' "
                "sends no such header there)")
        value = parts[2].strip()
        found.append(_Override(parts[0], parts[1], None if value.lower() == "off" else value))
    # Shortest first, so that a longer (more specific) prefix is applied last and wins.
    return tuple(sorted(found, key=lambda o: len(o.prefix)))


def _safe_name(name: str) -> str:
    """A parameter name fit for an event: names are chosen by the caller too."""
    return name if _SAFE_NAME.fullmatch(name) else f"<unusual name, {len(name)} chars>"


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
                 attachment_paths=(), path_overrides=(), store=None):
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
                    for delimiter in set(_CSV_TYPES.values()) for utf8 in (True, False)} \
            if csv_neutralize else {}
        self.default_charset = default_charset
        self.attachment_paths = tuple(attachment_paths)
        self.overrides = _parse_overrides(path_overrides)
        self.store = coerce_store(store)
        # Requests whose body may hold reflected values are read (bounded) before the app.
        self._read_bodies = bool(self.reflect_sources & {"form", "json"})

        common = [("X-Content-Type-Options", "nosniff")]
        if referrer_policy:
            common.append(("Referrer-Policy", referrer_policy))
        if frame_options:
            common.append(("X-Frame-Options", frame_options))
        if cross_origin_opener_policy:
            common.append(("Cross-Origin-Opener-Policy", cross_origin_opener_policy))
        if permissions_policy:
            common.append(("Permissions-Policy", permissions_policy))
        document = []
        if content_security_policy:
            policy = content_security_policy.rstrip("; ")
            if csp_report_uri:
                # report-uri for browsers without the Reporting API, report-to for the rest.
                policy += f"; report-uri {csp_report_uri}; report-to wsgisec-csp"
                document.append(("Reporting-Endpoints", f'wsgisec-csp="{csp_report_uri}"'))
            name = "Content-Security-Policy-Report-Only" if csp_report_only else "Content-Security-Policy"
            document.insert(0, (name, policy))
        self._common = tuple(common)
        self._document = tuple(document)
        self._override_cache: dict = {}

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
        if not self.csv_neutralize:
            found.append("csv_neutralize is off: exported cells may run as spreadsheet formulas")
        if not any(name.startswith("Content-Security-Policy") for name, _ in self._document):
            found.append("no content_security_policy")
        if not any(name == "X-Frame-Options" for name, _ in self._common):
            found.append("frame_options is off: pages may be framed (clickjacking)")
        return found

    # -- the request --------------------------------------------------------------

    def __call__(self, environ, start_response):
        body = None
        if self._read_bodies and environ.get("CONTENT_LENGTH") and environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            body = self._keep_body(environ)
        response = _Response(self, environ, start_response, body)
        app_iter = self.app(environ, response.start_response)
        if response.passing:
            return app_iter  # untouched: not even wrapped
        return ClosingIterator(app_iter, chunks=response.body(app_iter))

    def _keep_body(self, environ):
        """The form or JSON request body, read before the app (bounded, put back)."""
        ctype = environ.get("CONTENT_TYPE", "").split(";", 1)[0].strip().lower()
        if ctype == _FORM:
            kind = "form"
        elif ctype in _JSON_TYPES or ctype.endswith("+json"):
            kind = "json"
        else:
            return None
        if kind not in self.reflect_sources:
            return None
        try:
            # Content-Length is present (checked by the caller), so nothing is read when
            # it is too large: the app still gets the whole stream.
            return kind, read_body(environ, min(self.max_buffer, 1024 * 1024))
        except (BodyTooLarge, ValueError):
            return None

    # -- headers ------------------------------------------------------------------

    def _headers_for(self, path):
        common, document = self._common, self._document
        if not self.overrides:
            return common, document
        matched = tuple(o for o in self.overrides if settings.path_matches(path, (o.prefix,)))
        if not matched:
            return common, document
        cached = self._override_cache.get(matched)
        if cached is not None:
            return cached
        common, document = OrderedDict((n.lower(), (n, v)) for n, v in common), \
            OrderedDict((n.lower(), (n, v)) for n, v in document)
        for override in matched:
            key = override.name.lower()
            target = document if key in _CSP_NAMES else common
            if key.startswith("content-security-policy"):
                for name in ("content-security-policy", "content-security-policy-report-only"):
                    document.pop(name, None)
            target.pop(key, None)
            if override.value is not None:
                target[key] = (override.name, override.value)
        result = (tuple(common.values()), tuple(document.values()))
        if len(self._override_cache) < 1024:  # one entry per combination of prefixes
            self._override_cache[matched] = result
        return result

    def _prepare(self, environ, status, headers):
        """Add the safe headers to ``headers`` (a copy); return ``(kind, detail,
        too_large)`` of a body to rewrite (detail: the charset, or the CSV delimiter;
        too_large: stream it at once), or None to pass it through."""
        path = environ.get("PATH_INFO", "")
        present = {name.lower() for name, _ in headers}
        common, document = self._headers_for(path)
        for name, value in common:
            if name.lower() not in present:
                headers.append((name, value))
        if self.attachment_paths and "content-disposition" not in present \
                and settings.path_matches(path, self.attachment_paths):
            headers.append(("Content-Disposition", "attachment"))

        ctype = content_encoding = length = None
        for index, (name, value) in enumerate(headers):
            lowered = name.lower()
            if lowered == "content-type":
                ctype = value
                if value[:5].lower() == "text/" and self.default_charset and "charset=" not in value.lower():
                    # No charset: browsers guess, and a guessed UTF-7 runs +ADw-script+AD4-.
                    ctype = f"{value}; charset={self.default_charset}"
                    headers[index] = (name, ctype)
            elif lowered == "content-encoding":
                content_encoding = value.strip().lower()
            elif lowered == "content-length":
                length = value
        if ctype is None:
            return None
        mime, _, params = ctype.partition(";")
        mime = mime.strip().lower()
        is_document = mime in _HTML_TYPES or mime in _XML_TYPES or mime.endswith("+xml")
        if is_document:
            for name, value in document:
                if name.lower() not in present:
                    headers.append((name, value))

        if status[:3].startswith(_NO_BODY_REWRITE) or environ.get("REQUEST_METHOD") == "HEAD":
            return None
        if content_encoding and content_encoding != "identity":
            return None  # compressed: cannot be searched; see "put escaping inside gzip"
        charset = None
        match = re.search(r"charset\s*=\s*\"?([A-Za-z0-9._:-]+)", params, re.IGNORECASE)
        if match:
            charset = match.group(1).lower()
        try:
            too_large = length is not None and int(length) > self.max_buffer
        except ValueError:
            too_large = False

        if mime in _JSON_TYPES or mime.endswith("+json"):
            if not (self.json_escape or self.check_structure) \
                    or (charset and _codec_name(charset) not in ("utf-8", "ascii")):
                return None
            return "json", "utf-8", too_large
        if is_document and (self.reflect_sources or (self.check_structure and mime not in _HTML_TYPES)):
            if charset and _codec_name(charset) is None:
                return None
            # Larger documents are neutralised in a sliding window (see _overflow).
            return ("xml" if mime not in _HTML_TYPES else "html"), charset, too_large
        if mime in _CSV_TYPES:
            if not self.csv_neutralize or (charset and not _ascii_compatible(charset)):
                return None
            utf8 = _codec_name(charset or self.default_charset or "utf-8") == "utf-8"
            return "csv", (_CSV_TYPES[mime], utf8), too_large
        return None

    # -- what the caller sent -----------------------------------------------------

    def candidates(self, environ, body, rule=None) -> list[Candidate]:
        """The request values worth looking for (the documented rule, or ``rule(value)``),
        at most 256."""
        found: dict[str, Candidate] = {}
        minimum = self.min_reflect_length
        sources = self.reflect_sources

        def add(source, name, value):
            if value not in found and len(found) < _MAX_CANDIDATES and len(value) >= minimum \
                    and (rule(value) if rule else is_candidate(value, minimum)):
                found[value] = Candidate(source, name, value)

        if "query" in sources:
            query = _wsgi_text(environ.get("QUERY_STRING", ""))
            if query:
                for name, value in parse_qsl(query, keep_blank_values=True):
                    add("query", name, value)
                    add("query", name, name)
        if body is not None:
            kind, data = body
            if kind == "form":
                for name, value in parse_qsl(data.decode("utf-8", "replace"), keep_blank_values=True):
                    add("form", name, value)
                    add("form", name, name)
            else:
                try:
                    document = json.loads(data)
                except ValueError:
                    document = None
                for name, value in _json_strings(document, ""):
                    add("json", name, value)
        if "path" in sources:
            path = _wsgi_text(environ.get("PATH_INFO", ""))
            add("path", "path", path)
            for index, segment in enumerate(path.split("/")):
                if segment:
                    add("path", f"segment {index}", segment)
        if "headers" in sources:
            for key, name in self.header_keys:
                value = environ.get(key)
                if value:
                    add("header", name, _wsgi_text(value))
        return list(found.values())

    def report(self, environ, findings, mime):
        """One ``reflected-input-escaped`` event per parameter: names, never values."""
        grouped: dict = {}
        for finding in findings:
            entry = grouped.setdefault(finding.candidate, [0, set()])
            entry[0] += 1
            entry[1].add(finding.context)
        for candidate, (count, contexts) in grouped.items():
            events.emit(environ, REFLECTED_INPUT_ESCAPED,
                        "request value reflected unescaped in the response; neutralised",
                        store=self.store, logger=_log,
                        detail={"source": candidate.source, "parameter": _safe_name(candidate.name),
                                "contexts": " ".join(sorted(contexts)), "occurrences": count,
                                "length": len(candidate.value), "media_type": mime})


def _codec_name(name):
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def _ascii_compatible(name) -> bool:
    codec = _codec_name(name)
    return codec is not None and not codec.startswith(("utf-16", "utf-32", "utf_16", "utf_32"))


def _wsgi_text(value: str) -> str:
    """PEP 3333 strings are latin-1-decoded bytes; most clients sent UTF-8."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def _json_strings(value, path, depth=0):
    if depth > 32:
        return
    if isinstance(value, str):
        yield path or "(body)", value
    elif isinstance(value, dict):
        for key, item in value.items():
            name = f"{path}.{key}" if path else str(key)
            yield name, str(key)
            yield from _json_strings(item, name, depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _json_strings(item, f"{path}[{index}]", depth + 1)


class _Refused(Exception):
    """Internal: the held response must not go out (kind, reason, event detail)."""

    def __init__(self, kind, reason, detail):
        super().__init__(kind)
        self.kind, self.reason, self.detail = kind, reason, detail


class _Response:
    """One response on its way out: decides, buffers (bounded) and rewrites."""

    __slots__ = ("layer", "environ", "held", "request_body", "kind", "charset", "stream", "passing",
                 "found")

    def __init__(self, layer, environ, start_response, request_body):
        self.layer = layer
        self.environ = environ
        self.held = HeldResponse(start_response)
        self.request_body = request_body
        self.passing = False
        self.kind = None
        self.found = ()

    @property
    def headers(self):
        return self.held.headers

    def start_response(self, status, headers, exc_info=None):
        held = self.held
        if held.sent:  # with exc_info: the server re-raises (PEP 3333)
            return held.hold(status, headers, exc_info)
        replacing = held.started
        held.hold(status, headers, exc_info)  # a call with exc_info replaces a held one
        headers = held.headers
        decided = self.layer._prepare(self.environ, status, headers)
        if decided is not None and decided[0] in ("html", "xml"):
            # Look for nothing when the caller sent nothing worth looking for: the page
            # then goes out untouched and unbuffered.
            self.found = self.layer.candidates(self.environ, self.request_body)
            if not self.found and not (decided[0] == "xml" and self.layer.check_structure):
                decided = None
        if replacing:
            # An error response replaces the one we were holding back: send it as it is.
            decided = None
        if decided is None:
            self.passing = True
            return held.send()
        self.kind, self.charset, self.stream = decided
        return held.write

    def body(self, app_iter):
        """The chunks to send (a generator; start_response is called before the first)."""
        held = self.held
        chunks = iter(app_iter)
        if not held.started:  # start_response is called lazily, by the first next()
            pending = []
            for chunk in chunks:
                pending.append(chunk)
                break
            if self.passing or not held.started:
                yield from pending
                yield from chunks
                return
            for chunk in pending:
                held.write(chunk)
        limit = self.layer.max_buffer
        overflow = self.stream or held.size > limit
        if not overflow:
            for chunk in chunks:
                if held.sent:
                    # start_response(exc_info) sent an error response meanwhile: what we
                    # held back belonged to the abandoned one.
                    yield chunk
                    yield from chunks
                    return
                held.write(chunk)
                if held.size > limit:
                    overflow = True
                    break
        buffered = held.take()
        if overflow:
            yield from self._overflow(buffered, chunks)
            return
        original = b"".join(buffered)
        del buffered
        try:
            body = self._rewrite(original)
        except _Refused as refused:
            yield from self._refuse(refused)
            return
        held.send_body(original, body)
        if body:
            yield body

    def _overflow(self, buffered, chunks):
        if self.kind in ("html", "xml"):
            yield from self._neutralise_streaming(buffered, chunks)
            return
        if self.kind == "json":
            # Escaping is local to each character, so it streams; the length changes.
            self.held.send(replaced_headers(self.headers, None))
            stream = _JSONStream()
            for chunk in buffered:
                yield stream.feed(chunk)
            for chunk in chunks:
                if chunk:
                    out = stream.feed(chunk)
                    if out:
                        yield out
            tail = stream.finish()
            if tail:
                yield tail
            return
        # A CSV export too large to buffer: record by record.
        self.held.send(replaced_headers(self.headers, None))
        stream = self.layer.csv[self.charset].stream(self.layer.max_buffer)
        reported = False
        for chunk in itertools.chain(buffered, chunks):
            if chunk:
                out = stream.feed(chunk)
                if stream.cells and not reported:
                    reported = True
                    self._report_csv(stream.cells)
                if out:
                    yield out
        buffered.clear()
        tail = stream.finish()
        if stream.cells and not reported:
            self._report_csv(stream.cells)
        if tail:
            yield tail

    def _rewrite(self, body: bytes) -> bytes:
        """The new body, or ``body`` itself (the same object) when nothing changed."""
        layer, kind = self.layer, self.kind
        if kind == "json":
            if layer.check_structure:
                self._check_json(body)
            if not layer.json_escape:
                return body
            escaped = escape_json(body)
            if len(escaped) == len(body):
                return body
            self._report_json(body)
            return escaped
        if kind == "csv":
            neutralizer = layer.csv[self.charset]  # the delimiter, for CSV
            new, changed = neutralizer(body)
            if not changed:
                return body
            self._report_csv(changed)
            return new
        charset = self._document_charset(body)
        try:
            text = body.decode(charset, "surrogateescape")
        except LookupError:
            _log.warning("escaping: unknown charset %r; response passed through unchecked", charset)
            return body
        new_text, findings = neutralise(text, self.found, xml=(kind == "xml")) if self.found else (text, ())
        if kind == "xml" and layer.check_structure:
            # What partners would parse: the document after any neutralisation.
            problem = xml_problem(new_text)
            if problem:
                raise _Refused(RESPONSE_INVALID, "the app's XML response does not parse; masked",
                               {"check": problem, "media_type": self._mime()})
        if not findings:
            return body
        try:
            new = new_text.encode(charset, "surrogateescape")
        except UnicodeEncodeError:
            new = new_text.encode(charset, "xmlcharrefreplace")
        layer.report(self.environ, findings, self._mime())
        return new

    def _mime(self) -> str:
        ctype = next((v for k, v in self.headers if k.lower() == "content-type"), "")
        return ctype.split(";", 1)[0].strip().lower()

    def _check_json(self, body: bytes):
        """Refuse (``_Refused``) a JSON response that does not parse, or that carries a
        request value outside a single string token (see :mod:`.structure`)."""
        problem = json_problem(body)
        if problem:
            raise _Refused(RESPONSE_INVALID, "the app's JSON response does not parse; masked",
                           {"check": problem, "media_type": self._mime()})
        values = self.layer.candidates(self.environ, self.request_body, rule=is_structural)
        found = injected(body, values) if values else ()
        if found:
            first = found[0]
            raise _Refused(STRUCTURE_INJECTION,
                           "a request value changed the structure of a JSON response; refused",
                           {"source": first.source, "parameter": _safe_name(first.name),
                            "values": len(found), "media_type": self._mime()})

    def _refuse(self, refused: "_Refused"):
        """Send a masked 500 instead of the held response (nothing of it went out)."""
        incident = events.emit(self.environ, refused.kind, refused.reason, severity="error",
                               store=self.layer.store, logger=_log, detail=refused.detail)
        answer = problem(self.environ, 500, "The server could not produce a valid response.",
                         incident=incident, extra={"reason": refused.kind})
        captured = []
        body = answer(self.environ, lambda status, headers, exc_info=None: captured.append((status, headers)))
        status, headers = captured[0]
        present = {name.lower() for name, _ in headers}
        common, _ = self.layer._headers_for(self.environ.get("PATH_INFO", ""))
        headers.extend((n, v) for n, v in common if n.lower() not in present)
        self.held.send(headers, status)
        yield from body

    def _report_csv(self, cells: int):
        events.emit(self.environ, CSV_FORMULA_NEUTRALIZED,
                    "spreadsheet formula cells neutralised in an export", severity="info",
                    store=self.layer.store, logger=_log, detail={"cells": cells})

    def _document_charset(self, head: bytes) -> str:
        charset = self.charset
        if charset is None and self.kind == "xml":
            match = _XML_ENCODING.match(head)
            charset = match.group(1).decode("ascii").lower() if match else None
        return charset or self.layer.default_charset or "utf-8"

    def _neutralise_streaming(self, buffered, chunks):
        """A document over ``max_buffer``: neutralised in a sliding window.

        Passing it through would let a caller defeat the layer by padding the page; the
        window (the longest candidate, at least 16 characters) keeps memory flat and
        still finds an occurrence split across chunks. The length is unknown in advance,
        so ``Content-Length`` (and ``ETag``) go.
        """
        head = buffered[0] if buffered else b""
        charset = self._document_charset(head)
        try:
            decoder = codecs.getincrementaldecoder(charset)("surrogateescape")
        except LookupError:
            _log.warning("escaping: unknown charset %r; response passed through unchecked", charset)
            self.held.send()
            yield from buffered
            yield from chunks
            return
        self.held.send(replaced_headers(self.headers, None))
        neutraliser = Neutraliser(self.found, xml=(self.kind == "xml"))
        reported = set()

        def encoded(text):
            try:
                return text.encode(charset, "surrogateescape")
            except UnicodeEncodeError:
                return text.encode(charset, "xmlcharrefreplace")

        def report():
            # Drained each time, so a page full of reflections does not grow a list.
            new = [f for f in neutraliser.findings if f.candidate not in reported]
            neutraliser.findings.clear()
            if new:
                reported.update(f.candidate for f in new)
                self.layer.report(self.environ, new, self.kind == "xml" and "application/xml" or "text/html")

        def pieces():
            yield from buffered
            buffered.clear()
            yield from chunks

        for chunk in pieces():
            if chunk:
                out = neutraliser.feed(decoder.decode(chunk))
                if out:
                    report()
                    yield encoded(out)
        out = neutraliser.feed(decoder.decode(b"", True)) + neutraliser.finish()
        report()
        if out:
            yield encoded(out)

    def _report_json(self, body: bytes):
        """Events for request values that sat raw in hand-built JSON (now escaped)."""
        candidates = self.layer.candidates(self.environ, self.request_body)
        if not candidates:
            return
        text = body.decode("utf-8", "replace")
        findings = [Finding(c, "json") for c in candidates
                    if any(ch in c.value for ch in "<>&'") and c.value in text]
        if findings:
            self.layer.report(self.environ, findings, "application/json")


def filter_factory(global_conf, **local_conf):
    """PasteDeploy ``egg:wsgisec#escaping``."""
    kw = settings.parse("escaping", SETTINGS, local_conf, global_conf)
    return pipeline.layer_factory("escaping", Escaping, kw, global_conf)
