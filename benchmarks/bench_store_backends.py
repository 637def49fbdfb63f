"""Cost of one store call on each backend: SQLite, one Redis, a Redis behind a Sentinel
and a three-master Redis Cluster, all on loopback.

    python benchmarks/bench_store_backends.py [--calls 2000] [--redis redis://127.0.0.1:6379/15]

Starts its own Cluster and Sentinel (redis-server and redis-cli must be installed; they
are skipped otherwise) and uses the given Redis for the one-server case, under a key
prefix of its own that it deletes afterwards. For each call the store makes per request
(``get`` of a token, ``add`` of a nonce, ``incr`` of a counter, ``put`` of a token with two
tags, ``update`` of a client, ``delete_tagged`` of a family of two) it prints the median
and the 10th percentile in µs, and the round trips each takes (one command or one Lua
script; ``update`` reads, then compares and sets).
"""

from __future__ import annotations

import argparse
import contextlib
import pathlib
import statistics
import sys
import tempfile
import time
import uuid

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "examples"), str(ROOT / "tests"), str(ROOT / "tests" / "store")]

from wsgisec.store import open_backend  # noqa: E402

ROUND_TRIPS = {"get": 1, "add": 1, "incr": 1, "put+2 tags": 1, "update": 2, "delete_tagged": 1}


def measure(store, calls: int) -> dict[str, tuple[float, float]]:
    steps = {
        "get": lambda n: store.get("tokens", "t-1"),
        "add": lambda n: store.add("nonces", f"n-{n}", {}, ttl=60),
        "incr": lambda n: store.incr("failures", "addr:127.0.0.1", 60),
        "put+2 tags": lambda n: store.put("tokens", f"t-{n}", {"type": "access", "n": n}, ttl=60,
                                          tags=["client:c_1", f"family:f-{n // 2}"]),
        "update": lambda n: store.update("clients", "c_1", {"updated": n}),
        "delete_tagged": lambda n: store.delete_tagged("tokens", f"family:f-{n}"),
    }
    store.put("clients", "c_1", {"id": "c_1"})
    results = {}
    for name, step in steps.items():
        times = []
        for number in range(calls):
            start = time.perf_counter()
            step(number)
            times.append((time.perf_counter() - start) * 1e6)
        times.sort()
        results[name] = (statistics.median(times), times[len(times) // 10])
    return results


@contextlib.contextmanager
def prefixed(base: str):
    url = f"{base}{'&' if '?' in base else '?'}prefix=bench-{uuid.uuid4().hex}:"
    store = open_backend(url)
    try:
        yield store
    finally:
        for name in list(store.client.scan_iter(match=store.prefix + "*", count=1000)):
            store.client.delete(name)
        store.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    args = parser.parse_args(argv)
    import store_servers

    rows = {}
    with tempfile.TemporaryDirectory() as scratch, contextlib.ExitStack() as stack:
        scratch = pathlib.Path(scratch)
        sqlite = open_backend("sqlite:///" + str(scratch / "bench.sqlite"))
        rows["sqlite"] = measure(sqlite, args.calls)
        sqlite.close()
        with prefixed(args.redis) as store:
            rows["redis"] = measure(store, args.calls)
        if store_servers.REDIS_SERVER:
            (scratch / "s").mkdir()
            with prefixed(stack.enter_context(store_servers.sentinel(scratch / "s"))) as store:
                rows["redis+sentinel"] = measure(store, args.calls)
            if store_servers.REDIS_CLI:
                (scratch / "c").mkdir()
                with prefixed(stack.enter_context(store_servers.cluster(scratch / "c"))) as store:
                    rows["redis+cluster"] = measure(store, args.calls)
    names = list(ROUND_TRIPS)
    print(f"µs per call, median (p10), {args.calls} calls each, loopback")
    print(f"{'backend':<16}" + "".join(f"{name:>17}" for name in names))
    for backend, results in rows.items():
        print(f"{backend:<16}" + "".join(f"{results[n][0]:>9.0f} ({results[n][1]:>4.0f})" for n in names))
    print(f"{'round trips':<16}" + "".join(f"{ROUND_TRIPS[n]:>17}" for n in names))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
