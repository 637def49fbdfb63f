"""Throughput mode (issue 13): the bare app and the flagship under a real server, loaded
from another process on loopback, for a bounded time.

    python benchmarks/bench_throughput.py [--seconds 10] [--connections 2] [--threads 4]
        [--servers gunicorn waitress] [--json PATH] [--profile]

What is served, each in its own server process on a free port:

* ``bare``: the bare WSGI function of ``bench_peers.py`` (``bench_peers:bare``: W1
  answers 200 B of JSON), by module path: ``gunicorn --workers 1`` (sync) and
  ``waitress-serve --threads N``;
* ``flagship``: a copy of examples/partner_api.ini (its own SQLite store in a temporary
  directory; error_masker, https, reports, token_auth, signed_requests, whitelist,
  escaping) around **the same bare function** (so the ratio is the stack's cost, not
  Flask's), with ``bench_peers.bench_rules`` as its OpenAPI document (the example's plus
  the ``id`` query parameter): ``gunicorn --paste --workers 1`` and ``wsgisec serve``
  (waitress, ``threads`` written into the copy's ``[server:main]``).

The request is W1, a real partner call: ``GET /api/items?id=42`` with a bearer token, the
request token and an RFC 9421 signature with a fresh nonce, over plain HTTP from
127.0.0.1 with ``X-Forwarded-Proto: https`` (the TLS proxy the example trusts). Every
request is signed *before* the clock starts (one nonce each, raw request bytes ready to
send), so signing is not measured; the bare app gets the same bytes (it ignores them).

The load generator is ``--connections`` processes (forked from this one; none is the
server), each a closed loop on one connection: send, read the whole response, send the
next. Keep-alive where the server keeps the connection: waitress does; gunicorn's sync
worker answers ``Connection: close`` to every request, so each of its requests pays a
new TCP connection (measured as is: that is what a sync worker costs). A warm-up of
``--warmup`` seconds is not counted.

Reported per (server, app): requests/s, p50/p99 latency (from sending the request to the
last byte of the response, including the connect under gunicorn), status counts, the
server's CPU time per request (utime + stime of the server's process tree, /proc; the
one figure that the other work on a shared machine disturbs least), and the
flagship/bare ratio of requests/s per server (issue 13's target: >= 0.70 under one
gunicorn sync worker). The table goes to stdout and everything to ``--json``.
``--profile`` then reruns the flagship under gunicorn with cProfile in the worker (a
``--config`` file whose ``post_fork`` hook starts it and ``worker_exit`` writes it) and
prints where the worker's time goes. Not a test, and no timed tests.
"""

from __future__ import annotations

import argparse
import collections
import json
import multiprocessing
import os
import pathlib
import pstats
import socket
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path[:0] = [str(HERE)]

from served import BIN, PROXY, Served, flagship_copy, free_port, percentile  # noqa: E402

PATH = "/api/items?id=42"

PROFILE_HOOKS = '''\
import cProfile
import os

_profile = cProfile.Profile()


def post_fork(server, worker):
    _profile.enable()


def worker_exit(server, worker):
    _profile.disable()
    _profile.dump_stats(os.environ["BENCH_THROUGHPUT_PROFILE"])
'''


# -- what is served ----------------------------------------------------------------------

def flagship_ini(threads: int) -> pathlib.Path:
    """A copy of examples/ whose partner_api.ini serves the bare function, with the bench rules."""
    from bench_peers import bench_rules

    ini = flagship_copy({
        "factory = flask_legacy.app:app_factory": f"application = bench_peers:bare\npath = {HERE}",
        "ident =": f"ident =\nthreads = {threads}",
    })
    rules = bench_rules(str(ini.parent))
    text = ini.read_text().replace("rules = %(here)s/partner_api.openapi.yaml", f"rules = {rules}")
    ini.write_text(text)
    return ini


def credentials(ini: pathlib.Path) -> dict:
    """A partner client of the copy's store: access token, request token, signing key."""
    from wsgisec import pipeline
    from wsgisec.signed_requests import SignedRequests
    from wsgisec.token_auth import TokenAuth

    stack = pipeline.load(str(ini))
    token_auth = pipeline.find_layer(stack, TokenAuth)
    signed = pipeline.find_layer(stack, SignedRequests)
    client, _secret = token_auth.registry.create("throughput", scopes=["items:read", "items:write"])
    key = signed.issue_signing_key(client["id"])
    return {"access_token": token_auth.issue_token(client["id"])["access_token"],
            "request_token": signed.issue_request_token(client["id"])[0],
            "keyid": key["keyid"], "key": key["key"]}


