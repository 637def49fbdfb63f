"""Operator verbs of the reports layer: ``wsgisec reports list|show|export|stats``.

Each verb loads the pipeline of ``--config`` (default ``$WSGISEC_CONFIG``), finds its
reports layer and reads that layer's store: the events of every layer sharing it and
every report, one timeline.

``wsgisec reports list --config CONFIG [--since 1h] [--kind K] [--client ID] [--limit N] [--json]``
    Newest first, as an aligned table or as JSON lines. ``--kind`` takes an exact kind
    (``token_auth.token-missing``) or a pattern (``token_auth.*``), and may be repeated.
``wsgisec reports show INCIDENT_ID [--json]``
    Every event and report of that incident id: the refusal or masked error, and the
    partner reports quoting it, and what error_masker masked (the traceback or the
    original body it kept in the store for 30 days, ``events.MASKED``). That is printed
    here, on the operator's command line only: never over HTTP, not on the dashboard.
    Exit status 3 if nothing has that id.
``wsgisec reports export --format jsonl|csv [--since] [--kind] [--client] [--output FILE]``
    For spreadsheets and SIEMs. CSV cells are formula-safe (OWASP "CSV Injection").
``wsgisec reports stats [--since 24h] [--bucket 1h] [--json]``
    Counts per kind, client and address, and per kind over time; dropped browser reports.
``wsgisec reports purge [--retention 90d]``
    Delete events and reports older than the layer's ``retention`` (or the one given),
    and expired rows, now.

Report fields are written by strangers: terminal control characters are replaced before
they are printed.
"""

from __future__ import annotations

import json
import re
import sys
import time

from .. import events
from ..cli import CLI, EXIT_CONFIG, EXIT_OK, duration_argument, fail, find_layer_or_exit
from ..store import StoreUnavailable
from . import query, timeline

__all__ = ["register"]

_INCIDENT = re.compile(r"^[0-9a-f]{16}$")


def _store(args):
    from . import Reports

    layer = find_layer_or_exit(args, Reports, "reports")
    if layer.store is None:
        raise SystemExit(fail("the reports layer has no store", EXIT_CONFIG))
    return layer.store


def _unavailable(error) -> int:
    # A StoreUnavailable names the file or the URL (password hidden), never a secret.
    return fail(f"the store cannot be read: {error}", EXIT_CONFIG)


def _list(args) -> int:
    store = _store(args)
    try:
        found = query.select(store, since=args.since, kinds=args.kind, client=args.client,
                             limit=args.limit)
    except StoreUnavailable as error:
        return _unavailable(error)
    if args.json:
        for event in found:
            sys.stdout.write(json.dumps(event, ensure_ascii=False, sort_keys=True) + "\n")
    elif found:
        sys.stdout.write(query.table(found))
    else:
        print("no events", file=sys.stderr)
    return EXIT_OK


def _show(args) -> int:
    if not _INCIDENT.match(args.incident_id):
        return fail("an incident id is 16 hex digits, as in X-Incident-Id", EXIT_CONFIG)
    store = _store(args)
    try:
        found = query.for_incident(store, args.incident_id)
    except StoreUnavailable as error:
        return _unavailable(error)
    if not found:
        return fail(f"no event or report has incident id {args.incident_id}")
    if args.json:
        for event in found:
            sys.stdout.write(json.dumps(event, ensure_ascii=False, sort_keys=True) + "\n")
        return EXIT_OK
    print(f"incident {args.incident_id}: {len(found)} event(s), oldest first")
    masked = False
    for event in found:
        print()
        print(f"{query.iso(event.get('time'))}  {query.printable(event.get('kind'))}  "
              f"[{query.printable(event.get('severity'))}]")
        for key in ("reason", "client_id", "remote_addr", "method", "path", "incident_id", "count"):
            if event.get(key) is not None:
                print(f"  {key}: {query.printable(event[key], 300)}")
        detail = dict(event.get("detail") or {})
        trace = detail.pop("traceback", None)
        for key, value in sorted(detail.items()):
            shown = json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) else value
            print(f"  detail.{query.printable(key, 64)}: {query.printable(shown, 4000)}")
        if trace:
            print("  traceback:")
            for line in str(trace).splitlines():
                print("    " + query.printable(line))
        masked = masked or event.get("layer") == "error_masker"
    if masked:
        _print_masked(store, args.incident_id)
    return EXIT_OK


def _print_masked(store, incident_id) -> None:
    """What error_masker kept of the masked error: here, on the operator's terminal only."""
    try:
        kept = store.get(events.MASKED, incident_id)
    except StoreUnavailable:
        kept = None
    if not kept:
        print(f"\nThe masked error's details are in the wsgisec.errors log under incident "
              f"{incident_id} (the store no longer holds them).")
        return
    for key, title in (("traceback", "traceback"), ("body", "original body")):
        if kept.get(key):
            print(f"\n{title} (kept by error_masker, never served over HTTP):")
            for line in str(kept[key]).splitlines():
                print("    " + query.printable(line))


