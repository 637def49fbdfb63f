"""A redis-server of the test's own, for the store's fault tests (imported as a fixture)."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time

import pytest

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
