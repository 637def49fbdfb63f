"""The responses our layers give instead of the app's: small, generic, negotiated.

A rejection is an RFC 9457 ``application/problem+json`` document, an HTML page or plain
text, whichever the caller's ``Accept`` prefers (JSON when it says nothing, since our
callers are mostly partner programs). It carries the incident id (in the body and in an
``X-Incident-Id`` header) so a partner can quote it, and never any internals: no
exception text, no expected signature, no echo of the offending input.

Every such response is ``Cache-Control: no-store`` (RFC 9111 §5.2.2.5; RFC 6749 §5.1
asks for it on token responses) and ``X-Content-Type-Options: nosniff``.

Use :func:`problem` from any layer and return its result; don't raise it through the
layers around you::

    return problem(environ, 403, "This request is not allowed.",
                   incident=events.emit(environ, KIND, "cross-site"))(environ, start_response)
"""

from __future__ import annotations

import json
from http import HTTPStatus

from markupsafe import escape
from webob.acceptparse import create_accept_header

from .events import incident_id as _incident_id
from .wsgi import safe_headers

__all__ = ["problem", "negotiate", "redirect", "reason_phrase", "json_response", "fixed"]

PROBLEM_JSON = "application/problem+json"
_OFFERS = [PROBLEM_JSON, "application/json", "text/html", "text/plain"]


def reason_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def negotiate(environ: dict) -> str:
    """``json``, ``html`` or ``text`` for this caller; ``json`` unless it prefers another."""
    header = environ.get("HTTP_ACCEPT")
    if not header:
        return "json"
    try:
        offers = create_accept_header(header).acceptable_offers(_OFFERS)
    except Exception:  # WebOb treats an invalid header as "anything"; be as lenient
        return "json"
    if not offers:
        return "json"
    best = offers[0][0]
    return "html" if best == "text/html" else "text" if best == "text/plain" else "json"


_STRICT_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"),
)


def _status_line(status: int) -> str:
    return f"{status} {reason_phrase(status)}"


def problem(environ: dict, status: int, detail: str, *, incident: str | None = None,
            headers: list[tuple[str, str]] | tuple = (), extra: dict | None = None,
            title: str | None = None):
    """A WSGI app that answers with an error document and the request's incident id.

    ``detail`` must be generic and safe to show to anyone. ``extra`` adds RFC 9457
    extension members (e.g. ``{"reason": "signature-invalid"}``) to the JSON form and a
    line each to the others. ``headers`` are added as they are (``WWW-Authenticate``,
    ``Retry-After``, ``Allow``).
    """
    incident = incident or _incident_id(environ)
    title = title or reason_phrase(status)
    kind = negotiate(environ)
    if kind == "json":
        document = {"type": "about:blank", "title": title, "status": status, "detail": detail,
                    "incident_id": incident}
        if extra:
            document.update(extra)
        body = json.dumps(document).encode("utf-8")
        content_type = PROBLEM_JSON
    elif kind == "html":
        items = "".join(f"<li>{escape(key)}: {escape(value)}</li>" for key, value in (extra or {}).items())
        body = (
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
            f"<title>{escape(status)} {escape(title)}</title></head>"
            f"<body><h1>{escape(title)}</h1><p>{escape(detail)}</p>"
            + (f"<ul>{items}</ul>" if items else "")
            + f"<p>Incident id: <code>{escape(incident)}</code></p></body></html>\n"
        ).encode("utf-8")
        content_type = "text/html; charset=utf-8"
    else:
        lines = [f"{status} {title}", detail]
        lines.extend(f"{key}: {value}" for key, value in (extra or {}).items())
        lines.append(f"Incident id: {incident}")
        body = ("\n".join(lines) + "\n").encode("utf-8")
        content_type = "text/plain; charset=utf-8"
    response_headers = [
        ("Content-Type", content_type),
        ("Content-Length", str(len(body))),
        ("Cache-Control", "no-store"),
        ("X-Incident-Id", incident),
    ]
    response_headers.extend(headers)
    # Our error documents need nothing from the browser: the strictest headers fit them
    # (OWASP REST Security Cheat Sheet, "Security headers"), plus whatever a layer
    # promised for every response of the request (HSTS, RFC 6797 §7.1).
    present = {name.lower() for name, _ in response_headers}
    for name, value in _STRICT_HEADERS + tuple(safe_headers(environ)):
        if name.lower() not in present:
            response_headers.append((name, value))
            present.add(name.lower())
    return _Fixed(_status_line(status), response_headers, body)


def json_response(status: int, document, headers=()):
    """A WSGI app answering with a JSON ``document`` (``None``: an empty body), uncached.

    For protocol answers that are not problem documents, such as OAuth 2.0 token and
    error responses (RFC 6749 §5.1 asks for ``Cache-Control: no-store`` and
    ``Pragma: no-cache``). ``headers`` are added as they are.
    """
    body = b"" if document is None else json.dumps(document).encode("utf-8")
    response_headers = [("Content-Type", "application/json;charset=UTF-8"),
                        ("Content-Length", str(len(body))),
                        ("Cache-Control", "no-store"), ("Pragma", "no-cache"),
                        ("X-Content-Type-Options", "nosniff")]
    response_headers.extend(headers)
    return _Fixed(_status_line(status), response_headers, body)


def fixed(status: int, headers, body: bytes = b""):
    """A WSGI app answering ``status`` with these ``headers`` plus ``Content-Length`` and ``body``
    (no body for HEAD): for a layer's own non-error answers (a report accepted, security.txt)."""
    return _Fixed(_status_line(status), list(headers) + [("Content-Length", str(len(body)))], body)


def redirect(location: str, status: int = 301):
    """A WSGI app answering with a redirect to ``location`` (already a safe, absolute URL)."""
    body = f"Moved to {location}\n".encode("utf-8")
    return _Fixed(_status_line(status), [
        ("Location", location),
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(body))),
    ], body)


class _Fixed:
    """A WSGI app with a fixed status, headers and body (no body for HEAD)."""

    __slots__ = ("status", "headers", "body")

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def __call__(self, environ, start_response):
        start_response(self.status, list(self.headers))
        if environ.get("REQUEST_METHOD") == "HEAD":
            return [b""]
        return [self.body]


def store_unavailable(environ: dict, layer: str, error: Exception, *, event: bool = True,
                      detail: str = "The service is temporarily unavailable."):
    """The 503 every layer answers when its store fails (DESIGN "Fail closed"): the cause
    is logged on ``wsgisec.ops`` under the incident id the caller sees (never written to
    the store, which is down), plus a ``<layer>.store-unavailable`` event when ``event``;
    ``Retry-After: 5`` so clients come back."""
    from . import events
    from .store import log_unavailable

    incident = log_unavailable(environ, layer, error)
    if event:
        events.emit(environ, "store-unavailable", "store unavailable", severity="error",
                    logger=events.logger_for(layer), detail={"error": type(error).__name__})
    return problem(environ, 503, detail, incident=incident, headers=[("Retry-After", "5")])
