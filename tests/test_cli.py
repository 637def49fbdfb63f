"""The wsgisec command: check (exit 0/1/2) and serve (a real waitress, as README runs it)."""

import json
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

from conftest import EXAMPLES, ROOT, init_store
from wsgisec.cli import main

INI = pathlib.Path(__file__).parent / "ini"


def test_check_clean_config_exits_0(capsys):
    init_store(INI / "check_clean.ini")
    assert main(["check", str(INI / "check_clean.ini")]) == 0
    out = capsys.readouterr().out
    assert out.index("1. error_masker") < out.index("2. https") < out.index("3. application")
    assert 'allowed_hosts = ["api.example.com"]' in out
    assert "no warnings" in out


def test_check_insecure_config_exits_1_and_names_each_problem(capsys):
    init_store(INI / "check_insecure.ini")
    assert main(["check", str(INI / "check_insecure.ini")]) == 1
    out = capsys.readouterr().out
    for expected in ("debug is on", "HSTS max-age is short", "redirect is off", "allowed_hosts contains *",
                     "error_masker is not the outermost layer", "pipeline order is https -> error_masker"):
        assert expected in out, expected


def test_check_configuration_error_exits_2(capsys):
    assert main(["check", str(INI / "bad_duration.ini")]) == 2
    assert "hsts_max_age = '1 year' is not valid" in capsys.readouterr().err


def test_check_flagship_example_lists_every_layer(capsys, tmp_path, monkeypatch):
    init_store(EXAMPLES / "partner_api.ini")
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


# -- a user's mistake: one line, exit 2, never a traceback ----------------------------

def run_cli(*argv, cwd=ROOT, env=None, timeout=60):
    return subprocess.run([sys.executable, "-m", "wsgisec.cli", *argv], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=env)


def bare_ini(tmp_path, use="egg:wsgisec#https", app="use = egg:wsgisec#app\napplication = json:dumps"):
    ini = tmp_path / "api.ini"
    ini.write_text(f"[pipeline:main]\npipeline = first app\n\n[filter:first]\nuse = {use}\n"
                   f"store = sqlite:///var/api.sqlite\n\n[app:app]\n{app}\n")
    return str(ini)


