"""Security events: one structured record per decision that rejects, masks or revokes.

:func:`emit` builds the record from an allowlist of fields, logs it as one JSON line to
``wsgisec.events.<module>`` (which propagates to ``wsgisec.events``), and appends it to
the store when the layer has one, so the report collector (practice 7) can read it back.

Fields (one schema for every layer, and for the reports collector):
``kind`` (``<layer>.<code>``, e.g. ``"https.credentials-over-plaintext"``), ``layer`` (the
entry-point name of the layer that decided: ``https``, ``token_auth`` …), ``code`` (the
layer's constant, the same reason code a refused caller sees), ``severity`` (``info``, ``warning``, ``error``, ``critical``), ``time`` (Unix seconds),
``incident_id``, ``client_id``, ``remote_addr``, ``method``, ``path`` (never the query
string), ``reason`` (a short fixed phrase) and ``detail`` (a small dict of
non-secret facts, such as a parameter *name*). Never put raw headers, cookies, bodies,
query strings, tokens, signatures or ``str(exc)`` from crypto code into an event.

The incident id is per request: the first event (or error page) of a request creates
it and stores it in ``environ["wsgisec.incident_id"]``; later events of the same request
reuse it, and the caller is shown the same id, so a partner can quote it (practice 7).

Only events go to ``wsgisec.events``; free-text operational messages (a store that could
not keep an event, a configuration warning) go to ``wsgisec.ops``, so a consumer of the
event stream can parse every line as JSON.
"""

from __future__ import annotations

import json
import logging
import secrets
import time

from .store import StoreUnavailable

__all__ = ["emit", "incident_id", "SEVERITIES"]

SEVERITIES = ("info", "warning", "error", "critical")
_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR,
           "critical": logging.CRITICAL}

_log = logging.getLogger("wsgisec.events")
ops_log = logging.getLogger("wsgisec.ops")
_PREFIX = "wsgisec.events."

# A detail value longer than this is cut: details are for names and numbers, and a long
# value is more likely to be a payload than a fact.
_MAX_DETAIL = 120


def incident_id(environ: dict) -> str:
    """The request's incident id, created on first use (16 hex digits, unguessable)."""
    value = environ.get("wsgisec.incident_id")
    if value is None:
        value = environ["wsgisec.incident_id"] = secrets.token_hex(8)
    return value


def _client_id(environ):
    client = environ.get("wsgisec.client")
    if isinstance(client, dict):
        return client.get("id")
    return None


def _short(value):
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    text = str(value)
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 1] + "…"


def emit(environ: dict | None, kind: str, reason: str, *, severity: str = "warning",
         store=None, detail: dict | None = None, logger: logging.Logger | None = None) -> str:
    """Record one security event; returns its incident id.

    A store that cannot be reached does not turn a refusal into a server error: the event
    is still logged, and the failure to keep it is logged next to it.
    """
    environ = environ if environ is not None else {}
    logger = logger or _log
    layer = logger.name[len(_PREFIX):] if logger.name.startswith(_PREFIX) else "wsgisec"
    code = kind.rpartition(".")[2]
    event = {
        "kind": f"{layer}.{code}",
        "layer": layer,
        "code": code,
        "severity": severity,
        "time": time.time(),
        "incident_id": incident_id(environ),
        "client_id": _client_id(environ),
        "remote_addr": environ.get("REMOTE_ADDR"),
        "method": environ.get("REQUEST_METHOD"),
        "path": environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "") if environ else None,
        "reason": reason,
    }
    if detail:
        event["detail"] = {str(key): _short(value) for key, value in detail.items()}
    logger.log(_LEVELS.get(severity, logging.WARNING), "%s",
                         json.dumps(event, ensure_ascii=False, separators=(",", ":")))
    if store is not None:
        try:
            store.record_event(event)
        except StoreUnavailable as error:
            ops_log.error("could not keep event %s in the store: %s", event["incident_id"], error)
    return event["incident_id"]


def logger_for(module: str) -> logging.Logger:
    """``wsgisec.events.<layer>``, e.g. ``logger_for("https")``; names the events' ``layer``."""
    return logging.getLogger(f"wsgisec.events.{module}")
