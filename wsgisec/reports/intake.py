"""Turn a hostile report body into a small, allowlisted record, or say why not.

Everything that reaches the collector is attacker-controlled input (OWASP Logging Cheat
Sheet, "Event data sources": treat received reports as untrusted). This module only
parses and cleans; it never touches the store.

* :func:`load_json` parses with a nesting-depth limit (a deeply nested document is a
  cheap way to exhaust a parser).
* :func:`browser_reports` accepts CSP ``report-uri`` bodies (``application/csp-report``,
  CSP Level 2 §7) and Reporting API batches (``application/reports+json``, W3C Reporting
  API §3), keeps the documented fields of the known report types under one set of
  snake_case names, truncates strings, drops URL query strings and fragments (they may
  hold a token or personal data) and sets apart reports caused by browser extensions.
* :func:`partner_report` validates the partner schema (README, "Security reports").
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from urllib.parse import urlsplit, urlunsplit

__all__ = ["InvalidReport", "load_json", "browser_reports", "partner_report", "fingerprint",
           "BROWSER_TYPES", "PARTNER_KINDS", "PARTNER_FIELDS"]


class InvalidReport(ValueError):
    """The body is not a report we accept; ``str()`` is safe to show to the sender."""


#: Reporting API report types we keep (W3C Reporting API, CSP3, HTML COEP/COOP, NEL).
BROWSER_TYPES = ("csp-violation", "coep", "coop", "deprecation", "intervention", "crash",
                 "network-error")

#: What a partner may report (``kind`` of the partner schema).
PARTNER_KINDS = ("abuse", "compromise", "suspicious-error", "suspicious-activity",
                 "vulnerability", "other")
PARTNER_FIELDS = ("kind", "description", "observed_at", "incident_id", "evidence")

# Browser field names (CSP2 hyphenated, Reporting API camelCase) -> our names.
_BROWSER_FIELDS = {
    "document-uri": "document_url", "documentURL": "document_url", "url": "document_url",
    "referrer": "referrer",
    "blocked-uri": "blocked_url", "blockedURL": "blocked_url",
    "violated-directive": "effective_directive", "effective-directive": "effective_directive",
    "effectiveDirective": "effective_directive",
    "original-policy": "original_policy", "originalPolicy": "original_policy",
    "disposition": "disposition",
    "source-file": "source_file", "sourceFile": "source_file",
    "line-number": "line", "lineNumber": "line",
    "column-number": "column", "columnNumber": "column",
    "status-code": "status_code", "statusCode": "status_code", "status_code": "status_code",
    "script-sample": "sample", "sample": "sample",
    "id": "id", "message": "message", "anticipatedRemoval": "anticipated_removal",
    "reason": "reason", "type": "type", "phase": "phase", "protocol": "protocol",
    "method": "method", "elapsed_time": "elapsed_time", "server_ip": "server_ip",
    "destination": "destination", "effectivePolicy": "effective_policy",
    "property": "property", "previousResponseURL": "previous_url",
    "nextResponseURL": "next_url",
}
_URL_FIELDS = frozenset({"document_url", "referrer", "blocked_url", "source_file",
                         "previous_url", "next_url"})

# CSP reports caused by the user's browser extensions, not by our pages: noise.
_EXTENSION_SCHEMES = ("moz-extension:", "chrome-extension:", "safari-extension:",
                      "safari-web-extension:", "ms-browser-extension:", "edge-extension:",
                      "extension:", "webkit-masked-url:", "resource:")

_INCIDENT = re.compile(r"^[0-9a-f]{16}$")
_EVIDENCE_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_SECRET_KEYS = re.compile(r"(?i)authorization|cookie|token|secret|password|passwd|signature|api[-_]?key")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
_MAX_EVIDENCE = 20


def load_json(body: bytes, max_depth: int):
    """The parsed document, or :class:`InvalidReport` (not JSON, or nested too deeply)."""
    try:
        document = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise InvalidReport("The report is not valid UTF-8 JSON.") from None
    # Iterative, so measuring a deep document cannot exhaust the stack either.
    stack = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > max_depth:
            raise InvalidReport(f"The report is nested more than {max_depth} levels deep.")
        if isinstance(value, dict):
            stack.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)
    return document


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _clean_url(value: str, limit: int) -> str:
    """A URL without query string and fragment; keywords (``inline``, ``eval``) as they are."""
    if ":" not in value and "/" not in value:
        return _cut(value, limit)
    try:
        parts = urlsplit(value)
    except ValueError:
        return _cut(value.split("?", 1)[0].split("#", 1)[0], limit)
    if parts.scheme in ("data", "blob"):
        return parts.scheme  # the payload itself is of no use and may be large
    return _cut(urlunsplit(parts._replace(query="", fragment="")), limit)


def _clean_fields(source: dict, limit: int) -> dict:
    record = {}
    for key, value in source.items():
        name = _BROWSER_FIELDS.get(key)
        if name is None or name in record:
            continue
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, (int, float)):
            record[name] = value
        elif isinstance(value, str):
            record[name] = _clean_url(value, limit) if name in _URL_FIELDS else _cut(value, limit)
    return record


def _is_extension_noise(record: dict) -> bool:
    return any(str(record.get(name, "")).lower().startswith(_EXTENSION_SCHEMES)
               for name in ("blocked_url", "source_file", "document_url"))


def browser_reports(document, content_type: str, *, max_batch: int, max_field: int):
    """``(reports, dropped)``: each report ``{"type": ..., fields...}``; ``dropped`` counts
    ``{"extension": n, "unknown-type": n, "over-batch": n}``.

    Raises :class:`InvalidReport` for a body of the wrong shape.
    """
    dropped = {"extension": 0, "unknown-type": 0, "over-batch": 0}
    if content_type == "application/reports+json":
        if not isinstance(document, list):
            raise InvalidReport("A Reporting API body is a JSON array of reports.")
        entries = []
        for item in document:
            if not isinstance(item, dict) or not isinstance(item.get("body", {}), dict):
                raise InvalidReport("Each report is an object with a type and a body.")
            kind = item.get("type")
            if kind not in BROWSER_TYPES:
                dropped["unknown-type"] += 1
                continue
            record = _clean_fields(item.get("body") or {}, max_field)
            if "document_url" not in record and isinstance(item.get("url"), str):
                record["document_url"] = _clean_url(item["url"], max_field)
            if isinstance(item.get("user_agent"), str):
                record["user_agent"] = _cut(item["user_agent"], 256)
            record["type"] = kind
            entries.append(record)
    else:
        # CSP2 report-uri: {"csp-report": {...}} (some browsers send application/json).
        if not isinstance(document, dict) or not isinstance(document.get("csp-report"), dict):
            raise InvalidReport('A CSP report is an object with a "csp-report" member.')
        record = _clean_fields(document["csp-report"], max_field)
        record["type"] = "csp-violation"
        entries = [record]
    kept = []
    for record in entries:
        if _is_extension_noise(record):
            dropped["extension"] += 1
        elif len(kept) >= max_batch:
            dropped["over-batch"] += 1
        else:
            kept.append(record)
    return kept, dropped


def _redact(value: str) -> str:
    return _BEARER.sub(lambda match: match.group(1) + " <redacted>", value)


def _observed_at(value) -> float:
    if isinstance(value, bool):
        raise InvalidReport("observed_at is an RFC 3339 date-time or Unix seconds.")
    if isinstance(value, (int, float)):
        when = float(value)
    elif isinstance(value, str) and len(value) <= 40:
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            raise InvalidReport("observed_at is an RFC 3339 date-time or Unix seconds.") from None
    else:
        raise InvalidReport("observed_at is an RFC 3339 date-time or Unix seconds.")
    if not 0 < when < time.time() + 86400:
        raise InvalidReport("observed_at is not a plausible time.")
    return when


def partner_report(document, *, max_description: int, max_field: int) -> dict:
    """The cleaned partner report, or :class:`InvalidReport` naming the schema rule broken."""
    if not isinstance(document, dict):
        raise InvalidReport("A report is a JSON object.")
    if set(document) - set(PARTNER_FIELDS):
        # Named from our allowlist only: the sender's own field names are not echoed.
        raise InvalidReport("The report has a field outside the schema; allowed: "
                            + ", ".join(PARTNER_FIELDS) + ".")
    kind = document.get("kind")
    if kind not in PARTNER_KINDS:
        raise InvalidReport("kind must be one of: " + ", ".join(PARTNER_KINDS) + ".")
    description = document.get("description")
    if not isinstance(description, str) or not description.strip():
        raise InvalidReport("description is a non-empty string.")
    report = {"kind": kind, "description": _cut(_redact(description.strip()), max_description)}
    if len(description.strip()) > max_description:
        report["truncated"] = True
    if document.get("observed_at") is not None:
        report["observed_at"] = _observed_at(document["observed_at"])
    incident = document.get("incident_id")
    if incident is not None:
        if not isinstance(incident, str) or not _INCIDENT.match(incident):
            raise InvalidReport("incident_id is the 16 hex digits of an error response.")
        report["incident_id"] = incident
    evidence = document.get("evidence")
    if evidence is not None:
        if not isinstance(evidence, dict) or len(evidence) > _MAX_EVIDENCE:
            raise InvalidReport(f"evidence is an object of at most {_MAX_EVIDENCE} members.")
        clean = {}
        for key, value in evidence.items():
            if not _EVIDENCE_KEY.match(key):
                raise InvalidReport("evidence keys are 1-64 letters, digits, '_', '.' or '-'.")
            if _SECRET_KEYS.search(key):
                clean[key] = "<redacted>"  # never keep a pasted credential
            elif isinstance(value, bool) or isinstance(value, (int, float)):
                clean[key] = value
            elif isinstance(value, str):
                clean[key] = _cut(_redact(value), max_field)
            else:
                raise InvalidReport("evidence values are strings, numbers or booleans.")
        report["evidence"] = clean
    return report


def fingerprint(*parts) -> str:
    """A stable digest of a cleaned report (what makes two reports "identical")."""
    import hashlib

    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]
