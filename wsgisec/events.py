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

Bounded growth: repeats of an ``info``/``warning`` event within :data:`AGGREGATE_WINDOW`
become one stored row with a ``count``, and at most :data:`EVENT_CAP` new rows are
stored per window (see :func:`aggregation_key`); the log still gets every line.

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

__all__ = ["emit", "incident_id", "SEVERITIES", "aggregation_key", "AGGREGATE_WINDOW", "EVENT_CAP"]

SEVERITIES = ("info", "warning", "error", "critical")
_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR,
           "critical": logging.CRITICAL}

_log = logging.getLogger("wsgisec.events")
ops_log = logging.getLogger("wsgisec.ops")
_PREFIX = "wsgisec.events."

#: Store namespace: incident id -> what error_masker masked (``traceback`` and/or the
#: original ``body``, ``time``). Written by error_masker, read by ``wsgisec reports show``
#: on the operator's command line; never served over HTTP.
MASKED = "error_masker.masked"

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
            _keep(store, event)
        except StoreUnavailable as error:
            ops_log.error("could not keep event %s in the store: %s", event["incident_id"], error)
    return event["incident_id"]


#: Bounded growth under attack: within this many seconds, repeats of an ``info`` or
#: ``warning`` event (same kind, client, address and reason) raise one row's ``count``,
#: and at most EVENT_CAP new rows are written per window. ``error`` and ``critical``
#: events always get a row of their own (each incident id stays findable) within the cap.
#: The ``wsgisec.events`` log keeps every line either way.
AGGREGATE_WINDOW = 60
EVENT_CAP = 1000
_cap_warned = 0.0


def aggregation_key(event: dict) -> str | None:
    """What makes two events "the same" for :data:`AGGREGATE_WINDOW` (None: never merged)."""
    if event.get("severity") in ("error", "critical"):
        return None
    return "|".join(str(event.get(field) or "") for field in ("kind", "client_id", "remote_addr", "reason"))


def _keep(store, event: dict) -> None:
    aggregate = getattr(store, "record_event_aggregated", None)
    if aggregate is None:  # a store written before aggregation existed
        store.record_event(event)
        return
    global _cap_warned
    if aggregate(event, aggregation_key(event), AGGREGATE_WINDOW, EVENT_CAP) == "capped" \
            and event["time"] - _cap_warned >= AGGREGATE_WINDOW:
        # Once per window and process: a flood must not double the log.
        _cap_warned = event["time"]
        ops_log.warning("event store cap (%d new rows per %ds) reached: until the window "
                        "ends, new events are in the wsgisec.events log only", EVENT_CAP, AGGREGATE_WINDOW)


def logger_for(module: str) -> logging.Logger:
    """``wsgisec.events.<layer>``, e.g. ``logger_for("https")``; names the events' ``layer``."""
    return logging.getLogger(f"wsgisec.events.{module}")
