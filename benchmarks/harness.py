"""Measure what a layer costs per request, against the bare app, in one run.

Each case calls a WSGI app directly with a fresh copy of a prepared environ, consumes and
closes the body, and reports the best of several rounds (the least disturbed by the rest
of the machine) as microseconds per request, with the ratio to the bare app measured in
the same run. No server and no sockets: this isolates the middleware's own cost.

    from harness import Case, run
    run([Case("https: redirect", app, environ), ...], bare=Case("bare app", legacy, environ))
"""

from __future__ import annotations

import io
import itertools
import sys
import time
from dataclasses import dataclass, field
from wsgiref.util import setup_testing_defaults


def environ_for(path="/", method="GET", body=b"", headers=None, https=True, **extra) -> dict:
    path, _, query = path.partition("?")
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query,
               "SERVER_NAME": "localhost", "SERVER_PORT": "443" if https else "80",
               "HTTP_HOST": "localhost", "REMOTE_ADDR": "127.0.0.1",
               "wsgi.url_scheme": "https" if https else "http", "CONTENT_LENGTH": str(len(body)),
               "wsgi.input": body}
    for name, value in (headers or {}).items():
        key = name.upper().replace("-", "_")
        environ[key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key] = value
    environ.update(extra)
    setup_testing_defaults(environ)
    return environ


class Rotating:
    """Give each call the next pre-signed headers (a fresh nonce), then call ``app``."""

    def __init__(self, app, pool):
        self.app = app
        self.pool = itertools.cycle(pool)

    def __call__(self, environ, start_response):
        environ.update(next(self.pool))
        return self.app(environ, start_response)


@dataclass
class Case:
    name: str
    app: object
    environ: dict
    expect_status: str = "200"
    result: float = field(default=0.0, init=False)


def _call(app, template):
    environ = dict(template)
    body = template["wsgi.input"]
    environ["wsgi.input"] = io.BytesIO(body if isinstance(body, bytes) else b"")
    status = []

    def start_response(s, headers, exc_info=None):
        status.append(s)
        return lambda data: None

    iterable = app(environ, start_response)
    try:
        for _ in iterable:
            pass
    finally:
        close = getattr(iterable, "close", None)
        if close:
            close()
    return status[0]


def measure(case: Case, rounds: int = 5, min_time: float = 0.2) -> float:
    status = _call(case.app, case.environ)
    if not status.startswith(case.expect_status):
        raise SystemExit(f"{case.name}: expected {case.expect_status}, got {status}")
    # Calibrate the loop so one round lasts about min_time seconds.
    count = 1
    while True:
        start = time.perf_counter()
        for _ in range(count):
            _call(case.app, case.environ)
        elapsed = time.perf_counter() - start
        if elapsed >= min_time / 4:
            break
        count *= 2
    count = max(1, int(count * (min_time / max(elapsed, 1e-9))))
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(count):
            _call(case.app, case.environ)
        best = min(best, (time.perf_counter() - start) / count)
    case.result = best * 1e6
    return case.result


def run(cases, bare: Case, out=sys.stdout) -> list:
    """Measure the bare app and every case; print a table; return rows."""
    measure(bare)
    rows = []
    print(f"{'case':58} {'µs/request':>11} {'ratio':>7} {'added µs':>9}", file=out)
    print(f"{bare.name:58} {bare.result:11.1f} {1.0:7.2f} {0.0:9.1f}", file=out)
    for case in cases:
        measure(case)
        ratio = case.result / bare.result
        rows.append((case.name, case.result, ratio, case.result - bare.result))
        print(f"{case.name:58} {case.result:11.1f} {ratio:7.2f} {case.result - bare.result:9.1f}", file=out)
    return rows
