"""What the store's fault tests share: a redis-server of the test's own (a fixture to
import), and a partner of the flagship stack (signed, with a bearer token)."""

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
