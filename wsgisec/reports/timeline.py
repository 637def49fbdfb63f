"""Reports join the one timeline: the store's event schema, rate limits, duplicates.

A report becomes an event of the schema of :mod:`wsgisec.events` (layer ``reports``,
kind ``reports.<code>``). Unlike :func:`wsgisec.events.emit`, which keeps a refusal
even when the store is down (it logs the failure and answers anyway), a report must be
*committed* before we acknowledge it: :func:`commit` lets :class:`StoreUnavailable`
through, and the layer answers 503 so the reporter retries (nothing acknowledged is lost).
The JSON line goes to ``wsgisec.events.reports`` only after the store took it.
"""

from __future__ import annotations

import json
import logging
import secrets
import time

from .. import events
from ..settings import Limit, limit  # noqa: F401 - importable from here as before
from ..store import StoreUnavailable

__all__ = ["Limit", "rate_limit", "make_event", "commit", "commit_remembered", "remember", "SEEN", "RATE"]

log = events.logger_for("reports")

#: Store namespaces of this layer.
SEEN = "reports.seen"    # fingerprint -> {"id", "count", "first"}: identical reports
RATE = "reports.rate"    # rate-limit counters
NOISE = "reports.noise"  # counters of dropped browser reports (extensions, unknown types)
DUPS = "reports.dups"    # counters of duplicates


def rate_limit(store, checks) -> int | None:
    """``None`` if every ``(key, Limit)`` in ``checks`` is within its limit, else the
    ``Retry-After`` seconds of the first one exceeded (RFC 6585 §4, RFC 9110 §10.2.3).

    Counters are fixed windows (``store.incr``): cheap, atomic on both backends, and
    a refused request still counts, so hammering does not reopen the window early.
    """
    for key, rule in checks:
        if rule is None:
            continue
        if store.incr(RATE, f"{key}:{rule.window}", rule.window) > rule.count:
            return rule.window
    return None


def make_event(environ, code: str, reason: str, *, severity="info", detail=None,
               incident=None, client_id=None) -> dict:
    """An event of the shared schema (see :mod:`wsgisec.events`) for layer ``reports``."""
    event = {
        "kind": f"reports.{code}", "layer": "reports", "code": code, "severity": severity,
        "time": time.time(),
        "incident_id": incident or events.incident_id(environ),
        "client_id": client_id,
        "remote_addr": environ.get("REMOTE_ADDR"),
        "method": environ.get("REQUEST_METHOD"),
        "path": environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""),
        "reason": reason,
    }
    if detail:
        event["detail"] = detail
    return event


def commit(store, event: dict) -> None:
    """Keep ``event`` in the store, then log it; StoreUnavailable propagates (503)."""
    store.record_event(event)
    log.log(logging.WARNING if event["severity"] != "info" else logging.INFO, "%s",
            json.dumps(event, ensure_ascii=False, separators=(",", ":")))


def remember(store, fp: str, window: int) -> tuple[str, int, bool]:
    """``(report_id, count, new)`` for a report with fingerprint ``fp``.

    The first of identical reports within ``window`` wins ``store.add`` (atomic on both
    backends) and is stored; later ones only raise the count.
    """
    report_id = "r_" + secrets.token_hex(8)
    if store.add(SEEN, fp, {"id": report_id, "count": 1, "first": time.time()}, ttl=window):
        return report_id, 1, True
    count = store.incr(DUPS, fp, window) + 1
    record = store.get(SEEN, fp) or {}
    store.update(SEEN, fp, {"count": count})
    return record.get("id", report_id), count, False


def forget(store, fp: str) -> None:
    """Undo :func:`remember` when the commit failed, so the sender's retry is stored."""
    try:
        store.delete(SEEN, fp)
    except StoreUnavailable:  # the store is already failing; the 503 is what matters
        events.ops_log.error("could not forget a report fingerprint after a failed commit")


def commit_remembered(store, event: dict, fp: str) -> None:
    """:func:`commit` a report :func:`remember` saw first; on a store failure forget its
    fingerprint (so the sender's retry is stored) and let StoreUnavailable propagate."""
    try:
        commit(store, event)
    except StoreUnavailable:
        forget(store, fp)
        raise


def count_dropped(store, dropped: dict, now=None) -> None:
    """Count dropped browser reports per reason and UTC day (``wsgisec reports stats``).

    A statistic, not a security decision: read-modify-write, so two workers dropping at
    the same instant may count one report too few. Kept 30 days.
    """
    day = time.strftime("%Y-%m-%d", time.gmtime(now))
    for reason, number in dropped.items():
        if number:
            key = f"{day}:{reason}"
            current = (store.get(NOISE, key) or {}).get("count", 0)
            store.put(NOISE, key, {"count": current + number}, ttl=30 * 86400)


def housekeeping(store, retention: int, every: int = 3600) -> int:
    """Purge events older than ``retention``, at most once per ``every`` seconds across
    all workers (``store.add`` elects one); returns how many were removed."""
    if not store.add("reports.housekeeping", "purge", {"at": time.time()}, ttl=every):
        return 0
    return store.purge_events(time.time() - retention)
