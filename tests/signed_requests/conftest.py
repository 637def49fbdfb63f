"""Fixtures for signed_requests: the flagship served by a real ``wsgisec serve`` process.

* ``flagship``: ``examples/`` copied to a temporary directory (its own SQLite store) and
  ``wsgisec serve partner_api.ini`` started on a free port; :class:`Flagship` runs the
  operator's CLI verbs against the same ini and gets a partner's credentials the way
  README does (client credentials grant over HTTP, ``wsgisec client request-token`` and
  ``wsgisec client signing-key``). The server is stopped after the module.
* :class:`LocalTLSProxy`: a ``requests`` transport adapter that plays the TLS-terminating
  proxy the example trusts on 127.0.0.1: the partner signs and sends ``https://`` URLs,
  the adapter forwards them over plain HTTP with ``X-Forwarded-Proto: https`` (what a
  real proxy adds after the partner signed).
"""

from __future__ import annotations

import contextlib
import io
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
import requests.adapters

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"


class LocalTLSProxy(requests.adapters.HTTPAdapter):
    """Send ``https://`` requests over plain HTTP, as the example's TLS proxy would."""

    def send(self, request, **kwargs):
        request.url = "http://" + request.url[len("https://"):]
        request.headers["X-Forwarded-Proto"] = "https"
        return super().send(request, **kwargs)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Flagship:
    """A served copy of examples/partner_api.ini and the operator's CLI on it."""

    def __init__(self, directory, port, env):
        self.directory = directory
        self.ini = str(directory / "partner_api.ini")
        self.port = port
        self.env = env
        #: What the partner calls (through :class:`LocalTLSProxy`).
        self.url = f"https://127.0.0.1:{port}"

    def cli(self, *args, check=True) -> subprocess.CompletedProcess:
        """``wsgisec ARGS --config INI`` as the operator runs it, in this process (the
        server is the other process; each interpreter start cost ~1 s)."""
        from wsgisec.cli import main

        argv = [*args, "--config", self.ini]
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exit_:  # argparse's usage errors
                code = exit_.code
        result = subprocess.CompletedProcess(["wsgisec", *argv], code or 0, out.getvalue(), err.getvalue())
        if check:
            assert result.returncode == 0, result.stderr
        return result

    def cli_json(self, *args) -> dict:
        return json.loads(self.cli(*args, "--json").stdout)

    def session(self) -> requests.Session:
        session = requests.Session()
        session.mount("https://127.0.0.1:", LocalTLSProxy())
        return session

    def partner(self, name="Acme", scopes="items:read items:write") -> dict:
        """A new client with its secret, request token, signing key and an access token."""
        created = self.cli_json("client", "create", "--name", name,
                                *[arg for scope in scopes.split() for arg in ("--scope", scope)])
        client_id, secret = created["client_id"], created["client_secret"]
        token = self.cli_json("client", "request-token", client_id)
        key = self.cli_json("client", "signing-key", client_id)
        with self.session() as session:
            response = session.post(self.url + "/oauth/token", data={"grant_type": "client_credentials"},
                                    auth=(client_id, secret), timeout=10)
        assert response.status_code == 200, response.text
        return {"client_id": client_id, "client_secret": secret, "request_token": token["request_token"],
                "token_id": token["token_id"], "keyid": key["keyid"], "signing_key": key["key"],
                "access_token": response.json()["access_token"]}


@pytest.fixture(scope="module")
def flagship(tmp_path_factory):
    directory = tmp_path_factory.mktemp("flagship") / "examples"
    shutil.copytree(EXAMPLES, directory, ignore=shutil.ignore_patterns("var", "__pycache__"))
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(directory), WSGISEC_CONFIG="")
    log = open(directory / "server.log", "wb")  # a file, not a pipe: events never block the server
    server = subprocess.Popen([sys.executable, "-m", "wsgisec.cli", "serve", str(directory / "partner_api.ini"),
                               "--port", str(port)], cwd=directory, env=env,
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("wsgisec serve did not start: "
                                       + (directory / "server.log").read_text(errors="replace"))
                time.sleep(0.1)
        yield Flagship(directory, port, env)
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)
        log.close()