def test_unknown_layer_name_exits_2_naming_the_known_layers(tmp_path):
    result = run_cli("check", bare_ini(tmp_path, use="egg:wsgisec#htps"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1
    assert "use = egg:wsgisec#htps: no such wsgisec layer; the layers are " in result.stderr
    for name in ("error_masker", "https", "token_auth", "signed_requests", "csrf", "whitelist", "escaping"):
        assert name in result.stderr


def test_unknown_package_exits_2(tmp_path, capsys):
    assert main(["check", bare_ini(tmp_path, use="egg:no_such_dist#https")]) == 2
    assert "no installed package named 'no_such_dist'" in capsys.readouterr().err


@pytest.mark.parametrize("app", [
    pytest.param("use = call:no_such_legacy.app:app_factory", id="call"),
    pytest.param("use = egg:wsgisec#app\nfactory = no_such_legacy.app:app_factory", id="egg-wsgisec-app"),
])
def test_unimportable_app_exits_2_naming_the_module_and_sys_path(tmp_path, app):
    result = run_cli("check", bare_ini(tmp_path, app=app))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "cannot import 'no_such_legacy" in result.stderr and "sys.path is " in result.stderr
    assert str(tmp_path) in result.stderr  # the ini's directory was searched


def test_missing_ini_file_exits_2(tmp_path, capsys):
    assert main(["check", str(tmp_path / "nope.ini")]) == 2
    assert capsys.readouterr().err == f"wsgisec: configuration error: {tmp_path / 'nope.ini'}: no such ini file\n"


def test_busy_port_exits_2_with_one_line(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli("serve", bare_ini(tmp_path), "--port", str(port))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"wsgisec: cannot listen on 127.0.0.1:{port}: Address already in use" in result.stderr


def test_unusable_store_for_an_operator_verb_exits_2(tmp_path):
    ini = tmp_path / "api.ini"
    ini.write_text("[pipeline:main]\npipeline = token_auth app\n\n[filter:token_auth]\nuse = egg:wsgisec#token_auth\n"
                   "store = sqlite:////etc/hostname/sub/x.db\n\n[app:app]\nuse = egg:wsgisec#app\n"
                   "application = json:dumps\n")
    result = run_cli("client", "list", "--config", str(ini))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    # The suggested command names the ini file that was given, ready to paste.
    assert result.stderr == ("wsgisec: store unavailable: sqlite store /etc/hostname/sub/x.db: no such file; "
                             f"create it with `wsgisec store init --config {ini}` (or start `wsgisec serve`)\n")
    result = run_cli("store", "init", "--config", str(ini))  # the verb that may create it says why it cannot
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr == ("wsgisec: store unavailable: sqlite store /etc/hostname/sub/x.db: "
                             "cannot create /etc/hostname/sub: Not a directory\n")


# -- --version, --config and $WSGISEC_CONFIG for every verb ---------------------------

def test_version(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out == f"wsgisec {version('wsgisec')}\n"


@pytest.mark.parametrize("how", ["argument", "option", "environment"])
def test_check_finds_the_ini_as_argument_option_or_environment(how, capsys, monkeypatch):
    config = str(INI / "check_clean.ini")
    monkeypatch.delenv("WSGISEC_CONFIG", raising=False)
    argv = {"argument": ["check", config], "option": ["check", "--config", config], "environment": ["check"]}[how]
    if how == "environment":
        monkeypatch.setenv("WSGISEC_CONFIG", config)
    init_store(config)
    assert main(argv) == 0
    assert capsys.readouterr().out.startswith(f"{config} [main], outermost first:")


def test_check_never_creates_a_missing_store(tmp_path, capsys):
    """An operator's check of a deployment whose store file is gone must say so, not
    hand the servers a new empty store (issue 14); `wsgisec store init` creates it."""
    config = bare_ini(tmp_path)
    assert main(["check", config]) == 2
    assert f"no such file; create it with `wsgisec store init --config {config}`" in capsys.readouterr().err
    assert not (tmp_path / "var" / "api.sqlite").exists()
    init_store(config)
    assert main(["check", config]) in (0, 1)
    assert "reachable, writable, schema current" in capsys.readouterr().out


def test_check_without_an_ini_file_says_how_to_give_one(capsys, monkeypatch):
    monkeypatch.delenv("WSGISEC_CONFIG", raising=False)
    with pytest.raises(SystemExit) as done:
        main(["check"])
    assert done.value.code == 2
    assert "the ini file is required: CONFIG, --config CONFIG or $WSGISEC_CONFIG" in capsys.readouterr().err


def test_serve_takes_config_from_the_environment(tmp_path):
    with socket.socket() as busy:  # the quickest way to see which file it loaded: it stops at the bind
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli("serve", "--port", str(port), env=dict(os.environ, WSGISEC_CONFIG=bare_ini(tmp_path)))
    assert result.returncode == 2
    assert f"wsgisec: serving {tmp_path / 'api.ini'} on http://127.0.0.1:{port}/" in result.stderr


def test_usage_shows_config_optional_only_when_the_variable_is_set(monkeypatch):
    from wsgisec.cli import build

    def usage():
        return build().subparsers.choices["client"]._subparsers._group_actions[0].choices["list"].format_usage()

    monkeypatch.delenv("WSGISEC_CONFIG", raising=False)
    assert " --config CONFIG " in usage() and "[--config CONFIG]" not in usage()
    monkeypatch.setenv("WSGISEC_CONFIG", "/srv/api.ini")
    assert "[--config CONFIG]" in usage()


def test_generated_ids_never_begin_with_a_dash(tmp_path):
    """An id starting with '-' would be read as an option (``client revoke-request-token -x``)."""
    from wsgisec.credentials import new_id
    from wsgisec.signed_requests import SignedRequests
    from wsgisec.store.sqlite import SQLiteStore

    assert all(not new_id("rt_").startswith("-") for _ in range(2000))
    with pytest.raises(ValueError):
        new_id("-x")
    layer = SignedRequests(None, secret_keys=["k" * 32], store=SQLiteStore(str(tmp_path / "s.sqlite")))
    for _ in range(300):  # about 1 in 64 of the old unprefixed ids began with '-'
        assert not layer.issue_request_token("c_0123456789abcdef")[1]["token_id"].startswith("-")
        assert not layer.issue_signing_key("c_0123456789abcdef")["keyid"].startswith("-")


def test_a_request_token_id_is_revoked_without_double_dash(tmp_path, capsys):
    shutil.copytree(EXAMPLES, tmp_path / "examples", ignore=shutil.ignore_patterns("__pycache__", "var"))
    config = str(tmp_path / "examples" / "partner_api.ini")
    init_store(config)
    assert main(["client", "create", "--config", config, "--name", "Acme", "--scope", "items:read", "--json"]) == 0
    client_id = json.loads(capsys.readouterr().out)["client_id"]
    assert main(["client", "request-token", client_id, "--config", config, "--json"]) == 0
    token_id = json.loads(capsys.readouterr().out)["token_id"]
    assert token_id.startswith("rt_")
    assert main(["client", "revoke-request-token", token_id, "--config", config]) == 0
    assert f"request token {token_id} revoked" in capsys.readouterr().out
