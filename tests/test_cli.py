"""The wsgisec command: check (exit 0/1/2) and serve (a real waitress, as README runs it)."""

import os
import pathlib
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from conftest import EXAMPLES, ROOT
from wsgisec.cli import main

INI = pathlib.Path(__file__).parent / "ini"


def test_check_clean_config_exits_0(capsys):
    assert main(["check", str(INI / "check_clean.ini")]) == 0
    out = capsys.readouterr().out
    assert out.index("1. error_masker") < out.index("2. https") < out.index("3. application")
    assert 'allowed_hosts = ["api.example.com"]' in out
    assert "no warnings" in out


def test_check_insecure_config_exits_1_and_names_each_problem(capsys):
    assert main(["check", str(INI / "check_insecure.ini")]) == 1
    out = capsys.readouterr().out
    for expected in ("debug is on", "HSTS max-age is short", "redirect is off", "allowed_hosts contains *",
                     "error_masker is not the outermost layer", "pipeline order is https -> error_masker"):
        assert expected in out, expected


def test_check_configuration_error_exits_2(capsys):
    assert main(["check", str(INI / "bad_duration.ini")]) == 2
    assert "hsts_max_age = '1 year' is not valid" in capsys.readouterr().err


def test_check_flagship_example_lists_every_layer(capsys, tmp_path, monkeypatch):
    code = main(["check", str(EXAMPLES / "partner_api.ini")])
    out = capsys.readouterr().out
    assert code in (0, 1)
    assert out.startswith(f"{EXAMPLES / 'partner_api.ini'} [main], outermost first:")
    assert "1. error_masker" in out and "application: <Flask 'flask_legacy.app'>" in out


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url, seconds=20):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            return urllib.request.urlopen(url, timeout=2)
        except urllib.error.HTTPError as error:
            return error
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {seconds}s")


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


@pytest.fixture
def served(tmp_path):
    """`wsgisec serve` on a copy of an example ini, in a subprocess, on a free port."""
    processes = []

    def serve(ini):
        shutil.copy(EXAMPLES / ini, tmp_path / ini)
        port = free_port()
        env = dict(os.environ, PYTHONPATH=str(EXAMPLES))
        process = subprocess.Popen(
            [sys.executable, "-m", "wsgisec.cli", "serve", str(tmp_path / ini), "--port", str(port)],
            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        processes.append(process)
        wait_for(f"http://127.0.0.1:{port}/healthz")
        return f"http://127.0.0.1:{port}"

    serve.processes = processes
    yield serve
    for process in processes:
        process.terminate()
        process.wait(10)


def test_serve_runs_a_real_server_with_masking_and_redirects(served):
    exercise(served("pyramid_legacy.ini"))


def exercise(base):
    """Talk to a served pyramid_legacy.ini as a client would; returns the 500's incident id."""
    health = urllib.request.urlopen(base + "/healthz")
    assert health.read() == b"ok\n"
    assert "Server" not in health.headers  # neither the app's nor waitress' own

    opener = urllib.request.build_opener(NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as redirect:
        opener.open(base + "/api/orders?sku=W-1")
    assert redirect.value.code == 308
    assert redirect.value.headers["Location"] == "https://127.0.0.1/api/orders?sku=W-1"

    request = urllib.request.Request(base + "/api/report", headers={"X-Forwarded-Proto": "https"})
    with pytest.raises(urllib.error.HTTPError) as failed:
        urllib.request.urlopen(request)
    body = failed.value.read().decode()
    assert failed.value.code == 500 and "monthly_report" not in body
    incident = failed.value.headers["X-Incident-Id"]
    assert incident in body
    return incident


def test_serve_logs_through_the_ini_logging_sections(served):
    incident = exercise(served("pyramid_legacy.ini"))
    process = served.processes[-1]
    process.terminate()
    output = process.communicate(timeout=10)[0].decode()
    # [formatter_plain] of pyramid_legacy.ini, and the operator gets the detail
    assert 'ERROR [wsgisec.events.error_masker] {"kind":"error_masker.exception-masked"' in output
    assert f"incident {incident}" in output and "monthly_report" in output


def test_serve_reports_a_configuration_error(tmp_path):
    result = subprocess.run([sys.executable, "-m", "wsgisec.cli", "serve", str(INI / "unknown_key.ini")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "unknown setting hsts_maxage" in result.stderr