def argv_for(server: str, app: str, ini: pathlib.Path, port: int, threads: int, config=None) -> list:
    if server == "gunicorn":
        argv = [str(BIN / "gunicorn"), "--workers", "1", "--worker-class", "sync",
                "--bind", f"127.0.0.1:{port}", "--no-control-socket"]
        if config:
            argv += ["--config", str(config)]
        return argv + (["--paste", str(ini)] if app == "flagship"
                       else ["--pythonpath", str(HERE), "bench_peers:bare"])
    if app == "flagship":
        return [str(BIN / "wsgisec"), "serve", str(ini), "--port", str(port)]
    return [str(BIN / "waitress-serve"), "--host", "127.0.0.1", "--port", str(port),
            f"--threads={threads}", "--ident=", "bench_peers:bare"]


class Server(Served):
    """A server process from its own ``argv`` (bare or flagship); output/stop are Served's."""

    def __init__(self, argv, cwd, env=None):  # not Served.__init__: that one builds its own argv
        self.port = int(argv[argv.index("--port") + 1]) if "--port" in argv else \
            int(argv[argv.index("--bind") + 1].rsplit(":", 1)[1])
        self.log_path = pathlib.Path(cwd) / f"server-{self.port}.log"
        self._log = open(self.log_path, "wb")
        environment = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        environment["PYTHONPATH"] = str(HERE)
        environment.update(env or {})
        self.process = subprocess.Popen(argv, cwd=cwd, env=environment, stdout=self._log,
                                        stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while True:
            if self.process.poll() is not None:
                raise SystemExit(f"server exited:\n{self.output()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
                    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                    if sock.recv(64).startswith(b"HTTP/"):
                        return
            except OSError:
                pass
            if time.time() > deadline:
                raise SystemExit(f"server did not answer:\n{self.output()}")
            time.sleep(0.2)

    def cpu_seconds(self) -> float:
        """utime + stime of the server's process tree (Linux /proc), in seconds."""
        tick = os.sysconf("SC_CLK_TCK")
        total, todo = 0, [self.process.pid]
        while todo:
            pid = todo.pop()
            try:
                fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
                for task in pathlib.Path(f"/proc/{pid}/task").iterdir():
                    todo.extend(int(child) for child in (task / "children").read_text().split())
            except (OSError, IndexError):
                continue
        return total / tick


# -- the requests ------------------------------------------------------------------------

def presigned(creds: dict, port: int, count: int) -> list[bytes]:
    """``count`` raw W1 requests, each with its own nonce (signed now, sent later)."""
    from wsgisec.partner import sign_headers

    authority = f"127.0.0.1:{port}"
    requests = []
    for _ in range(count):
        headers = {"Host": authority, "Authorization": "Bearer " + creds["access_token"],
                   "X-Request-Token": creds["request_token"]}
        headers.update(sign_headers("GET", f"https://{authority}{PATH}", headers, b"",
                                    keyid=creds["keyid"], signing_key=creds["key"], digest=False))
        headers.update(PROXY)
        headers["Accept"] = "application/json"
        lines = [f"GET {PATH} HTTP/1.1"] + [f"{name}: {value}" for name, value in headers.items()]
        requests.append(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    return requests


class Client:
    """One keep-alive connection (reopened whenever the server closes it)."""

    def __init__(self, port: int):
        self.port, self.sock, self.buffer = port, None, b""
        self.connects = 0

    def call(self, request: bytes) -> tuple[int, bytes]:
        if self.sock is None:
            self.sock = socket.create_connection(("127.0.0.1", self.port))
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.buffer = b""
            self.connects += 1
        self.sock.sendall(request)
        while b"\r\n\r\n" not in self.buffer:
            self._recv()
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        fields = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            fields[name.strip().lower()] = value.strip()
        if b"content-length" in fields:
            length = int(fields[b"content-length"])
            while len(rest) < length:
                rest += self._recv(keep=False)
            body, self.buffer = rest[:length], rest[length:]
        elif fields.get(b"transfer-encoding", b"").lower() == b"chunked":
            body, self.buffer = self._chunked(rest)
        else:  # to the end of the connection
            while True:
                data = self.sock.recv(65536)
                if not data:
                    break
                rest += data
            body, self.buffer = rest, b""
            fields[b"connection"] = b"close"
        if fields.get(b"connection", b"").lower() == b"close":
            self.close()
        return status, body

    def _recv(self, keep=True) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("server closed the connection mid-response")
        if keep:
            self.buffer += data
        return data

    def _chunked(self, rest: bytes):
        body = b""
        while True:
            while b"\r\n" not in rest:
                rest += self._recv(keep=False)
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            while len(rest) < size + 2:
                rest += self._recv(keep=False)
            body, rest = body + rest[:size], rest[size + 2:]
            if size == 0:
                return body, rest

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def generator(port, requests, start_at, warmup_until, deadline, results, wrap=False):
    """One closed-loop client process: (status, seconds) of each request after the warm-up;
    ``wrap``: start the pool again when it runs out (the bare app checks no nonce)."""
    client = Client(port)
    samples, first_body, index = [], None, 0
    while time.time() < start_at:
        time.sleep(0.001)
    ran_out = False
    while True:
        now = time.time()
        if now >= deadline:
            break
        if index >= len(requests) and not wrap:
            ran_out = True
            break
        began = time.perf_counter()
        status, body = client.call(requests[index % len(requests)])
        took = time.perf_counter() - began
        index += 1
        if now >= warmup_until:
            samples.append((status, took))
        if first_body is None or (status != 200 and len(first_body) < 400):
            first_body = body[:300]
    client.close()
    results.put({"samples": samples, "ran_out": ran_out, "connects": client.connects, "sent": index,
                 "ended": time.time(),
                 "sample_body": first_body.decode("utf-8", "replace") if first_body else ""})


def load(port: int, pool: list[bytes], connections: int, seconds: float, warmup: float, wrap: bool) -> dict:
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    start_at = time.time() + 0.3
    warmup_until = start_at + warmup
    deadline = warmup_until + seconds
    share = len(pool) // connections
    processes = [context.Process(target=generator, args=(port, pool[n * share:(n + 1) * share], start_at,
                                                          warmup_until, deadline, results, wrap))
                 for n in range(connections)]
    for process in processes:
        process.start()
    outcomes = [results.get() for _ in processes]
    for process in processes:
        process.join()
    return {"outcomes": outcomes, "window": (warmup_until, deadline)}


# -- one measurement ---------------------------------------------------------------------

def measure(server_kind, app, ini, creds, args, config=None, env=None, seconds=None) -> dict:
    port = free_port()
    server = Server(argv_for(server_kind, app, ini, port, args.threads, config), ini.parent, env)
    try:
        # The bare app checks nothing: a small pool, sent round and round. The flagship
        # refuses a nonce seen before: one request each.
        pool = presigned(creds, port, args.pool if app == "flagship" else 2000)
        load_before = os.getloadavg()
        cpu_before = server.cpu_seconds()
        began = time.time()
        outcome = load(port, pool, args.connections, seconds or args.seconds, args.warmup, wrap=(app == "bare"))
        cpu_after = server.cpu_seconds()
        load_after = os.getloadavg()
        del pool
    finally:
        log = server.stop()
    samples = [sample for o in outcome["outcomes"] for sample in o["samples"]]
    ran_out = any(o["ran_out"] for o in outcome["outcomes"])
    # The counted window ends at the deadline, or earlier when a client's pool ran out.
    window = min(seconds or args.seconds, max(o["ended"] for o in outcome["outcomes"]) - outcome["window"][0])
    latencies = [took for _, took in samples]
    statuses = collections.Counter(str(status) for status, _ in samples)
    sent = sum(o["sent"] for o in outcome["outcomes"])
    result = {
        "server": server_kind, "app": app, "seconds": round(window, 2), "requests": len(samples),
        "rps": round(len(samples) / window, 1),
        "p50_ms": round(1000 * percentile(latencies, 0.5), 2),
        "p99_ms": round(1000 * percentile(latencies, 0.99), 2),
        "statuses": dict(statuses),
        "connections": args.connections,
        "tcp_connects": sum(o["connects"] for o in outcome["outcomes"]),
        # The server's CPU over the whole load (warm-up included) per request sent in it.
        "server_cpu_us_per_request": round(1e6 * (cpu_after - cpu_before) / max(1, sent), 1),
        "server_cpu_busy": round((cpu_after - cpu_before) / max(1e-9, time.time() - began), 2),
        "load_average": [round(x, 2) for x in load_before + load_after],
        "pool_ran_out": ran_out,
        "sample_body": next((o["sample_body"] for o in outcome["outcomes"] if o["sample_body"]), ""),
    }
    if ran_out:
        result["note"] = "a client's pre-signed pool ran out before the deadline: raise --pool"
    errors = [line for line in log.splitlines() if "Traceback" in line or " ERROR " in line]
    if errors:
        result["server_errors"] = errors[:5]
    return result


def profile(ini, creds, args) -> str:
    directory = pathlib.Path(tempfile.mkdtemp(prefix="wsgisec-throughput-profile-"))
    config = directory / "profile_hooks.py"
    config.write_text(PROFILE_HOOKS)
    stats_path = directory / "worker.prof"
    result = measure("gunicorn", "flagship", ini, creds, args, config=config,
                     env={"BENCH_THROUGHPUT_PROFILE": str(stats_path)}, seconds=args.profile_seconds)
    for _ in range(50):
        if stats_path.exists():
            break
        time.sleep(0.1)
    stats = pstats.Stats(str(stats_path))
    out = [f"profiled run: {result['requests']} requests, {result['rps']} requests/s under cProfile; "
           f"stats in {stats_path}"]
    import io
    for key in ("tottime", "cumulative"):
        buffer = io.StringIO()
        pstats.Stats(str(stats_path), stream=buffer).sort_stats(key).print_stats(35)
        out.append(buffer.getvalue())
    del stats
    return "\n".join(out)


def table(results: list[dict]) -> str:
    rows = ["| server | app | requests/s | p50 ms | p99 ms | server CPU µs/request | statuses | TCP connects |",
            "|---|---|---:|---:|---:|---:|---|---:|"]
    for r in results:
        statuses = ", ".join(f"{count} × {status}" for status, count in sorted(r["statuses"].items()))
        rows.append(f"| {r['server']} | {r['app']} | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                    f"{r['server_cpu_us_per_request']:.0f} | {statuses} | {r['tcp_connects']} |")
    return "\n".join(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10, help="counted load time per case (default 10)")
    parser.add_argument("--warmup", type=float, default=1, help="uncounted warm-up per case (default 1)")
    parser.add_argument("--connections", type=int, default=2, help="client processes, one connection each")
    parser.add_argument("--threads", type=int, default=4, help="waitress threads (default 4, its default)")
    parser.add_argument("--servers", nargs="+", default=["gunicorn", "waitress"], choices=["gunicorn", "waitress"])
    parser.add_argument("--pool", type=int, default=30000,
                        help="pre-signed requests for each flagship case (default 30000)")
    parser.add_argument("--json", default=os.path.join(tempfile.gettempdir(), "bench_throughput.json"))
    parser.add_argument("--profile", action="store_true", help="then cProfile the gunicorn flagship worker")
    parser.add_argument("--profile-seconds", type=float, default=5)
    args = parser.parse_args(argv)

    ini = flagship_ini(args.threads)
    creds = credentials(ini)
    results, ratios = [], {}
    for server_kind in args.servers:
        measured = {}
        for app in ("bare", "flagship"):
            print(f"{server_kind} {app}: signing, then {args.warmup:g}+{args.seconds:g} s ...",
                  file=sys.stderr, flush=True)
            measured[app] = measure(server_kind, app, ini, creds, args)
            results.append(measured[app])
            print(json.dumps({k: v for k, v in measured[app].items() if k != "sample_body"}),
                  file=sys.stderr, flush=True)
        ratios[server_kind] = {
            "rps": round(measured["flagship"]["rps"] / measured["bare"]["rps"], 3),
            "cpu_per_request": round(measured["flagship"]["server_cpu_us_per_request"]
                                     / measured["bare"]["server_cpu_us_per_request"], 2)}
    print(table(results))
    print()
    for server_kind, ratio in ratios.items():
        print(f"{server_kind}: flagship / bare requests/s = {ratio['rps']:.2f} "
              f"(server CPU per request {ratio['cpu_per_request']:.1f}x)")
    document = {"python": sys.version.split()[0], "cpus": os.cpu_count(), "request": f"GET {PATH}",
                "results": results, "ratios": ratios, "target": "flagship >= 0.70 x bare requests/s, "
                "gunicorn, one sync worker"}
    if args.profile:
        document["profile"] = profile(ini, creds, args)
        print(document["profile"])
    with open(args.json, "w", encoding="utf-8") as out:
        json.dump(document, out, indent=1)
    print(f"\nJSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
