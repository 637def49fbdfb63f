"""An unusable store while serving: the layers' 503 problem response and a logged event,
never the server's generic 500 (issue 10: ``sqlite:////etc/hostname/sub/x.db``)."""

from __future__ import annotations

import pathlib
import socket
import sys

import requests

BIN = pathlib.Path(sys.executable).parent
BAD_STORE = "sqlite:////etc/hostname/sub/x.db"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_store_gives_503_problems_and_logged_events(examples_copy, start_server):
    ini = examples_copy / "partner_api.ini"
    text = ini.read_text()
    default = "wsgisec_store = sqlite:///%(here)s/var/wsgisec.sqlite\n"
    assert default in text
    ini.write_text(text.replace(default, f"wsgisec_store = {BAD_STORE}\n"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server([str(BIN / "wsgisec"), "serve", str(ini), "--port", str(port)], base + "/healthz")
    https = {"X-Forwarded-Proto": "https", "Accept": "application/json"}

    token = requests.post(base + "/oauth/token", data={"grant_type": "client_credentials"},
                          auth=("c_anyone", "secret"), headers=https, timeout=10)
    api = requests.get(base + "/api/items", headers=dict(https, Authorization="Bearer " + "a" * 43), timeout=10)
    for response in (token, api):
        assert response.status_code == 503, response.text
        assert response.headers["Content-Type"].startswith("application/problem+json")
        problem = response.json()
        assert problem["status"] == 503 and problem["incident_id"] == response.headers["X-Incident-Id"]
        assert "sqlite" not in response.text and "/etc/hostname" not in response.text  # no internals
    output = server.stop()
    assert "wsgisec: warning: store unavailable: sqlite store /etc/hostname/sub/x.db" in output  # at start-up
    assert '"code":"store-unavailable"' in output
    assert "sqlite store /etc/hostname/sub/x.db: cannot create /etc/hostname/sub: Not a directory" in output
    assert "Internal Server Error" not in output and "Traceback" not in output
