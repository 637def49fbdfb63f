"""Minimal error messages: callers never see stack traces, SQL errors or server details.

Practice 6 (security misconfiguration, OWASP "Improper Error Handling"). A traceback, a
framework debug page or a database error message tells an attacker which software runs,
where its files are and how a query is built. This layer sits outermost in the pipeline
and makes sure such details never leave the server; operators keep them, in the log,
under an incident id that the caller is shown and can quote.

* An exception raised by the app (or by any layer inside this one) before the response
  starts becomes a generic 500 with an incident id; the traceback is logged under it.
* An exception passed to ``start_response`` with ``exc_info`` replaces the response as
  PEP 3333 allows while nothing has been sent.
* An exception raised while the body is being iterated, after the status line went out,
  is logged and the body ends there: the caller sees a truncated response, never a trace.
* Every 5xx the app produces has its body replaced by the generic error (JSON, HTML or
  text by ``Accept``), keeping its status and ``Retry-After``; the original body is logged
  (up to ``log_body_limit``) under the incident id. 5xx answers that wsgisec's own layers
  made (they carry this request's ``X-Incident-Id``) are already generic and pass as
  they are.
* What was masked (the traceback, the original body) is also kept in the store for 30
  days under the incident id (``events.MASKED``), so ``wsgisec reports show ID`` prints it
  on the operator's command line; it is never served over HTTP.
* Leak detection: text responses (HTML, JSON, XML, plain text, JavaScript) of up to
  ``max_scan_size`` are scanned for Python tracebacks, framework debug pages (Werkzeug
  debugger, Django technical 500, Pyramid debug toolbar, Bottle debug page), SQL error
  messages (SQLite, PostgreSQL, MySQL/MariaDB, Oracle, SQL Server, SQLAlchemy), Java and
  PHP traces and server file paths. A response that leaks becomes a generic 500. With
  ``mask_leaks = 5xx`` only error responses are looked at (no cost on successful ones).
  The scan (:mod:`wsgisec.errors.leak_scan`) is one translated pass over the body, ~67 µs on a
  50 KB page (``benchmarks/bench_leaks.py``).
* ``Server``, ``X-Powered-By``, ``X-AspNet-Version`` and similar fingerprinting headers
  are removed (OWASP Secure Headers project). A WSGI server may add its own ``Server``
  header after us: ``wsgisec serve`` tells waitress not to (``ident =``).

Response bodies larger than ``max_scan_size``, compressed ones (``Content-Encoding``) and
binary types are streamed through unread. Python-level cost for a small JSON response is
a few microseconds (``benchmarks/bench_foundation.py``).

ini::

    [filter:error_masker]
    use = egg:wsgisec#error_masker
    get store = wsgisec_store
    mask_leaks = all

Python::

    app = ErrorMasker(app, mask_leaks="all")

Settings (ini name, default):

``debug`` (false)
    Show the traceback to the caller and leave 5xx bodies alone. For a developer's own
    machine only; ``wsgisec check`` warns while it is on.
``mask_leaks`` (all)
    ``all``: scan every text response for leaks; ``5xx``: only error responses.
``max_scan_size`` (1MB)
    Text responses up to this size are held back and scanned; larger ones stream through.
``log_body_limit`` (64KB)
    How much of a masked body is written to the log.
``strip_headers`` (Server X-Powered-By X-AspNet-Version X-AspNetMvc-Version X-Runtime X-Version X-Generator)
    Response headers removed from every response.
``extra_leak_patterns`` (none)
    More regular expressions (one per line) that mark a leak, e.g. an internal host name.
``store`` (``wsgisec.sqlite`` beside the ini file)
    Where masking events are kept for the report collector.
"""

from __future__ import annotations

import logging
import re
import sys
import time
import traceback

from .. import events, settings
from ..layer import Layer, layer_factory
from ..responses import problem
from ..held import HeldResponse
from .leak_scan import _LEAK_PATTERNS, _NEEDLES, _compile, find_leak  # noqa: F401 (re-exported)
from ..wsgi import ClosingIterator, close_iterable, header
from ..store import StoreUnavailable, coerce as coerce_store

__all__ = ["ErrorMasker", "filter_factory", "SETTINGS", "find_leak"]

ERROR_MASKED = "error-masked"
EXCEPTION_MASKED = "exception-masked"
LEAK_MASKED = "leak-masked"
BODY_ABORTED = "body-aborted"

