"""The two intake endpoints of the reports layer: browser reports and partner reports.

:class:`Intake` holds the request handling of :class:`wsgisec.reports.Reports` (a mixin,
so each stays a readable size); it reads only the settings the layer set in
``__init__``. Order of checks, cheapest first (STYLE §10): method, ``Content-Length``
(413), media type (415), rate limits (429), then the bounded read, the JSON depth limit
and the allowlist (400), the duplicate check, and the commit before any 2xx.
"""

from __future__ import annotations

from .. import events
from ..responses import fixed, json_response, problem, store_unavailable
from ..store import StoreUnavailable
from ..wsgi import BodyTooLarge, content_length, read_body
from . import intake, timeline

__all__ = ["Intake"]

REPORT_INVALID = "report-invalid"
REPORT_TOO_LARGE = "report-too-large"
PARTNER_REPORT = "partner-report"
RATE_LIMITED = "rate-limited"

_log = timeline.log

_BROWSER_TYPES = ("application/csp-report", "application/reports+json", "application/json")
_NO_STORE = [("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff")]


def _media_type(environ) -> str:
    return (environ.get("CONTENT_TYPE") or "").split(";", 1)[0].strip().lower()



class Intake:
    """Request handling of the two intake paths (mixed into ``Reports``)."""

    def _refuse(self, environ, status, detail, code=None, headers=(), severity="info", store=True):
        incident = None
        if code is not None:
            # Refusals are events like any other layer's (log always; store unless flooding).
            incident = events.emit(environ, code, detail, severity=severity, logger=_log,
                                   store=self.store if store else None)
        return problem(environ, status, detail, incident=incident, headers=list(headers),
                       extra={"reason": code} if code else None)

    def _precheck(self, environ, media_types):
        """A refusal app for a request refused from its headers alone, or None."""
        if environ.get("REQUEST_METHOD") != "POST":
            return problem(environ, 405, "Reports are sent with POST.", headers=[("Allow", "POST")])
        try:
            length = content_length(environ)
        except ValueError:
            return problem(environ, 400, "The Content-Length is not valid.")
        if length is not None and length > self.max_report_size:
            return self._refuse(environ, 413, "The report is too large.", REPORT_TOO_LARGE)
        if _media_type(environ) not in media_types:
            return problem(environ, 415, "Reports are sent as " + " or ".join(media_types) + ".")
        if self.store is None:
            raise StoreUnavailable("no store configured")
        return None

    def _read(self, environ):
        """``(document, None)`` or ``(None, refusal app)``."""
        try:
            body = read_body(environ, self.max_report_size)
        except BodyTooLarge:
            return None, self._refuse(environ, 413, "The report is too large.", REPORT_TOO_LARGE)
        except ValueError:
            return None, problem(environ, 400, "The request has an invalid Content-Length.")
        try:
            return intake.load_json(body, self.max_json_depth), None
        except intake.InvalidReport as error:
            return None, self._refuse(environ, 400, str(error), REPORT_INVALID)

    def _limited(self, environ, checks):
        retry = timeline.rate_limit(self.store, checks)
        if retry is None:
            return None
        # Logged, not stored: a flood of refusals must not become a flood of rows.
        return self._refuse(environ, 429, "Too many reports; slow down.", RATE_LIMITED,
                            headers=[("Retry-After", str(retry))], store=False)

    # -- browser reports ----------------------------------------------------------

    def _cors(self, environ):
        origin = environ.get("HTTP_ORIGIN")
        if origin and origin in self.browser_origins:
            return [("Access-Control-Allow-Origin", origin), ("Vary", "Origin")]
        return []

    def _browser(self, environ, start_response):
        if environ.get("REQUEST_METHOD") == "OPTIONS":
            cors = self._cors(environ)
            if not cors:
                return problem(environ, 403, "This origin may not send reports here.")(
                    environ, start_response)
            return fixed(204, cors + [
                ("Access-Control-Allow-Methods", "POST"),
                ("Access-Control-Allow-Headers", "Content-Type"),
                ("Access-Control-Max-Age", "86400")])(environ, start_response)
        refusal = self._precheck(environ, _BROWSER_TYPES)
        address = environ.get("REMOTE_ADDR") or "-"
        refusal = refusal or self._limited(environ, [
            (f"address:{address}", self.limits["address"]), ("global", self.limits["global"])])
        if refusal is None:
            document, refusal = self._read(environ)
        if refusal is None:
            try:
                reports, dropped = intake.browser_reports(
                    document, _media_type(environ), max_batch=self.max_batch, max_field=self.max_field)
            except intake.InvalidReport as error:
                refusal = self._refuse(environ, 400, str(error), REPORT_INVALID)
        if refusal is not None:
            return refusal(environ, start_response)
        timeline.count_dropped(self.store, dropped)
        for record in reports:
            fp = intake.fingerprint("browser", record)
            _id, _count, new = timeline.remember(self.store, fp, self.duplicate_window)
            if not new:
                continue
            event = timeline.make_event(environ, record["type"], f"browser report: {record['type']}",
                                        detail=dict(record, report_id=_id))
            timeline.commit_remembered(self.store, event, fp)
        timeline.housekeeping(self.store, self.retention)
        return fixed(204, self._cors(environ) + _NO_STORE)(environ, start_response)

    # -- partner reports ----------------------------------------------------------

    def _partner(self, environ, start_response):
        refusal = self._precheck(environ, ("application/json",))
        if refusal is not None:
            return refusal(environ, start_response)
        has_credentials = any(key in environ for key in
                              ("HTTP_AUTHORIZATION", "HTTP_SIGNATURE", "HTTP_SIGNATURE_INPUT"))
        if has_credentials and self._auth is not None:
            return self._auth(environ, start_response)
        # No credentials: anonymous (if enabled) or 401, never into the layers inside,
        # whose own fallbacks (signed_requests' browser CSRF path) lead to the app.
        return self._accept_partner(environ, start_response)

    def _accept_partner(self, environ, start_response):
        try:
            return self._partner_report(environ, start_response)
        except StoreUnavailable as error:  # raised inside the authentication copies' app
            return store_unavailable(environ, "reports", error, event=False,
                                     detail="Reports cannot be accepted right now; please retry.")(
                environ, start_response)

    def _partner_report(self, environ, start_response):
        client = environ.get("wsgisec.client")
        client_id = client.get("id") if isinstance(client, dict) else None
        address = environ.get("REMOTE_ADDR") or "-"
        if client_id is None and not self.anonymous_reports:
            return problem(environ, 401, "Partner reports need an access token.",
                           headers=[("WWW-Authenticate", 'Bearer realm="wsgisec-reports"')])(
                environ, start_response)
        own = (f"client:{client_id}", self.limits["client"]) if client_id else \
            (f"anonymous:{address}", self.limits["anonymous"])
        refusal = self._limited(environ, [own, (f"address:{address}", self.limits["address"]),
                                          ("global", self.limits["global"])])
        if refusal is None:
            document, refusal = self._read(environ)
        if refusal is None:
            try:
                report = intake.partner_report(document, max_description=self.max_description,
                                               max_field=self.max_field)
            except intake.InvalidReport as error:
                refusal = self._refuse(environ, 400, str(error), REPORT_INVALID)
        if refusal is not None:
            return refusal(environ, start_response)
        fp = intake.fingerprint("partner", client_id or address, report)
        report_id, count, new = timeline.remember(self.store, fp, self.duplicate_window)
        if not new:
            return json_response(200, {"id": report_id, "status": "duplicate", "count": count})(
                environ, start_response)
        received = events.incident_id(environ)
        severity = "critical" if report["kind"] == "compromise" else "warning"
        event = timeline.make_event(
            environ, PARTNER_REPORT, f"partner report: {report['kind']}", severity=severity,
            incident=report.get("incident_id") or received, client_id=client_id,
            detail=dict(report, report_id=report_id, received_incident_id=received,
                        anonymous=client_id is None))
        timeline.commit_remembered(self.store, event, fp)
        timeline.housekeeping(self.store, self.retention)
        return json_response(201, {"id": report_id, "status": "received",
                                     "incident_id": event["incident_id"]})(environ, start_response)
