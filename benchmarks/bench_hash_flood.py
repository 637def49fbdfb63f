"""A flood of bad client credentials against the served flagship's /oauth/token, from many
addresses, while a partner makes signed API calls: their p50/p99 unloaded vs loaded.

    python benchmarks/bench_hash_flood.py [--seconds 10] [--flood 16] [--server waitress]

Each flood request comes from its own loopback address (127.x.y.z, bound as the source
of a new connection; no ``X-Forwarded-For``), so the per-address lock-out never stops it:
every one costs an argon2id check (64 MiB, the example's default context). Half name the
partner's real client id with a wrong secret, half unknown ids. The copy of the example
trusts ``X-Forwarded-Proto`` from 127.0.0.0/8 (instead of 127.0.0.1) so that those
requests count as TLS, as they would behind a proxy that terminates TLS for everyone.

Two configurations, each on its own server and store: ``max_concurrent_hashes = 2``
(the default) and an unbounded one (1000 slots, ``hash_wait = 60s``: as before the
bound), and as a control the defaults flooded with bad bearer tokens instead (what
any flood of that many connections costs, without hashing). Per configuration: ``--seconds`` of signed calls alone, then as long with the
flood; printed as a table and JSON.
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import sys
import threading
import time

from served import Connection, Partner, Served, basic_auth, fetch_token, flagship_copy, percentile

TRUST_ALL_LOOPBACK = {"trusted_proxies = 127.0.0.1 ::1": "trusted_proxies = 127.0.0.0/8 ::1"}
#: name: (ini replacements, what the flood sends)
CONFIGS = {
    "bounded (the defaults: max_concurrent_hashes = 2, hash_wait = 10ms)": ({}, "token"),
    "bounded, hash_wait = 250ms": ({"hash_wait = 10ms": "hash_wait = 250ms"}, "token"),
    "unbounded (as before)": ({"max_concurrent_hashes = 2\nhash_wait = 10ms":
                               "max_concurrent_hashes = 1000\nhash_wait = 60s"}, "token"),
    # What any flood of that many connections costs: bad bearer tokens, no hashing at all.
    "control: flood of bad bearer tokens": ({}, "bearer"),
}


def api_calls(port, partner, stop, latencies, statuses):
    connection = Connection(port)
    while not stop.is_set():
        headers, _ = connection.signed(partner, "GET", "/api/whoami")
        start = time.perf_counter()
        status, _, _ = connection.request("GET", "/api/whoami", headers)
        latencies.append(time.perf_counter() - start)
        statuses[status] += 1
    connection.close()


def flood(port, partner, stop, statuses, seed, target="token"):
    rng = random.Random(seed)
    while not stop.is_set():
        source = f"127.{rng.randrange(1, 255)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        connection = Connection(port, source=source, timeout=60)
        client_id = partner.client_id if rng.random() < 0.5 else f"c_{rng.getrandbits(64):016x}"
        authorization = basic_auth(client_id, f"wrong-{rng.getrandbits(64):x}")
        try:
            if target == "bearer":
                status, _, _ = connection.request("GET", "/api/whoami", {
                    "Authorization": f"Bearer {rng.getrandbits(256):064x}", "X-Forwarded-Proto": "https"})
            else:
                status, _, _ = connection.token(authorization)
        except OSError:
            status = "error"
        statuses[status] += 1
        connection.close()


def phase(port, partner, seconds, flooders, target="token", api_threads=2):
    stop = threading.Event()
    latencies, api_statuses, flood_statuses = [], collections.Counter(), collections.Counter()
    threads = [threading.Thread(target=api_calls, args=(port, partner, stop, latencies, api_statuses))
               for _ in range(api_threads)]
    threads += [threading.Thread(target=flood, args=(port, partner, stop, flood_statuses, n, target))
                for n in range(flooders)]
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join(120)
    return {"api_calls": len(latencies), "api_p50_ms": round(1000 * percentile(latencies, 0.5), 1),
            "api_p99_ms": round(1000 * percentile(latencies, 0.99), 1),
            "api_statuses": dict(api_statuses), "flood_statuses": {str(k): v for k, v in flood_statuses.items()},
            "flood_rps": round(sum(flood_statuses.values()) / seconds, 1)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10, help="seconds per phase (default 10)")
    parser.add_argument("--flood", type=int, default=16, help="flooding threads (default 16)")
    parser.add_argument("--server", default="waitress", choices=["waitress", "gunicorn"])
    args = parser.parse_args(argv)
    results = {}
    for name, (replace, target) in CONFIGS.items():
        ini = flagship_copy(dict(TRUST_ALL_LOOPBACK, **replace))
        partner = Partner(ini, name="flood-bench")
        server = Served(args.server, ini)
        try:
            fetch_token(Connection(server.port), partner)
            unloaded = phase(server.port, partner, args.seconds, 0)
            rss_before = server.rss_kib()
            loaded = phase(server.port, partner, args.seconds, args.flood, target)
            loaded["rss_mib_after"] = round(server.rss_kib() / 1024, 1)
            unloaded["rss_mib_after"] = round(rss_before / 1024, 1)
        finally:
            server.stop()
        results[name] = {"unloaded": unloaded, "loaded": loaded,
                         "loaded_p99_over_unloaded_p99": round(loaded["api_p99_ms"] / unloaded["api_p99_ms"], 2)}
    print(json.dumps(results, indent=1))
    print(f"\n| configuration ({args.server}) | signed p50 / p99 unloaded | with the flood | p99 ratio | "
          "flood answers | RSS |")
    print("|---|---|---|---|---|---|")
    for name, result in results.items():
        unloaded, loaded = result["unloaded"], result["loaded"]
        answers = ", ".join(f"{v} x {k}" for k, v in sorted(loaded["flood_statuses"].items()))
        print(f"| {name} | {unloaded['api_p50_ms']} / {unloaded['api_p99_ms']} ms | {loaded['api_p50_ms']} / "
              f"{loaded['api_p99_ms']} ms | {result['loaded_p99_over_unloaded_p99']} | {answers} | "
              f"{unloaded['rss_mib_after']} -> {loaded['rss_mib_after']} MiB |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
