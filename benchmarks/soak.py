"""Load and soak the served flagship: waitress (``wsgisec serve``) and gunicorn (2 workers).

    python benchmarks/soak.py [--seconds 30] [--threads 8] [--servers waitress gunicorn]

For each server: a fresh copy of examples/ (its own SQLite store), one partner client per
client thread, then ``--seconds`` of a weighted mix from ``--threads`` threads, each on its
own keep-alive connection through the TLS proxy the example trusts (``X-Forwarded-Proto``):

====================  ======  ==================================================  =========
what                  weight  request                                             expected
====================  ======  ==================================================  =========
token                 1       client credentials grant (one argon2id check the    200 (503
                              first time per process; later ones are              busy: the
                              renewals with a remembered secret, no check)        hashing bound;
                                                                                  the thread
                                                                                  then waits
                                                                                  Retry-After)
api                   6       signed ``GET /api/items?q=widget`` / ``/api/whoami``  200
attack                2       a replayed signed call, a bad bearer token, an      400/401
                              unsigned call, SQL injection in a signed query
report                1       signed partner report ``POST /_wsgisec/reports``    201 (429:
                                                                                  its rate
                                                                                  limit)
====================  ======  ==================================================  =========

Recorded: requests per second, p50/p99 per kind and overall, status counts, store rows per
namespace and events at start and end, RSS of the server's process tree at start and end.
Checked (exit status 1 if not): no unexpected status (no 5xx but the hashing bound's 503),
no ``database is locked`` in any response, every report acknowledged with 201 present in
the store afterwards, and security events written to the server's log (under gunicorn
too: ``--paste`` applies the ini's ``[loggers]`` sections).
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import sqlite3
import sys
import threading
import time
import uuid

from served import Connection, Partner, Served, fetch_token, flagship_copy, percentile

WEIGHTS = {"token": 1, "api": 6, "attack": 2, "report": 1}
EXPECTED = {"token": {200}, "api": {200}, "attack": {400, 401}, "report": {201}}
#: Refusals by design under load, counted apart: the hashing bound, the report rate limit.
BY_DESIGN = {"token": {503}, "report": {429}}


def store_rows(ini) -> dict:
    path = ini.parent / "var" / "wsgisec.sqlite"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
        rows = dict(connection.execute("SELECT ns, COUNT(*) FROM kv GROUP BY ns").fetchall())
        rows["(events)"] = connection.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    connection.close()
    return rows


class Worker(threading.Thread):
    def __init__(self, port, partner, deadline, seed):
        super().__init__(daemon=True)
        self.connection = Connection(port)
        self.partner, self.deadline = partner, deadline
        self.random = random.Random(seed)
        self.samples = []  # (kind, status, seconds)
        self.acknowledged = []  # report ids answered 201
        self.locked = 0
        self.unexpected = []
        self.pause = 0.0

    def run(self):
        kinds, weights = zip(*WEIGHTS.items())
        while time.time() < self.deadline:
            kind = self.random.choices(kinds, weights)[0]
            start = time.perf_counter()
            status, body = getattr(self, kind)()
            self.samples.append((kind, status, time.perf_counter() - start))
            if b"database is locked" in body:
                self.locked += 1
            if status not in EXPECTED[kind] | BY_DESIGN.get(kind, set()):
                self.unexpected.append((kind, status, body[:200]))
            elif kind == "report" and status == 201:
                self.acknowledged.append(json.loads(body)["id"])
            if self.pause:
                time.sleep(min(self.pause, max(0.0, self.deadline - time.time())))
                self.pause = 0.0
        self.connection.close()

    def token(self):
        status, headers, body = self.connection.token(self.partner.basic())
        if status == 200:
            self.partner.access_token = json.loads(body)["access_token"]
        elif status == 503:
            # The hashing bound: a well-behaved partner waits Retry-After (RFC 9110 §10.2.3).
            self.pause = float(headers.get("Retry-After", "1"))
        return status, body

    def api(self):
        path = self.random.choice(["/api/items?q=widget", "/api/whoami"])
        headers, _ = self.connection.signed(self.partner, "GET", path)
        status, _, body = self.connection.request("GET", path, headers)
        return status, body

    def attack(self):
        choice = self.random.randrange(4)
        if choice == 0:  # a replay: the second send of one signed call
            headers, _ = self.connection.signed(self.partner, "GET", "/api/whoami")
            self.connection.request("GET", "/api/whoami", headers)
        elif choice == 1:  # a bearer token we never issued
            headers, _ = self.connection.signed(self.partner, "GET", "/api/whoami")
            headers["Authorization"] = "Bearer " + uuid.uuid4().hex * 2
        elif choice == 2:  # the bearer token alone, unsigned
            headers = {"Authorization": "Bearer " + self.partner.access_token, "X-Forwarded-Proto": "https"}
        else:  # SQL injection through a signed call (the whitelist refuses it)
            path = "/api/lookup?name=%27%20OR%201%3D1--"
            headers, _ = self.connection.signed(self.partner, "GET", path)
            status, _, body = self.connection.request("GET", path, headers)
            return status, body
        status, _, body = self.connection.request("GET", "/api/whoami", headers)
        return status, body

    def report(self):
        document = {"kind": "suspicious-activity", "description": f"soak report {uuid.uuid4()}"}
        body = json.dumps(document).encode()
        headers, body = self.connection.signed(self.partner, "POST", "/_wsgisec/reports", body,
                                               content_type="application/json")
        status, _, data = self.connection.request("POST", "/_wsgisec/reports", headers, body)
        return status, data


def soak(kind: str, seconds: float, threads: int) -> dict:
    ini = flagship_copy()
    partners = [Partner(ini, name=f"soak-{n}") for n in range(threads)]
    server = Served(kind, ini)
    try:
        for partner in partners:
            fetch_token(Connection(server.port), partner)
        rows_start, rss_start = store_rows(ini), server.rss_kib()
        deadline = time.time() + seconds
        workers = [Worker(server.port, partner, deadline, seed) for seed, partner in enumerate(partners)]
        started = time.perf_counter()
        for worker in workers:
            worker.start()
        rss_peak = rss_start
        while any(worker.is_alive() for worker in workers):
            rss_peak = max(rss_peak, server.rss_kib())
            time.sleep(0.5)
        elapsed = time.perf_counter() - started
        rss_end = server.rss_kib()
        rows_end = store_rows(ini)
        # Every report acknowledged with 201 is in the store (read through the ini's store).
        acknowledged = {rid for worker in workers for rid in worker.acknowledged}
        from wsgisec import pipeline
        from wsgisec.reports import Reports
        app = pipeline.load(str(ini))
        store = pipeline.find_layer(app, Reports).store
        stored = {event.get("detail", {}).get("report_id")
                  for event in store.events(kinds=["reports.partner-report"], limit=10 ** 7)}
    finally:
        log = server.stop()
    samples = [sample for worker in workers for sample in worker.samples]
    by_kind = collections.defaultdict(list)
    for sample_kind, _status, took in samples:
        by_kind[sample_kind].append(took)
    return {
        "server": kind if kind == "waitress" else "gunicorn (2 workers)",
        "seconds": round(elapsed, 1), "threads": threads, "requests": len(samples),
        "rps": round(len(samples) / elapsed, 1),
        "p50_ms": round(1000 * percentile([s[2] for s in samples], 0.5), 1),
        "p99_ms": round(1000 * percentile([s[2] for s in samples], 0.99), 1),
        "per_kind_ms": {k: {"n": len(v), "p50": round(1000 * percentile(v, 0.5), 1),
                            "p99": round(1000 * percentile(v, 0.99), 1)} for k, v in sorted(by_kind.items())},
        "statuses": dict(sorted(collections.Counter(f"{k} {s}" for k, s, _ in samples).items())),
        "unexpected": [u for worker in workers for u in worker.unexpected][:20],
        "database_locked": sum(worker.locked for worker in workers),
        "reports_acknowledged": len(acknowledged), "reports_missing": len(acknowledged - stored),
        "rows_start": rows_start, "rows_end": rows_end,
        "rss_mib_start": round(rss_start / 1024, 1), "rss_mib_peak": round(rss_peak / 1024, 1),
        "rss_mib_end": round(rss_end / 1024, 1),
        "events_logged": log.count("[wsgisec.events."),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30, help="load time per server (default 30)")
    parser.add_argument("--threads", type=int, default=8, help="client threads (default 8)")
    parser.add_argument("--servers", nargs="+", default=["waitress", "gunicorn"], choices=["waitress", "gunicorn"])
    args = parser.parse_args(argv)
    failed = False
    for kind in args.servers:
        result = soak(kind, args.seconds, args.threads)
        print(json.dumps(result, indent=1), flush=True)
        problems = []
        if result["unexpected"]:
            problems.append(f"{len(result['unexpected'])}+ unexpected statuses")
        if result["database_locked"]:
            problems.append("'database is locked' reached callers")
        if result["reports_missing"]:
            problems.append(f"{result['reports_missing']} acknowledged reports missing")
        if not result["events_logged"]:
            problems.append("no security event reached the server's log")
        print(f"{result['server']}: " + ("; ".join(problems) if problems else "OK"), flush=True)
        failed = failed or bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
