"""The flagship under a store fault: requests per second and statuses, healthy and faulty.

    python benchmarks/bench_store_faults.py [--seconds 5] [--threads 4]

Runs examples/partner_api.ini in-process (every layer; signed partner calls, each needing
a nonce write, plus /healthz) from several threads, for a few seconds each:

* on a Redis store (a redis-server of its own on a free loopback port): healthy, then
  frozen with SIGSTOP (socket open, nobody answering);
* on the SQLite store: healthy, then with another connection holding the write lock.

Prints, per phase, requests per second, the status counts, and the worst /healthz time.
Issue 14 measured before this work: a frozen Redis took the flagship from ~290 to 2
requests/s (every call waiting out a 2 s timeout), and a held SQLite lock stopped every
response, /healthz included, for as long as it was held.
"""

from __future__ import annotations

import argparse
import collections
import logging
import os
import pathlib
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))

from wsgisec import pipeline  # noqa: E402
from wsgisec.testing import PartnerTestApp, partner_credentials  # noqa: E402
from wsgisec.token_auth import TokenAuth  # noqa: E402

VIA_TLS_PROXY = {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_PROTO": "https", "HTTP_HOST": "localhost"}


def partners(url, threads):
    stack = pipeline.load(str(ROOT / "examples" / "partner_api.ini"), global_conf={"wsgisec_store": url})
    token_auth = pipeline.find_layer(stack, TokenAuth)
    apps = []
    for number in range(threads):
        client, _ = token_auth.registry.create(f"bench-{number}", scopes=["items:read"])
        access = token_auth.issue_token(client["id"])["access_token"]
        apps.append(PartnerTestApp(stack, **partner_credentials(stack, client["id"]), access_token=access,
                                   extra_environ=dict(VIA_TLS_PROXY)))
    return apps


def phase(apps, seconds):
    statuses = collections.Counter()
    worst_health = [0.0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def work(app, number):
        while time.monotonic() < deadline:
            health = number % 4 == 0 and statuses.total() % 10 == 0
            started = time.monotonic()
            response = app.get("/healthz" if health else "/api/items", expect_errors=True)
            elapsed = time.monotonic() - started
            with lock:
                statuses[("healthz " if health else "") + str(response.status_int)] += 1
                if health:
                    worst_health[0] = max(worst_health[0], elapsed)

    workers = [threading.Thread(target=work, args=(app, n)) for n, app in enumerate(apps)]
    started = time.monotonic()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.monotonic() - started
    return statuses.total() / elapsed, dict(statuses), worst_health[0]


def show(name, result):
    rate, statuses, health = result
    print(f"| {name:<32} | {rate:8.0f} | {health * 1000:9.1f} ms | {statuses}")


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    if not os.environ.get("BENCH_LOG"):
        logging.disable(logging.CRITICAL)  # thousands of 503s are logged; the table is the point
    print("| phase                            | req/s    | worst /healthz | statuses")
    print("|----------------------------------|----------|----------------|---------")
    directory = tempfile.mkdtemp()
    try:
        if shutil.which("redis-server"):
            port = free_port()
            server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                       "--appendonly", "no", "--dir", directory],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)
            try:
                apps = partners(f"redis://127.0.0.1:{port}/0", args.threads)
                show("redis, healthy", phase(apps, args.seconds))
                server.send_signal(signal.SIGSTOP)
                show("redis, frozen (SIGSTOP)", phase(apps, args.seconds))
                server.send_signal(signal.SIGCONT)
                time.sleep(2.5)  # the breaker's cool-down, then one probe
                show("redis, resumed", phase(apps, args.seconds))
            finally:
                server.send_signal(signal.SIGCONT)
                server.kill()
        path = os.path.join(directory, "bench.sqlite")
        apps = partners(f"sqlite:///{path}", args.threads)
        show("sqlite, healthy", phase(apps, args.seconds))
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        show("sqlite, write lock held elsewhere", phase(apps, args.seconds))
        holder.execute("ROLLBACK")
        holder.close()
        time.sleep(2.5)
        show("sqlite, lock released", phase(apps, args.seconds))
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
