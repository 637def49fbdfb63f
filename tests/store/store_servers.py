"""What the store's tests share: a redis-server of the test's own, a local Redis Cluster
and a Sentinel (session fixtures, where the binaries are installed), ``every_store`` (the
suite's ``store`` over SQLite, the test Redis, the Cluster and the Sentinel), and a
partner of the flagship stack (signed, with a bearer token)."""

from __future__ import annotations

import atexit
import contextlib
import shutil
import signal
import socket
import subprocess
import time

import pytest

from conftest import REDIS_URL, redis_available, open_test_store

REDIS_SERVER = shutil.which("redis-server")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def own_redis(tmp_path):
    """A redis-server of this test's own on a free loopback port (nothing on disk)."""
    if REDIS_SERVER is None:
        pytest.skip("needs the redis-server binary (apt-get install redis-server)")
    pytest.importorskip("redis")
    port = _free_port()
    process = subprocess.Popen([REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no", "--dir", str(tmp_path)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import redis

    client = redis.Redis(port=port, socket_connect_timeout=0.2)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    yield port, process
    process.send_signal(signal.SIGCONT)
    process.kill()  # a throwaway server: nothing of it needs to reach the disk
    process.wait(10)


VIA_TLS_PROXY = {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_PROTO": "https", "HTTP_HOST": "localhost"}


def flagship_partner(stack):
    """A PartnerTestApp on the flagship ``stack``: a client with items:read and
    items:write, a bearer token, a request token and a signing key, via the TLS proxy."""
    from conftest import validated
    from wsgisec import pipeline
    from wsgisec.testing import PartnerTestApp, partner_credentials
    from wsgisec.token_auth import TokenAuth

    token_auth = pipeline.find_layer(stack, TokenAuth)
    client, _secret = token_auth.registry.create("Acme", scopes=["items:read", "items:write"])
    access_token = token_auth.issue_token(client["id"])["access_token"]
    return PartnerTestApp(validated(stack), **partner_credentials(stack, client["id"]),
                          access_token=access_token, extra_environ=dict(VIA_TLS_PROXY))


@pytest.fixture
def stack(load_example):
    """The flagship, examples/partner_api.ini, on this test's SQLite store."""
    return load_example("partner_api.ini")


@pytest.fixture
def partner(stack):
    """A partner of the flagship ``stack`` (:func:`flagship_partner`)."""
    return flagship_partner(stack)


# -- a local Redis Cluster and a Sentinel, once per test session (issue 14) -----------

REDIS_CLI = shutil.which("redis-cli")


def _cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too."""
    import random

    for _ in range(200):
        port = random.randint(20000, 29999)
        try:
            for candidate in (port, port + 10000):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


def _wait(check, what: str, seconds: float = 20):
    deadline = time.monotonic() + seconds
    while True:
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - not up yet, whatever the client says
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not come up within {seconds}s")
        time.sleep(0.05)


def _servers(directory, commands):
    processes = []
    for number, argv in enumerate(commands):
        home = directory / str(number)
        home.mkdir()
        processes.append(subprocess.Popen(argv, cwd=home, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return processes


def _stop(processes):
    for process in processes:
        process.kill()  # throwaway servers: nothing of them needs to reach the disk
    for process in processes:
        process.wait(10)


@contextlib.contextmanager
def cluster(directory):
    """A Redis Cluster of three masters (no replicas) on loopback ports, in ``directory``:
    yields its ``redis+cluster://`` URL (also used by benchmarks/bench_store_backends.py)."""
    import redis

    ports = [_cluster_port() for _ in range(3)]
    processes = _servers(directory, [[REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1",
                                      "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                                      "--cluster-node-timeout", "5000", "--save", "", "--appendonly", "no"]
                                     for port in ports])
    try:
        for port in ports:
            _wait(redis.Redis(port=port, socket_connect_timeout=0.2).ping, f"cluster node {port}")
        subprocess.run([REDIS_CLI, "--cluster", "create", *[f"127.0.0.1:{port}" for port in ports],
                        "--cluster-replicas", "0", "--cluster-yes"], check=True, capture_output=True, timeout=60)
        for port in ports:
            node = redis.Redis(port=port, decode_responses=True)
            _wait(lambda: node.cluster("info").get("cluster_state") == "ok", f"cluster state on {port}")
        yield "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in ports[:2]) + "/"
    finally:
        _stop(processes)


@contextlib.contextmanager
def sentinel(directory):
    """One Sentinel watching one master (service ``mymaster``), in ``directory``: yields
    its ``redis+sentinel://`` URL."""
    import redis

    master, port = _free_port(), _free_port()
    config = directory / "sentinel.conf"  # Sentinel rewrites its own configuration file
    config.write_text(f"port {port}\nbind 127.0.0.1\nsentinel monitor mymaster 127.0.0.1 {master} 1\n"
                      "sentinel down-after-milliseconds mymaster 5000\n")
    processes = _servers(directory, [[REDIS_SERVER, "--port", str(master), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no"],
                                     [REDIS_SERVER, str(config), "--sentinel"]])
    try:
        _wait(redis.Redis(port=master, socket_connect_timeout=0.2).ping, "the Sentinel's master")
        probe = redis.Redis(port=port, socket_connect_timeout=0.2)
        _wait(lambda: probe.execute_command("SENTINEL", "get-master-addr-by-name", "mymaster"), "the Sentinel")
        yield f"redis+sentinel://127.0.0.1:{port}/mymaster/0"
    finally:
        _stop(processes)


_RUNNING: dict = {}


def _once(name, servers, tmp_path_factory) -> str:
    """Start ``servers`` (cluster or sentinel) once per test process; stopped at its exit.

    The session fixtures below are imported into several modules, and an imported fixture
    is a fixture of each module: without this, each module would start its own Cluster.
    """
    if name not in _RUNNING:
        running = servers(tmp_path_factory.mktemp(f"redis-{name}"))
        _RUNNING[name] = running.__enter__()
        atexit.register(running.__exit__, None, None, None)
    return _RUNNING[name]


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory):
    """``redis+cluster://`` URL of a local Cluster, once per session (skips without the binaries)."""
    if REDIS_SERVER is None or REDIS_CLI is None:
        pytest.skip("needs the redis-server and redis-cli binaries (apt-get install redis-server)")
    pytest.importorskip("redis")
    return _once("cluster", cluster, tmp_path_factory)


@pytest.fixture(scope="session")
def redis_sentinel(tmp_path_factory):
    """``redis+sentinel://`` URL of a local Sentinel, once per session (skips without redis-server)."""
    if REDIS_SERVER is None:
        pytest.skip("needs the redis-server binary (apt-get install redis-server)")
    pytest.importorskip("redis")
    return _once("sentinel", sentinel, tmp_path_factory)

@pytest.fixture(name="store", params=["sqlite", "redis", "redis-cluster", "redis-sentinel"])
def every_store(request, tmp_path):
    """The suite's ``store`` over SQLite, the test Redis, the local Cluster and Sentinel."""
    cluster_or_sentinel = request.param.startswith("redis-")
    url = request.getfixturevalue(request.param.replace("-", "_")) if cluster_or_sentinel else None
    with open_test_store("redis" if cluster_or_sentinel else request.param, tmp_path, url) as backend:
        yield backend
