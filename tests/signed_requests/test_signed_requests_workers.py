"""Two worker processes (two `wsgisec serve` waitress servers) on one SQLite store: a
signed request accepted by one worker is refused as a replay by the other, because the
nonce is added to the shared store atomically."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import time

import pytest
import requests

from wsgisec.cli import main
from wsgisec.partner import sign_headers

ROOT = pathlib.Path(__file__).resolve().parents[2]
INI = ROOT / "tests" / "ini"
KEYS = {"WSGISEC_TEST_REQUEST_TOKEN_KEY_OLD": "old-key-" + "o" * 32,
        "WSGISEC_TEST_REQUEST_TOKEN_KEY": "new-key-" + "n" * 32}


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url, process, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"worker exited: {process.stdout.read().decode(errors='replace')}")
        try:
            return requests.get(url, timeout=2)
        except requests.ConnectionError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {seconds}s")


@pytest.fixture
def workers(tmp_path, monkeypatch):
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    config = tmp_path / "signed_requests_flask.ini"
    shutil.copy(INI / "signed_requests_flask.ini", config)
    (tmp_path / "var").mkdir()
    env = dict(os.environ, PYTHONPATH=str(ROOT / "examples"), **KEYS)
    processes, bases = [], []
    try:
        for _ in range(2):
            port = free_port()
            process = subprocess.Popen(
                [sys.executable, "-m", "wsgisec.cli", "serve", str(config), "--port", str(port)],
                env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            processes.append(process)
            bases.append(f"http://127.0.0.1:{port}")
        for base, process in zip(bases, processes):
            wait_for(base + "/healthz", process)
        yield str(config), bases, processes
    finally:
        for process in processes:
            process.terminate()
            process.wait(10)


def test_nonce_replayed_on_the_other_worker_is_refused(workers, capsys):
    config, (first, second), processes = workers
    assert processes[0].pid != processes[1].pid
    assert main(["client", "request-token", "acme", "--json", "--config", config]) == 0
    token = json.loads(capsys.readouterr().out)["request_token"]
    assert main(["client", "signing-key", "acme", "--json", "--config", config]) == 0
    key = json.loads(capsys.readouterr().out)

    # Both workers stand behind one name (a load balancer): the signature covers it.
    body = json.dumps({"name": "widget", "price": 2}).encode()
    headers = {"Host": "api.example.com", "X-Request-Token": token, "Content-Type": "application/json"}
    headers.update(sign_headers("POST", "http://api.example.com/api/items", headers, body,
                                keyid=key["keyid"], signing_key=key["key"],
                                components=("@method", "@authority", "@path", "@query", "x-request-token")))

    accepted = requests.post(first + "/api/items", data=body, headers=headers, timeout=10)
    assert accepted.status_code == 201, accepted.text
    replayed = requests.post(second + "/api/items", data=body, headers=headers, timeout=10)
    assert replayed.status_code == 401, replayed.text
    assert replayed.json()["reason"] == "replayed"
    # And the other way round with a fresh nonce: accepted by the second, refused by the first.
    headers.update(sign_headers("POST", "http://api.example.com/api/items", headers, body,
                                keyid=key["keyid"], signing_key=key["key"],
                                components=("@method", "@authority", "@path", "@query", "x-request-token")))
    assert requests.post(second + "/api/items", data=body, headers=headers, timeout=10).status_code == 201
    again = requests.post(first + "/api/items", data=body, headers=headers, timeout=10)
    assert again.status_code == 401 and again.json()["reason"] == "replayed"
