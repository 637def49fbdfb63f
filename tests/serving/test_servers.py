"""The flagship example served as-is by gunicorn --paste, pserve and uWSGI, from the repository root.

Each test starts the real server on a free port (a temporary copy of examples/, so the
SQLite store is the test's own), fetches an access token through a request that the
trusted local proxy marked ``X-Forwarded-Proto: https``, and makes a signed partner call.
"""

from __future__ import annotations

import pathlib
import re
import socket
import sys

import pytest
import requests

from wsgisec import pipeline
from wsgisec.partner import PartnerAuth
from wsgisec.testing import partner_credentials
from wsgisec.token_auth import TokenAuth

PROXY_HEADERS = {"X-Forwarded-Proto": "https"}
BIN = pathlib.Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def exercise_flagship(base: str, ini) -> None:
    """What a partner does through a TLS-terminating proxy on 127.0.0.1."""
    app = pipeline.load(str(ini))  # the same ini, so the same store file as the server
    layer = pipeline.find_layer(app, TokenAuth)
    record, secret = layer.registry.create("Acme", scopes=["items:read"])

    # Without the proxy's header the token request is plain HTTP: refused, secret not echoed.
    plain = requests.post(base + "/oauth/token", data={"grant_type": "client_credentials"},
                          auth=(record["id"], secret), timeout=10)
    assert plain.status_code == 403 and secret not in plain.text

    token = requests.post(base + "/oauth/token", data={"grant_type": "client_credentials"},
                          auth=(record["id"], secret), headers=PROXY_HEADERS, timeout=10)
    assert token.status_code == 200, token.text
    access = token.json()["access_token"]
    bearer = dict(PROXY_HEADERS, Authorization="Bearer " + access)

    # token_auth accepted the bearer token; the example also wants the partner's signature.
    unsigned = requests.get(base + "/api/items", headers=bearer, timeout=10)
    assert unsigned.status_code == 401 and unsigned.json()["reason"] == "signature-missing"

    credentials = partner_credentials(app, record["id"])
    sign = PartnerAuth(base, client_id=record["id"], keyid=credentials["keyid"],
                       signing_key=credentials["signing_key"], request_token=credentials["request_token"])
    signed = requests.get(base + "/api/items", headers=bearer, auth=sign, timeout=10)
    assert signed.status_code == 200 and "Widget" in signed.text
    assert signed.headers["Strict-Transport-Security"].startswith("max-age=")
    whoami = requests.get(base + "/api/whoami", headers=bearer, auth=sign, timeout=10)
    assert whoami.json() == {"user": record["id"], "scopes": "items:read"}


def test_gunicorn_paste_serves_the_flagship(examples_copy, start_server):
    port = free_port()
    ini = examples_copy / "partner_api.ini"
    # The README's command, relative path included, run beside the copy of examples/.
    server = start_server([str(BIN / "gunicorn"), "--paste", "examples/partner_api.ini", "--bind",
                           f"127.0.0.1:{port}", "--workers", "1", "--no-control-socket"],
                          f"http://127.0.0.1:{port}/healthz", cwd=examples_copy.parent)
    exercise_flagship(f"http://127.0.0.1:{port}", ini)
    output = server.stop()
    # gunicorn --paste reads the ini's [loggers] sections: the events are logged as configured.
    assert re.search(r'CRITICAL \[wsgisec\.events\.https\] \{"kind":"https\.credentials-over-plaintext"', output), output


def test_pserve_serves_the_flagship_with_server_main(examples_copy, start_server):
    port = free_port()
    ini = examples_copy / "partner_api.ini"
    # [server:main] as written, on a free port instead of 8080.
    text = ini.read_text()
    assert "\nport = 8080\n" in text
    ini.write_text(text.replace("\nport = 8080\n", f"\nport = {port}\n"))
    server = start_server([str(BIN / "pserve"), str(ini)], f"http://127.0.0.1:{port}/healthz")
    exercise_flagship(f"http://127.0.0.1:{port}", ini)
    health = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
    assert "Server" not in health.headers  # ident = (empty) in [server:main]
    output = server.stop()
    assert re.search(r'CRITICAL \[wsgisec\.events\.https\] \{"kind":"https\.credentials-over-plaintext"', output), output


def test_uwsgi_paste_serves_the_flagship(examples_copy, start_server):
    uwsgi = BIN / "uwsgi"  # pyuwsgi, in the test extra: uWSGI as a binary wheel
    if not uwsgi.exists():
        pytest.skip("uWSGI test: no uwsgi next to this Python (pip install pyuwsgi)")
    port = free_port()
    ini = examples_copy / "partner_api.ini"
    server = start_server([str(uwsgi), "--http-socket", f"127.0.0.1:{port}", "--paste", f"config:{ini}",
                           "--paste-logger", "--master", "--processes", "1", "--die-on-term", "--need-app",
                           "--disable-logging"], f"http://127.0.0.1:{port}/healthz")
    exercise_flagship(f"http://127.0.0.1:{port}", ini)
    output = server.stop()
    assert re.search(r'CRITICAL \[wsgisec\.events\.https\] \{"kind":"https\.credentials-over-plaintext"', output), output
