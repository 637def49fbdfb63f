"""A flood of bad client credentials against the served flagship's /oauth/token, from many
addresses, while a partner makes signed API calls and renews its token: their p50/p99
unloaded vs loaded.

    python benchmarks/bench_hash_flood.py [--seconds 10] [--rates 25,100] [--closed 8]
                                          [--server waitress] [--configs defaults,control]

Each flood request comes from its own loopback address (127.x.y.z, bound as the source
of a new connection; no ``X-Forwarded-For``), so the per-address lock-out never stops it.
Half name the partner's real client id with a wrong secret (each would cost an argon2id
check, 64 MiB, t=3, p=4), half unknown ids. The copy of the example trusts
``X-Forwarded-Proto`` from 127.0.0.0/8 (instead of 127.0.0.1) so that those requests
count as TLS, as they would behind a proxy that terminates TLS for everyone.

The flood runs in two processes of its own (attackers are other machines: their client
work must not share the measuring process's GIL), in two shapes:

* ``--rates``: open loop, that many requests per second in all, whatever the answers
  (16 threads per process keep the schedule);
* ``--closed N``: N connections that send the next request as soon as the last one is
  answered, so the flood takes whatever the server gives it (a saturating flood).

While it runs, the partner makes signed ``GET /api/whoami`` calls (2 threads, keep-alive)
and, from its own address (127.0.0.1, where it got its first token), asks for a new
token every half second (``renewals``: their answers). Configurations, each on its own
server and store: the defaults; ``no-budget`` (``failed_hash_budget`` out of the way and
``verified_secret_ttl = 0``: only the concurrency bound, as in 0.x before the budget);
``unbounded`` (every check at once, as before any bound); and ``control``: the defaults
flooded with bad *bearer tokens* instead (what any flood of that many refused requests
costs, without hashing). Per configuration: ``--seconds`` of calls alone, then as long
under each flood shape; printed as a table and JSON.
"""

from __future__ import annotations

import argparse
import collections
import json
import multiprocessing
import random
import sys
import threading
import time

from served import Connection, Partner, Served, basic_auth, fetch_token, flagship_copy, percentile

TRUST_ALL_LOOPBACK = {"trusted_proxies = 127.0.0.1 ::1": "trusted_proxies = 127.0.0.0/8 ::1"}
NO_BUDGET = {"failed_hash_budget = 12/1m": "failed_hash_budget = 100000/1s",
             "verified_secret_ttl = 1h": "verified_secret_ttl = 0"}
#: name: (ini replacements, what the flood sends)
CONFIGS = {
    "defaults": ({}, "token"),
    "no-budget": (NO_BUDGET, "token"),
    "unbounded": (dict(NO_BUDGET, **{"max_concurrent_hashes = 2\nhash_wait = 10ms":
                                     "max_concurrent_hashes = 1000\nhash_wait = 60s"}), "token"),
    "control": ({}, "bearer"),
}
FLOOD_PROCESSES = 2


def api_calls(port, partner, stop, latencies, statuses):
    connection = Connection(port)
    while not stop.is_set():
        headers, _ = connection.signed(partner, "GET", "/api/whoami")
        start = time.perf_counter()
        status, _, _ = connection.request("GET", "/api/whoami", headers)
        latencies.append(time.perf_counter() - start)
        statuses[status] += 1
    connection.close()


def renewals(port, partner, stop, statuses):
    """The partner's own token requests, from the address it always uses."""
    connection = Connection(port)
    while not stop.wait(0.5):
        status, _, _ = connection.token(partner.basic())
        statuses[status] += 1
    connection.close()


def flood_request(port, client_id, rng, target):
    source = f"127.{rng.randrange(1, 255)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    connection = Connection(port, source=source, timeout=60)
    claimed = client_id if rng.random() < 0.5 else f"c_{rng.getrandbits(64):016x}"
    try:
        if target == "bearer":
            status, _, _ = connection.request("GET", "/api/whoami", {
                "Authorization": f"Bearer {rng.getrandbits(256):064x}", "X-Forwarded-Proto": "https"})
        else:
            status, _, _ = connection.token(basic_auth(claimed, f"wrong-{rng.getrandbits(64):x}"))
    except OSError:
        status = "error"
    finally:
        connection.close()
    return status


def flood_thread(port, client_id, stop, statuses, seed, target, interval):
    """``interval`` None: closed loop; else one request every ``interval`` seconds."""
    rng = random.Random(seed)
    due = time.perf_counter() + rng.random() * (interval or 0)
    while not stop.is_set():
        if interval:
            pause = due - time.perf_counter()
            if pause > 0 and stop.wait(pause):
                break
            due += interval
        statuses[flood_request(port, client_id, rng, target)] += 1


