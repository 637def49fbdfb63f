"""Read the one timeline back for operators: filter, join by incident, format, count.

Every layer's events and every report share the store's event schema (see
:mod:`wsgisec.events`), so one query serves ``wsgisec reports list``, ``show``,
``export`` and ``stats``. Report fields are attacker-written text: :func:`printable`
removes terminal control sequences before anything reaches an operator's terminal, and
:func:`csv_cell` makes CSV cells formula-safe (OWASP "CSV Injection").
"""

from __future__ import annotations

import csv
import fnmatch
import io
import json
import re
import time
from collections import Counter

__all__ = ["select", "for_incident", "printable", "table", "csv_cell", "to_csv", "stats", "iso"]

#: The most events a query reads from the store.
MAX_EVENTS = 100_000

# C0 and C1 controls and DEL (ESC starts terminal escape sequences), Unicode bidi overrides.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

COLUMNS = ("time", "kind", "severity", "client_id", "remote_addr", "incident_id", "reason")
CSV_COLUMNS = ("time", "kind", "layer", "code", "severity", "count", "incident_id", "client_id",
               "remote_addr", "method", "path", "reason", "detail")


def iso(seconds) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(seconds or 0)))


def select(store, *, since=None, kinds=(), client=None, limit=1000, now=None) -> list[dict]:
    """Events newest first. ``kinds`` are exact kinds or patterns (``token_auth.*``)."""
    now = time.time() if now is None else now
    exact = [kind for kind in kinds if not any(ch in kind for ch in "*?[")]
    patterns = [kind for kind in kinds if kind not in exact]
    found = store.events_counted(since=None if since is None else now - since,
                         kinds=exact if exact and not patterns else None, limit=MAX_EVENTS)
    selected = []
    for event in reversed(found):
        kind = event.get("kind", "")
        if kinds and kind not in exact and not any(fnmatch.fnmatchcase(kind, p) for p in patterns):
            continue
        if client is not None and event.get("client_id") != client:
            continue
        selected.append(event)
        if len(selected) >= limit:
            break
    return selected


def for_incident(store, incident: str) -> list[dict]:
    """Every event and report of ``incident``, oldest first: the events it names, and the
    partner reports that quote it or were received under it."""
    matches = []
    for event in store.events_counted(limit=MAX_EVENTS):
        detail = event.get("detail") or {}
        if incident in (event.get("incident_id"), detail.get("incident_id"),
                        detail.get("received_incident_id")):
            matches.append(event)
    return matches


def printable(value, width=None) -> str:
    text = "" if value is None else str(value)
    text = _CONTROL.sub("?", text.replace("\n", " ").replace("\t", " "))
    if width is not None and len(text) > width:
        text = text[: width - 1] + "…"
    return text


def table(events, columns=COLUMNS) -> str:
    """An aligned table, one event a line (the last column unpadded)."""
    rows = [[c.upper() for c in columns]]
    for event in events:
        row = []
        for column in columns:
            value = event.get(column)
            if column == "time":
                value = iso(value)
            row.append(printable(value if value is not None else "-", 80))
        if event.get("count", 1) != 1:
            row[-1] += f" (x{event['count']})"
        rows.append(row)
    widths = [max(len(row[index]) for row in rows) for index in range(len(columns))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row[:-1], widths)) + "  " + row[-1]
                     for row in rows) + "\n"


def csv_cell(value) -> str:
    """A cell a spreadsheet shows as text: ``'`` before a leading ``= + - @`` TAB or CR."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def to_csv(events) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for event in events:
        row = []
        for column in CSV_COLUMNS:
            value = event.get(column)
            if column == "time":
                value = iso(value)
            elif column == "count":
                value = event.get("count", 1)
            elif column == "detail":
                value = json.dumps(value, ensure_ascii=False, sort_keys=True) if value else ""
            row.append(csv_cell(value))
        writer.writerow(row)
    return out.getvalue()


def stats(events, bucket: int) -> dict:
    """Counts per kind, per client, per address, and per kind in each ``bucket`` seconds."""
    by_kind, by_client, by_address = Counter(), Counter(), Counter()
    series: dict[int, Counter] = {}
    for event in events:
        count = int(event.get("count", 1))
        by_kind[event.get("kind")] += count
        if event.get("client_id"):
            by_client[event["client_id"]] += count
        if event.get("remote_addr"):
            by_address[event["remote_addr"]] += count
        start = int(float(event.get("time", 0)) // bucket * bucket)
        series.setdefault(start, Counter())[event.get("kind")] += count
    return {
        "total": sum(by_kind.values()),
        "by_kind": dict(by_kind.most_common()),
        "by_client": dict(by_client.most_common(20)),
        "by_address": dict(by_address.most_common(20)),
        "over_time": [{"start": iso(start), **dict(series[start])} for start in sorted(series)],
    }