#: How long the store keeps what was masked (events.MASKED, for ``wsgisec reports show``).
KEPT_TTL = 30 * 86400
_MAX_KEPT_TRACEBACK = 16 * 1024

_log = events.logger_for("error_masker")
#: Original bodies and tracebacks, for operators only. Route it to a protected place.
error_log = logging.getLogger("wsgisec.errors")

GENERIC_DETAIL = "The server could not complete this request. Quote the incident id if you report it."

SETTINGS = {
    "debug": (settings.boolean, "false"),
    "mask_leaks": (settings.choice("all", "5xx"), "all"),
    "max_scan_size": (settings.size, "1MB"),
    "log_body_limit": (settings.size, "64KB"),
    "strip_headers": (settings.words, "Server X-Powered-By X-AspNet-Version X-AspNetMvc-Version "
                                      "X-Runtime X-Version X-Generator"),
    "extra_leak_patterns": (settings.lines, ""),
    "store": (settings.optional(settings.store_url), None),
}

_TEXT_TYPES = ("text/", "application/json", "application/problem+json", "application/xml",
               "application/javascript", "application/xhtml+xml", "application/ld+json")


class ErrorMasker(Layer):
    """Mask exceptions, 5xx bodies and leaking responses (see the module docstring)."""

    wsgisec_layer = "error_masker"

    def __init__(self, app, *, debug=False, mask_leaks="all", max_scan_size=1024 * 1024,
                 log_body_limit=64 * 1024,
                 strip_headers=("Server", "X-Powered-By", "X-AspNet-Version", "X-AspNetMvc-Version",
                                "X-Runtime", "X-Version", "X-Generator"),
                 extra_leak_patterns=(), store=None):
        if mask_leaks not in ("all", "5xx"):
            raise settings.ConfigurationError("mask_leaks must be all or 5xx")
        self.app = app
        self.debug = debug
        self.scan_all = mask_leaks == "all"
        self.max_scan_size = max_scan_size
        self.log_body_limit = log_body_limit
        self.strip = frozenset(name.lower() for name in strip_headers)
        try:
            self.extra_leaks = _compile({f"extra-{number}": pattern.encode("utf-8")
                                         for number, pattern in enumerate(extra_leak_patterns)}) \
                if extra_leak_patterns else None
        except re.error as error:
            raise settings.ConfigurationError(f"extra_leak_patterns: {error}") from None
        self.store = coerce_store(store)
        self.settings = {"debug": debug, "mask_leaks": mask_leaks, "max_scan_size": max_scan_size,
                         "log_body_limit": log_body_limit, "strip_headers": list(strip_headers),
                         "extra_leak_patterns": list(extra_leak_patterns),
                         "store": getattr(self.store, "url", None)}

    def warnings(self):
        if self.debug:
            return ["debug is on: tracebacks are shown to callers; never in production"]
        return []

    # -- the request --------------------------------------------------------------

    def __call__(self, environ, start_response):
        started = HeldResponse(start_response)
        try:
            iterable = self.app(environ, started.hold)
        except Exception:
            return self._exception(environ, start_response, sys.exc_info(), "before the response")

        try:
            chunks = iter(iterable)
            if not started.started:
                # The app calls start_response lazily, from inside its iterable.
                for chunk in _first_chunk(chunks):
                    started.write(chunk)
        except Exception:
            close_iterable_quietly(iterable)
            return self._exception(environ, start_response, sys.exc_info(), "before the response")
        if not started.started:
            close_iterable_quietly(iterable)
            return self._exception(environ, start_response, None, "app never called start_response")

        status, headers = started.status, started.headers
        code = _code(status)
        if not self.debug:
            ours = environ.get("wsgisec.incident_id") is not None and \
                header(headers, "x-incident-id") == environ.get("wsgisec.incident_id")
            if code >= 500 and not ours:
                return self._mask_body(environ, start_response, iterable, chunks, started.take(),
                                       code, headers, "error response from the app", ERROR_MASKED)
            if (self.scan_all or code >= 500) and not ours and _scannable(headers):
                try:
                    started.fill(chunks, self.max_scan_size)
                except Exception:  # the body failed while we held it
                    close_iterable_quietly(iterable)
                    return self._exception(environ, start_response, sys.exc_info(), "before the response")
                leak = find_leak(b"".join(started.chunks), self.extra_leaks)
                if leak is not None:
                    return self._mask_body(environ, start_response, iterable, chunks, started.take(), 500,
                                           headers, f"response leaks {leak}", LEAK_MASKED, leak=leak)

        headers = [(name, value) for name, value in headers if name.lower() not in self.strip] \
            if self.strip else headers
        started.send(headers)
        return ClosingIterator(iterable, chunks=self._stream(environ, started.take(), chunks))

    # -- pieces -------------------------------------------------------------------

    def _stream(self, environ, buffered, chunks):
        yield from buffered
        try:
            for chunk in chunks:
                yield chunk
        except Exception:
            # The status line is out: we can only stop. The caller sees a short body.
            incident = events.emit(environ, BODY_ABORTED, "exception while sending the body",
                                   severity="error", store=self.store, logger=_log)
            error_log.error("incident %s: exception while sending %s %s", incident,
                            environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"), exc_info=True)

    def _mask_body(self, environ, start_response, iterable, chunks, buffered, code, headers,
                   reason, kind, leak=None):
        body = bytearray(b"".join(buffered)[: self.log_body_limit])
        try:
            for chunk in chunks:
                if len(body) >= self.log_body_limit:
                    break
                body.extend(chunk[: self.log_body_limit - len(body)])
        except Exception:
            error_log.error("while reading a body to mask it", exc_info=True)
        finally:
            close_iterable_quietly(iterable)
        incident = events.emit(environ, kind, reason, severity="error", store=self.store, logger=_log,
                               detail={"status": code, "leak": leak} if leak else {"status": code})
        original = bytes(body).decode("utf-8", "replace")
        error_log.error("incident %s: %s for %s %s; original body follows\n%s", incident, reason,
                        environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"), original)
        self._keep(incident, body=original)
        keep = [(name, value) for name, value in headers if name.lower() == "retry-after"]
        return problem(environ, code, GENERIC_DETAIL, incident=incident, headers=keep)(
            environ, start_response)

    def _keep(self, incident, **masked):
        """Keep what was masked under the incident id, for the operator's command line
        (``wsgisec reports show``); the log has it too. A store that is down loses only
        this copy, never the response."""
        if self.store is None:
            return
        kept = {key: value[-_MAX_KEPT_TRACEBACK:] if key == "traceback" else value
                for key, value in masked.items()}
        try:
            self.store.put(events.MASKED, incident, dict(kept, time=int(time.time())), ttl=KEPT_TTL)
        except StoreUnavailable:
            events.ops_log.error("could not keep the masked details of incident %s in the store", incident)

    def _exception(self, environ, start_response, exc_info, where):
        incident = events.emit(environ, EXCEPTION_MASKED, f"exception {where}", severity="error",
                               store=self.store, logger=_log)
        error_log.error("incident %s: exception %s for %s %s", incident, where,
                        environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"), exc_info=exc_info)
        if exc_info is not None:
            self._keep(incident, traceback="".join(traceback.format_exception(*exc_info)))
        if self.debug and exc_info is not None:
            body = ("".join(traceback.format_exception(*exc_info)) + f"\nIncident id: {incident}\n").encode()
            start_response("500 Internal Server Error", [
                ("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))),
                ("Cache-Control", "no-store"), ("X-Incident-Id", incident)], exc_info)
            return [body]
        return problem(environ, 500, GENERIC_DETAIL, incident=incident)(environ, start_response)


def close_iterable_quietly(iterable) -> None:
    try:
        close_iterable(iterable)
    except Exception:
        error_log.error("close() of the app's iterable failed", exc_info=True)


def _first_chunk(chunks):
    """Pull chunks until the app has called start_response (or the body ends)."""
    for chunk in chunks:
        return [chunk]
    return []


def _code(status: str) -> int:
    try:
        return int(status[:3])
    except (TypeError, ValueError):
        return 500


def _scannable(headers) -> bool:
    if header(headers, "content-encoding"):
        return False
    content_type = (header(headers, "content-type") or "").lower()
    return content_type.startswith(_TEXT_TYPES) or content_type.endswith(("+json", "+xml"))


def filter_factory(global_conf, **local_conf):
    """PasteDeploy ``egg:wsgisec#error_masker``."""
    kw = settings.parse("error_masker", SETTINGS, local_conf, global_conf)
    return layer_factory("error_masker", ErrorMasker, kw, global_conf)