def _export(args) -> int:
    store = _store(args)
    try:
        found = query.select(store, since=args.since, kinds=args.kind, client=args.client,
                             limit=query.MAX_EVENTS)
    except StoreUnavailable as error:
        return _unavailable(error)
    found.reverse()  # oldest first: the order a log is read in
    if args.format == "csv":
        text = query.to_csv(found)
    else:
        text = "".join(json.dumps(event, ensure_ascii=False, sort_keys=True) + "\n" for event in found)
    if args.output:
        with open(args.output, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        print(f"wsgisec: wrote {len(found)} events to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def _stats(args) -> int:
    if args.bucket <= 0:
        return fail("--bucket must be above zero", EXIT_CONFIG)
    store = _store(args)
    try:
        found = query.select(store, since=args.since, limit=query.MAX_EVENTS)
        dropped = {key: value.get("count", 0) for key, value in store.items(timeline.NOISE)}
    except StoreUnavailable as error:
        return _unavailable(error)
    result = query.stats(found, args.bucket)
    result["dropped_browser_reports"] = dropped
    if args.json:
        json.dump(result, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
        return EXIT_OK
    print(f"{result['total']} events since {query.iso(time.time() - args.since)}")
    for title, key in (("by kind", "by_kind"), ("by client", "by_client"), ("by address", "by_address")):
        if result[key]:
            print(f"\n{title}:")
            width = max(len(query.printable(name)) for name in result[key])
            for name, count in result[key].items():
                print(f"  {query.printable(name).ljust(width)}  {count}")
    if result["over_time"]:
        print(f"\nover time ({args.bucket}s buckets):")
        for row in result["over_time"]:
            kinds = ", ".join(f"{query.printable(k)} {v}" for k, v in row.items() if k != "start")
            print(f"  {row['start']}  {kinds}")
    if dropped:
        print("\ndropped browser reports (day:reason):")
        for key, count in sorted(dropped.items()):
            print(f"  {query.printable(key)}  {count}")
    return EXIT_OK


def _purge(args) -> int:
    from . import Reports

    layer = find_layer_or_exit(args, Reports, "reports")
    retention = args.retention if args.retention is not None else layer.retention
    if retention < 86400:
        return fail("--retention must be at least 1d", EXIT_CONFIG)
    try:
        removed = layer.store.purge_events(time.time() - retention)
        expired = layer.store.purge()
    except StoreUnavailable as error:
        return _unavailable(error)
    print(f"removed {removed} events older than {retention // 86400}d and {expired} expired rows")
    return EXIT_OK


def _filters(parser, since_default=None):
    parser.add_argument("--since", type=duration_argument, default=since_default, metavar="DURATION",
                        help="only events this recent (e.g. 1h, 7d)")
    parser.add_argument("--kind", action="append", default=[], metavar="K",
                        help="an event kind or pattern, e.g. token_auth.* (repeat for several)")
    parser.add_argument("--client", metavar="ID", help="only events of this client id")


def register(cli) -> None:
    group_help = "security events and reports of every layer (the reports layer's store)"
    listing = cli.command("reports", "list", "list events and reports, newest first", _list,
                          group_help=group_help)
    CLI.add_config_argument(listing)
    _filters(listing)
    listing.add_argument("--limit", type=int, default=100, metavar="N", help="at most N (default 100)")
    listing.add_argument("--json", action="store_true", help="JSON lines instead of a table")

    show = cli.command("reports", "show", "every event and report of one incident id", _show,
                       group_help=group_help)
    CLI.add_config_argument(show)
    show.add_argument("incident_id", help="the 16 hex digits of X-Incident-Id")
    show.add_argument("--json", action="store_true", help="JSON lines")

    export = cli.command("reports", "export", "export events as JSON lines or formula-safe CSV",
                         _export, group_help=group_help)
    CLI.add_config_argument(export)
    _filters(export)
    export.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    export.add_argument("--output", metavar="FILE", help="write here instead of standard output")

    stats = cli.command("reports", "stats", "counts per kind and client over time", _stats,
                        group_help=group_help)
    CLI.add_config_argument(stats)
    stats.add_argument("--since", type=duration_argument, default=86400, metavar="DURATION",
                       help="window to count (default 24h)")
    stats.add_argument("--bucket", type=duration_argument, default=3600, metavar="DURATION",
                       help="width of the over-time buckets (default 1h)")
    stats.add_argument("--json", action="store_true", help="print JSON")

    purge = cli.command("reports", "purge", "delete events older than the retention now", _purge,
                        group_help=group_help)
    CLI.add_config_argument(purge)
    purge.add_argument("--retention", type=duration_argument, default=None, metavar="DURATION",
                       help="keep this much history (default: the layer's retention)")
