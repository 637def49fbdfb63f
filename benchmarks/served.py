"""The flagship (examples/partner_api.ini) served by a real server process, for the
load benchmarks (``soak.py``, ``bench_hash_flood.py``); not a test helper.

* :func:`flagship_copy`: examples/ copied to a temporary directory (its own SQLite store),
  optionally with ini lines replaced;
* :class:`Served`: ``wsgisec serve`` (waitress) or ``gunicorn --paste --workers N`` on a
  free port, output kept in a log file, RSS of the whole process tree;
* :class:`Partner`: a client with its secret, signing key and request token, calling
  through plain HTTP with ``X-Forwarded-Proto: https`` (the TLS proxy the example trusts
  on 127.0.0.1), each thread on its own keep-alive ``http.client`` connection.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from urllib.parse import urlencode

ROOT = pathlib.Path(__file__).resolve().parents[1]
BIN = pathlib.Path(sys.executable).parent
sys.path.insert(0, str(ROOT))

from wsgisec import pipeline  # noqa: E402
from wsgisec.partner import sign_headers  # noqa: E402
from wsgisec.testing import partner_credentials  # noqa: E402
from wsgisec.token_auth import TokenAuth  # noqa: E402

PROXY = {"X-Forwarded-Proto": "https"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def flagship_copy(replace: dict | None = None) -> pathlib.Path:
    """A temporary copy of examples/; returns the path of its partner_api.ini."""
    target = pathlib.Path(tempfile.mkdtemp(prefix="wsgisec-bench-")) / "examples"
    shutil.copytree(ROOT / "examples", target, ignore=shutil.ignore_patterns("__pycache__", "var", "*.sqlite*"))
    ini = target / "partner_api.ini"
    text = ini.read_text()
    for old, new in (replace or {}).items():
        assert old in text, old
        text = text.replace(old, new)
    ini.write_text(text)
    return ini


def rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` and all its descendants, in KiB (Linux /proc)."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            status = pathlib.Path(f"/proc/{current}/status").read_text()
            total += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))
            for task in pathlib.Path(f"/proc/{current}/task").iterdir():
                todo.extend(int(child) for child in (task / "children").read_text().split())
        except (OSError, StopIteration):
            continue
    return total


class Served:
    """One server process on the flagship copy ``ini``."""

    def __init__(self, kind: str, ini: pathlib.Path, workers: int = 2):
        self.kind, self.ini, self.port = kind, ini, free_port()
        if kind == "waitress":
            argv = [str(BIN / "wsgisec"), "serve", str(ini), "--port", str(self.port)]
        elif kind == "gunicorn":
            argv = [str(BIN / "gunicorn"), "--paste", str(ini), "--bind", f"127.0.0.1:{self.port}",
                    "--workers", str(workers), "--no-control-socket"]
        else:
            raise ValueError(kind)
        env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
        self.log_path = ini.parent / f"{kind}.log"
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(argv, cwd=ini.parent, env=env, stdout=self._log,
                                        stderr=subprocess.STDOUT)
        self._wait()

    def _wait(self, seconds: float = 60) -> None:
        deadline = time.time() + seconds
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.kind} exited:\n{self.output()}")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                connection.request("GET", "/healthz")
                connection.getresponse().read()
                connection.close()
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"{self.kind} did not answer:\n{self.output()}")

    def rss_kib(self) -> int:
        return rss_kib(self.process.pid)

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._log.close()
        return self.log_path.read_text(errors="replace")


class Partner:
    """A partner client of the served flagship (created through the same ini's store)."""

    def __init__(self, ini: pathlib.Path, name: str = "bench",
                 scopes=("items:read", "items:write")):
        app = pipeline.load(str(ini))
        layer = pipeline.find_layer(app, TokenAuth)
        record, self.secret = layer.registry.create(name, scopes=list(scopes))
        self.client_id = record["id"]
        self.credentials = partner_credentials(app, self.client_id)
        self.access_token = None

    def basic(self) -> str:
        return basic_auth(self.client_id, self.secret)


def basic_auth(client_id: str, secret: str) -> str:
    """``Authorization: Basic`` for client credentials (RFC 6749 §2.3.1)."""
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


class Connection:
    """A keep-alive connection to the server, from ``source`` (a loopback address)."""

    def __init__(self, port: int, source: str | None = None, timeout: float = 30):
        self.port, self.source, self.timeout = port, source, timeout
        self.authority = f"127.0.0.1:{port}"
        self._connection = None

    def request(self, method: str, path: str, headers: dict, body: bytes = b"") -> tuple[int, dict, bytes]:
        for attempt in (1, 2):
            if self._connection is None:
                self._connection = http.client.HTTPConnection(
                    "127.0.0.1", self.port, timeout=self.timeout,
                    source_address=(self.source, 0) if self.source else None)
            try:
                self._connection.request(method, path, body=body or None, headers=headers)
                response = self._connection.getresponse()
                data = response.read()
                if response.getheader("Connection", "").lower() == "close":
                    self.close()
                return response.status, dict(response.getheaders()), data
            except (http.client.HTTPException, ConnectionError):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    # -- what a partner sends --------------------------------------------------------------

    def token(self, authorization: str) -> tuple[int, dict, bytes]:
        body = urlencode({"grant_type": "client_credentials"}).encode()
        return self.request("POST", "/oauth/token", dict(PROXY, **{
            "Authorization": authorization, "Content-Type": "application/x-www-form-urlencoded"}), body)

    def signed(self, partner: Partner, method: str, path: str, body: bytes = b"",
               content_type: str | None = None) -> tuple[dict, bytes]:
        """Headers and body of a fresh signed call (sign once, send it once or more)."""
        headers = {"Host": self.authority, "Authorization": "Bearer " + partner.access_token,
                   "X-Request-Token": partner.credentials["request_token"]}
        if content_type:
            headers["Content-Type"] = content_type
        headers.update(sign_headers(method, f"https://{self.authority}{path}", headers, body,
                                    keyid=partner.credentials["keyid"],
                                    signing_key=partner.credentials["signing_key"]))
        headers.update(PROXY)
        return headers, body


def fetch_token(connection: Connection, partner: Partner) -> None:
    status, _, data = connection.token(partner.basic())
    if status != 200:
        raise RuntimeError(f"token request answered {status}: {data[:200]!r}")
    partner.access_token = json.loads(data)["access_token"]


def percentile(values, fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]
