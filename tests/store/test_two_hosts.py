"""Two hosts, one Redis: two ``wsgisec serve`` processes of the flagship (examples/
partner_api.ini, copied, its store pointed at the test Redis under a key prefix of this
test's own) behind one name, as a load balancer puts them. Whatever one host learns
(a token issued, a token revoked, a nonce used, a failed login counted) binds the other
at once: nothing is cached per process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid

import pytest
import requests

from conftest import EXAMPLES, REDIS_URL, redis_available
from serving.conftest import wait_for
from serving.test_servers import free_port
from wsgisec import pipeline
from wsgisec.partner import DEFAULT_COMPONENTS, sign_headers
from wsgisec.testing import partner_credentials
from wsgisec.token_auth import TokenAuth

# Both hosts stand behind one name and one TLS-terminating proxy (127.0.0.1).
FRONT = {"Host": "localhost", "X-Forwarded-Proto": "https"}
MAX_FAILED = 4


class Host:
    def __init__(self, ini, log):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
        env["PYTHONPATH"] = str(ini.parent)  # the legacy Flask app of the copied examples/
        self._log = open(log, "wb")
        self.process = subprocess.Popen([sys.executable, "-m", "wsgisec.cli", "serve", str(ini),
                                         "--port", str(self.port)], cwd=ini.parent, env=env,
                                        stdout=self._log, stderr=subprocess.STDOUT)
        self.process.output = lambda: log.read_text(errors="replace")

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self._log.close()


@pytest.fixture(scope="module")
def hosts(tmp_path_factory):
    reason = redis_available()
    if reason:
        pytest.skip(f"two hosts on one Redis need a real server: {reason}")
    import redis

    directory = tmp_path_factory.mktemp("two-hosts") / "examples"
    shutil.copytree(EXAMPLES, directory, ignore=shutil.ignore_patterns("var", "__pycache__"))
    prefix = f"wsgisec-test-{uuid.uuid4().hex}:"
    url = f"{REDIS_URL}{'&' if '?' in REDIS_URL else '?'}prefix={prefix}"
    ini = directory / "partner_api.ini"
    text = ini.read_text()
    assert "wsgisec_store = sqlite:///%(here)s/var/wsgisec.sqlite\n" in text
    assert "\nmax_failed_auth = 10\n" in text
    text = text.replace("wsgisec_store = sqlite:///%(here)s/var/wsgisec.sqlite\n", f"wsgisec_store = {url}\n")
    ini.write_text(text.replace("\nmax_failed_auth = 10\n", f"\nmax_failed_auth = {MAX_FAILED}\n"))
    started = [Host(ini, directory / f"host-{n}.log") for n in range(2)]
    try:
        for host in started:
            wait_for(host.base + "/healthz", host.process)
        yield ini, started
    finally:
        for host in started:
            host.stop()
        client = redis.Redis.from_url(REDIS_URL)
        stale = list(client.scan_iter(match=prefix + "*", count=1000))
        if stale:
            client.delete(*stale)


@pytest.fixture(scope="module")
def partner(hosts):
    """A client of the shared store, made by the operator (in this process), and its
    signing key and request token."""
    ini, _ = hosts
    app = pipeline.load(str(ini))
    record, secret = pipeline.find_layer(app, TokenAuth).registry.create("Acme", scopes=["items:read"])
    return dict(partner_credentials(app, record["id"]), secret=secret)


def token(host, partner, secret=None):
    return requests.post(host.base + "/oauth/token", data={"grant_type": "client_credentials"},
                         auth=(partner["client_id"], secret or partner["secret"]), headers=FRONT, timeout=30)


def signed_get(partner, access):
    """The headers of one signed ``GET /api/items`` (one nonce), sendable to either host."""
    headers = dict(FRONT, Authorization="Bearer " + access, **{"X-Request-Token": partner["request_token"]})
    headers.update(sign_headers("GET", "http://localhost/api/items", headers, b"", keyid=partner["keyid"],
                                signing_key=partner["signing_key"], components=DEFAULT_COMPONENTS))
    return headers


def test_a_token_issued_by_one_host_works_on_the_other(hosts, partner):
    _, (first, second) = hosts
    issued = token(first, partner)
    assert issued.status_code == 200, issued.text
    answer = requests.get(second.base + "/api/items", headers=signed_get(partner, issued.json()["access_token"]),
                          timeout=10)
    assert answer.status_code == 200 and "Widget" in answer.text, answer.text


def test_a_revocation_on_one_host_is_refused_by_the_other_at_once(hosts, partner):
    _, (first, second) = hosts
    access = token(second, partner).json()["access_token"]
    assert requests.get(first.base + "/api/items", headers=signed_get(partner, access), timeout=10).status_code == 200
    revoked = requests.post(second.base + "/oauth/revoke", data={"token": access},
                            auth=(partner["client_id"], partner["secret"]), headers=FRONT, timeout=30)
    assert revoked.status_code == 200, revoked.text
    refused = requests.get(first.base + "/api/items", headers=signed_get(partner, access), timeout=10)
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_token", refused.text
    assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]


def test_a_nonce_used_on_one_host_is_a_replay_on_the_other(hosts, partner):
    _, (first, second) = hosts
    headers = signed_get(partner, token(first, partner).json()["access_token"])
    assert requests.get(first.base + "/api/items", headers=headers, timeout=10).status_code == 200
    replayed = requests.get(second.base + "/api/items", headers=headers, timeout=10)
    assert replayed.status_code == 401 and replayed.json()["reason"] == "replayed", replayed.text


def test_failed_logins_count_across_both_hosts(hosts, partner):
    """max_failed_auth failures split over two hosts lock the address out on both."""
    _, (first, second) = hosts
    for number in range(MAX_FAILED):
        wrong = token((first, second)[number % 2], partner, secret="not-the-secret")
        assert wrong.status_code == 401, wrong.text
    for host in (first, second):
        locked = token(host, partner)  # even the right secret, while the address is locked
        assert locked.status_code == 429, locked.text
        assert int(locked.headers["Retry-After"]) > 0
