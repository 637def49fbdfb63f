"""The operators' dashboard: ``GET /_wsgisec/dashboard`` (HTML) and ``.json`` (its twin).

Off unless ``dashboard = true``. Only for a client whose token carries
``dashboard_scope`` (checked by the token_auth layer inside, as for partner reports), or
for a caller presenting the ``dashboard_token`` secret as a bearer token (compared in
constant time). Everything is rendered on the server and escaped with markupsafe; the
page loads nothing (no script, no external asset) and says so in a strict CSP
(``default-src 'none'``, its one stylesheet allowed by hash), so even a value that
escaped escaping could not run. The chart is inline SVG drawn with presentation
attributes (a ``style`` attribute would need ``'unsafe-inline'``).

Shown: events per kind over the window as stacked bars, top clients and addresses, and
the latest events with their incident ids. Only fixed phrases of our own code appear
(kind, reason, ids, addresses), never a report's free text: the dashboard shows what
happened, ``wsgisec reports show`` the details.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

from markupsafe import Markup, escape

from .. import events
from ..responses import problem
from ..store import StoreUnavailable
from . import query

__all__ = ["collect", "render", "to_json", "CSP", "DashboardAccess", "DASHBOARD_DENIED"]

DASHBOARD_DENIED = "dashboard-denied"
_log = events.logger_for("reports")

_STYLE = (
    "body{font:14px system-ui,sans-serif;margin:2em;color:#222;background:#fafafa}"
    "h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.5em}"
    "table{border-collapse:collapse;margin:.5em 0}td,th{padding:.2em .8em;border-bottom:1px solid #ddd;"
    "text-align:left;white-space:nowrap}th{background:#eee}td.r{white-space:normal}code{font-size:.95em}.n{text-align:right}"
    ".cols{display:flex;gap:3em;flex-wrap:wrap}svg{background:#fff;border:1px solid #ddd}"
)
_STYLE_HASH = base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()

#: Nothing may load or run; the one <style> element is allowed by its hash (CSP3).
CSP = (f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; img-src 'none'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")

_COLOURS = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#bab0ac")
_KINDS_SHOWN = 5
_BUCKETS = 24


def collect(store, window: int, now: float | None = None) -> dict:
    """The dashboard's numbers (the JSON twin is exactly this)."""
    now = time.time() if now is None else now
    found = query.select(store, since=window, limit=query.MAX_EVENTS, now=now)
    bucket = max(1, window // _BUCKETS)
    start = int((now - window) // bucket * bucket)
    summary = query.stats(found, bucket)
    kinds = list(summary["by_kind"])[:_KINDS_SHOWN]
    series = [{"start": query.iso(start + index * bucket)} for index in range(_BUCKETS + 1)]
    for event in found:  # one pass: a day of a flood is up to MAX_EVENTS rows
        index = int((float(event.get("time", 0)) - start) // bucket)
        if 0 <= index < len(series):
            kind = event.get("kind") if event.get("kind") in kinds else "other"
            series[index][kind] = series[index].get(kind, 0) + int(event.get("count", 1))
    latest = [{key: event.get(key) for key in ("time", "kind", "severity", "incident_id",
                                               "client_id", "remote_addr", "reason")}
              | {"count": int(event.get("count", 1))} for event in found[:20]]
    return {"window": window, "bucket": bucket, "generated": query.iso(now),
            "total": summary["total"], "by_kind": summary["by_kind"],
            "top_clients": summary["by_client"], "top_addresses": summary["by_address"],
            "kinds_charted": kinds, "over_time": series, "latest": latest}


def _chart(data: dict) -> Markup:
    width, height, left, bottom = 760, 220, 40, 30
    series = data["over_time"]
    names = data["kinds_charted"] + (["other"] if any(row.get("other") for row in series) else [])
    totals = [sum(row.get(name, 0) for name in names) for row in series]
    peak = max(totals + [1])
    step = (width - left - 10) / max(1, len(series))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 60}" '
             f'role="img" aria-label="events per kind over time">',
             f'<text x="4" y="14" font-size="11" fill="#555">{peak}</text>',
             f'<line x1="{left}" y1="{height - bottom}" x2="{width - 10}" y2="{height - bottom}" stroke="#999"/>']
    for index, row in enumerate(series):
        y = height - bottom
        for colour, name in zip(_COLOURS, names):
            value = row.get(name, 0)
            if not value:
                continue
            bar = (height - bottom - 20) * value / peak
            y -= bar
            parts.append(f'<rect x="{left + index * step + 1:.1f}" y="{y:.1f}" width="{max(1, step - 2):.1f}" '
                         f'height="{bar:.1f}" fill="{colour}"><title>{escape(name)}: {value}</title></rect>')
        if index % 6 == 0:
            parts.append(f'<text x="{left + index * step:.1f}" y="{height - bottom + 14}" font-size="10" '
                         f'fill="#555">{escape(row["start"][11:16])}</text>')
    for number, (colour, name) in enumerate(zip(_COLOURS, names)):
        x = left + (number % 3) * 240
        y = height + 5 + (number // 3) * 18
        parts.append(f'<rect x="{x}" y="{y}" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{x + 14}" y="{y + 9}" font-size="11">{escape(query.printable(name, 34))}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _rows(mapping: dict) -> Markup:
    return Markup("".join(f"<tr><td><code>{escape(query.printable(key, 80))}</code></td>"
                          f'<td class="n">{int(value)}</td></tr>' for key, value in mapping.items())
                  or '<tr><td colspan="2">none</td></tr>')


def render(data: dict) -> bytes:
    latest = Markup("".join(
        f"<tr><td>{escape(query.iso(event['time']))}</td><td><code>{escape(query.printable(event['kind']))}</code></td>"
        f"<td>{escape(event['severity'] or '')}</td><td><code>{escape(event['incident_id'] or '')}</code></td>"
        f"<td>{escape(query.printable(event['client_id'] or '-', 40))}</td>"
        f"<td>{escape(query.printable(event['remote_addr'] or '-', 45))}</td>"
        f"<td class=\"r\">{escape(query.printable(event['reason'] or '', 80))}</td>"
        f'<td class="n">{event["count"]}</td></tr>' for event in data["latest"])
        or '<tr><td colspan="8">none</td></tr>')
    hours = data["window"] / 3600
    page = Markup(
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="referrer" content="no-referrer"><title>wsgisec: security events</title>'
        "<style>{style}</style></head><body>"
        "<h1>Security events</h1><p>{total} events in the last {hours:g} h (generated {generated}; "
        "JSON: <code>dashboard.json</code>).</p>"
        "<h2>Events per kind over time</h2>{chart}"
        '<div class="cols"><div><h2>By kind</h2><table><tr><th>kind</th><th>events</th></tr>{kinds}</table></div>'
        "<div><h2>Top clients</h2><table><tr><th>client</th><th>events</th></tr>{clients}</table></div>"
        "<div><h2>Top addresses</h2><table><tr><th>address</th><th>events</th></tr>{addresses}</table></div></div>"
        "<h2>Latest events</h2><table><tr><th>time</th><th>kind</th><th>severity</th><th>incident</th>"
        "<th>client</th><th>address</th><th>reason</th><th>count</th></tr>{latest}</table>"
        "</body></html>"
    ).format(style=Markup(_STYLE), total=data["total"], hours=hours, generated=data["generated"],
             chart=_chart(data), kinds=_rows(data["by_kind"]), clients=_rows(data["top_clients"]),
             addresses=_rows(data["top_addresses"]), latest=latest)
    return str(page).encode("utf-8")


def to_json(data: dict) -> bytes:
    return json.dumps(data, sort_keys=True).encode("utf-8")


class DashboardAccess:
    """The dashboard's request handling (mixed into ``Reports``)."""

    def _dashboard(self, environ, start_response):
        from ..credentials import bearer_token

        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return problem(environ, 405, "Use GET.", headers=[("Allow", "GET, HEAD")])(environ, start_response)
        token = bearer_token(environ) if environ.get("HTTP_AUTHORIZATION") else None
        if token is not None and self.dashboard_token is not None and hmac.compare_digest(
                hashlib.sha256(token.encode("utf-8")).digest(),
                hashlib.sha256(self.dashboard_token.reveal().encode("utf-8")).digest()):
            return self._dashboard_page(environ, start_response)
        if self._dashboard_auth is not None and token is not None:
            # token_auth (inside us) checks the bearer token and sets wsgisec.scopes.
            return self._dashboard_auth(environ, start_response)
        events.emit(environ, DASHBOARD_DENIED, "dashboard without admin credentials",
                    store=self.store, logger=_log)
        return problem(environ, 401, "The dashboard needs an admin token.",
                       headers=[("WWW-Authenticate", 'Bearer realm="wsgisec-dashboard"')])(
            environ, start_response)

    def _dashboard_scoped(self, environ, start_response):
        scopes = environ.get("wsgisec.scopes") or ()
        if self.dashboard_scope not in scopes:
            incident = events.emit(environ, DASHBOARD_DENIED, "dashboard without the admin scope",
                                   store=self.store, logger=_log)
            challenge = f'Bearer realm="wsgisec-dashboard", error="insufficient_scope", scope="{self.dashboard_scope}"'
            return problem(environ, 403, "The dashboard needs the admin scope.", incident=incident,
                           headers=[("WWW-Authenticate", challenge)])(environ, start_response)
        return self._dashboard_page(environ, start_response)

    def _dashboard_page(self, environ, start_response):
        if self.store is None:
            raise StoreUnavailable("no store configured")
        data = collect(self.store, self.dashboard_window)
        common = [("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff"),
                  ("Referrer-Policy", "no-referrer"), ("X-Frame-Options", "DENY"),
                  ("Content-Security-Policy", CSP)]
        if environ.get("PATH_INFO", "").endswith(".json"):
            body, content_type = to_json(data), "application/json"
        else:
            body, content_type = render(data), "text/html; charset=utf-8"
        start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body)))] + common)
        return [b""] if environ.get("REQUEST_METHOD") == "HEAD" else [body]
