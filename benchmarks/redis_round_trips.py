"""Round trips to Redis per flagship request (issue 13: at most two for a signed,
bearer-authenticated request).

    python benchmarks/redis_round_trips.py [--redis redis://127.0.0.1:6379/0] [--requests 20]

Builds the flagship of ``bench_peers`` (examples/partner_api.ini, every layer) on Redis
under a key prefix of its own (deleted afterwards), sends W1 (``GET /api/items?id=42``)
and W2 (``POST /api/items``, 1 KB of JSON), each signed with a fresh nonce, and counts
what reached the server: socket writes of redis-py connections (one per command, or per
pipeline: a round trip each) and the commands themselves (``INFO commandstats`` deltas).
The first requests of each workload warm whatever the store caches; the counts are of
the later ones.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import tempfile
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import redis  # noqa: E402
from redis.connection import AbstractConnection  # noqa: E402

from bench_peers import POST_BODY, Pool, flagship, templates  # noqa: E402
from bench_stack import signed_pool  # noqa: E402
from harness import _call  # noqa: E402

WARM = 3


class Counter:
    """Counts round trips: every ``send_packed_command`` of every redis-py connection
    (``send_command`` ends in it; a pipeline sends once)."""

    def __init__(self):
        self.sent = 0

    @contextlib.contextmanager
    def installed(self):
        original = AbstractConnection.send_packed_command

        def counting(connection, command, check_health=True):
            self.sent += 1
            return original(connection, command, check_health)

        AbstractConnection.send_packed_command = counting
        try:
            yield self
        finally:
            AbstractConnection.send_packed_command = original


def command_stats(client) -> dict[str, int]:
    return {name[len("cmdstat_"):] if name.startswith("cmdstat_") else name: int(fields["calls"])
            for name, fields in client.info("commandstats").items()}


def delta(before, after):
    return {name: after[name] - before.get(name, 0) for name in after if after[name] != before.get(name, 0)}


def prefixed(url: str, prefix: str) -> str:
    return url + ("&" if "?" in url else "?") + "prefix=" + prefix


def drop(client, prefix: str) -> None:
    names = list(client.scan_iter(match=prefix + "*", count=1000))
    for start in range(0, len(names), 500):
        client.delete(*names[start:start + 500])


def measure(url: str, requests: int) -> dict:
    """``{workload: {"round_trips": per request, "commands": {name: per request}}}``."""
    prefix = f"wsgisec-rtt-{uuid.uuid4().hex[:8]}:"
    admin = redis.Redis.from_url(url.partition("?")[0])
    directory = tempfile.mkdtemp(prefix="wsgisec-rtt-")
    try:
        stack, credentials = flagship(directory, prefixed(url, prefix))
        template_of = templates(credentials["access_token"])
        pools = {"W1": ("GET", "/api/items?id=42", b""), "W2": ("POST", "/api/items", POST_BODY)}
        found = {}
        for workload, (method, path, body) in pools.items():
            app = Pool(stack, signed_pool(credentials, method, path, body, size=WARM + requests))
            template, expect = template_of[workload]
            for _ in range(WARM):
                assert _call(app, template).startswith(expect)
            counter = Counter()
            before = command_stats(admin)
            with counter.installed():
                for _ in range(requests):
                    status = _call(app, template)
                    if not status.startswith(expect):
                        raise SystemExit(f"redis_round_trips: {workload} answered {status}, not {expect}")
            commands = delta(before, command_stats(admin))
            commands.pop("info", None)
            found[workload] = {"round_trips": counter.sent / requests,
                               "commands": {name: calls / requests for name, calls in sorted(commands.items())}}
        return found
    finally:
        drop(admin, prefix)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis", default=os.environ.get("WSGISEC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--requests", type=int, default=20)
    args = parser.parse_args(argv)
    logging.disable(logging.CRITICAL)
    found = measure(args.redis, args.requests)
    for workload, row in found.items():
        commands = ", ".join(f"{name} {calls:g}" for name, calls in row["commands"].items())
        print(f"{workload}: {row['round_trips']:g} round trips per request ({commands})")
    print(json.dumps(found))


if __name__ == "__main__":
    main()
