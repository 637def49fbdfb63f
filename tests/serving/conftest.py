"""Fixtures for the server tests: a temporary copy of examples/ and real server processes.

* ``examples_copy``: examples/ copied to a temporary directory (so each test has its own
  SQLite store under ``var/``), the ini files unchanged.
* ``start_server(argv, url, cwd=ROOT)``: runs a server command (from the repository root
  unless told otherwise) with no
  ``PYTHONPATH`` help, waits until ``url`` answers, and stops it after the test; the
  process's output is kept for assertions (``process.output()``).
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(sys.executable).parent


def wait_for(url: str, process, seconds: float = 30) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited with {process.returncode}:\n{process.output()}")
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {seconds}s:\n{process.output()}")


class Server:
    """A server subprocess whose combined output goes to a file."""

    def __init__(self, argv, log_path: pathlib.Path, env: dict, cwd=ROOT):
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        self.returncode = None

    def poll(self):
        self.returncode = self.process.poll()
        return self.returncode

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._log.close()
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def examples_copy(tmp_path) -> pathlib.Path:
    target = tmp_path / "examples"
    shutil.copytree(ROOT / "examples", target, ignore=shutil.ignore_patterns("__pycache__", "var", "*.sqlite*"))
    return target


@pytest.fixture
def start_server(tmp_path):
    servers: list[Server] = []

    def start(argv, url: str, cwd=ROOT) -> Server:
        # As a user starts it: no PYTHONPATH pointing at examples/ (pytest's own
        # pythonpath setting is not inherited by a subprocess, but an outer one would be).
        env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
        env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
        server = Server(argv, tmp_path / f"server-{len(servers)}.log", env, cwd)
        servers.append(server)
        wait_for(url, server)
        return server

    yield start
    for server in servers:
        server.stop()