def run_for(seconds, threads, stop):
    """Start ``threads``, let them run ``seconds``, then stop them and wait for them."""
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join(120)


def flood_process(port, client_id, seconds, threads, seed, target, rate, results):
    stop, statuses = threading.Event(), collections.Counter()
    interval = threads / rate if rate else None
    workers = [threading.Thread(target=flood_thread, args=(port, client_id, stop, statuses, seed * 1000 + n,
                                                           target, interval)) for n in range(threads)]
    run_for(seconds, workers, stop)
    results.put({str(key): value for key, value in statuses.items()})


def phase(port, partner, seconds, target="token", rate=None, closed=0):
    """Signed calls and renewals for ``seconds``; a flood if ``rate`` or ``closed``."""
    stop = threading.Event()
    latencies, api_statuses, renewal_statuses = [], collections.Counter(), collections.Counter()
    results = multiprocessing.Queue()
    flooding = bool(rate or closed)
    threads = 16 if rate else max(1, closed // FLOOD_PROCESSES)
    processes = [multiprocessing.Process(
        target=flood_process, args=(port, partner.client_id, seconds, threads, n, target,
                                    rate / FLOOD_PROCESSES if rate else None, results))
        for n in range(FLOOD_PROCESSES if flooding else 0)]
    for process in processes:
        process.start()
    clients = [threading.Thread(target=api_calls, args=(port, partner, stop, latencies, api_statuses))
               for _ in range(2)]
    clients.append(threading.Thread(target=renewals, args=(port, partner, stop, renewal_statuses)))
    run_for(seconds, clients, stop)
    flood = collections.Counter()
    for process in processes:
        flood.update(results.get(timeout=180))
        process.join(60)
    return {"api_calls": len(latencies), "api_p50_ms": round(1000 * percentile(latencies, 0.5), 1),
            "api_p99_ms": round(1000 * percentile(latencies, 0.99), 1), "api_statuses": dict(api_statuses),
            "renewals": {str(k): v for k, v in renewal_statuses.items()}, "flood_statuses": dict(flood),
            "flood_rps": round(sum(flood.values()) / seconds, 1)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10, help="seconds per phase (default 10)")
    parser.add_argument("--rates", default="25,100", help="open-loop flood rates, requests/s (default 25,100)")
    parser.add_argument("--closed", type=int, default=8, help="closed-loop flood connections (default 8; 0: none)")
    parser.add_argument("--server", default="waitress", choices=["waitress", "gunicorn"])
    parser.add_argument("--configs", default=",".join(CONFIGS), help=f"of {', '.join(CONFIGS)}")
    args = parser.parse_args(argv)
    shapes = [(f"{float(rate):g}/s", float(rate), 0) for rate in args.rates.split(",") if rate]
    if args.closed:
        shapes.append((f"closed x{args.closed}", None, args.closed))
    results = {}
    for name in args.configs.split(","):
        replace, target = CONFIGS[name]
        ini = flagship_copy(dict(TRUST_ALL_LOOPBACK, **replace))
        partner = Partner(ini, name="flood-bench")
        server = Served(args.server, ini)
        try:
            fetch_token(Connection(server.port), partner)
            unloaded = phase(server.port, partner, args.seconds)
            results[name] = {"unloaded": unloaded}
            for shape, rate, closed in shapes:
                loaded = phase(server.port, partner, args.seconds, target, rate, closed)
                loaded["p99_ratio"] = round(loaded["api_p99_ms"] / unloaded["api_p99_ms"], 2)
                results[name][shape] = loaded
            results[name]["rss_mib_after"] = round(server.rss_kib() / 1024, 1)
        finally:
            server.stop()
    print(json.dumps(results, indent=1))
    print(f"\n| configuration ({args.server}) | flood | signed p50 / p99 | p99 / unloaded | flood answers "
          "(requests/s) | partner renewals |")
    print("|---|---|---|---|---|---|")
    for name, result in results.items():
        for shape, data in result.items():
            if not isinstance(data, dict):
                continue
            answers = ", ".join(f"{v} x {k}" for k, v in sorted(data["flood_statuses"].items()))
            renewed = ", ".join(f"{v} x {k}" for k, v in sorted(data["renewals"].items()))
            print(f"| {name} | {shape} | {data['api_p50_ms']} / {data['api_p99_ms']} ms | "
                  f"{data.get('p99_ratio', '')} | {answers or '-'} ({data['flood_rps']}) | {renewed} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
