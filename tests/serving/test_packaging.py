"""Packaging: ``python -m build`` makes an sdist and a wheel; the wheel, installed (not
editable) into a fresh virtualenv, serves and checks an ini file that lives outside the
repository.

Slow by nature (a build, a virtualenv, a pip install of the dependencies: about a minute
on this machine), so it is one test that does it all once.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import socket
import subprocess
import sys
import tarfile
import textwrap
import zipfile

import pytest
import requests

ROOT = pathlib.Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(importlib.util.find_spec("build") is None,
                                reason="packaging test: the 'build' package is not installed (pip install build)")

# Every subpackage the wheel must carry (wsgisec.reports will join them; find: picks it up).
PACKAGES = ["wsgisec", "wsgisec.store", "wsgisec.token_auth", "wsgisec.signed_requests",
            "wsgisec.signed_requests.csrf", "wsgisec.whitelist", "wsgisec.escaping"]

SITE_INI = textwrap.dedent("""\
    [DEFAULT]
    wsgisec_store = sqlite:///var/site.sqlite

    [pipeline:main]
    pipeline = error_masker https token_auth legacy

    [filter:error_masker]
    use = egg:wsgisec#error_masker
    get store = wsgisec_store

    [filter:https]
    use = egg:wsgisec#https
    get store = wsgisec_store
    allowed_hosts = 127.0.0.1
    trusted_proxies = 127.0.0.1
    exempt_paths = /healthz

    [filter:token_auth]
    use = egg:wsgisec#token_auth
    get store = wsgisec_store
    public_paths = /healthz

    [app:legacy]
    use = egg:wsgisec#app
    application = site_app:app
    path = apps
    """)

SITE_APP = textwrap.dedent("""\
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [("hello " + environ.get("REMOTE_USER", "nobody")).encode()]
    """)


def clean_env() -> dict:
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def run(argv, **kwargs):
    result = subprocess.run(argv, capture_output=True, text=True, env=clean_env(), **kwargs)
    assert result.returncode == 0, f"{argv} exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def wait_for(url, process, seconds=30):
    import time

    deadline = time.time() + seconds
    while time.time() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited with {process.returncode}")
        try:
            return requests.get(url, timeout=2)
        except requests.ConnectionError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {seconds}s")


def test_the_wheel_installed_in_a_fresh_venv_checks_and_serves_an_ini_outside_the_repo(tmp_path):
    dist = tmp_path / "dist"
    run([sys.executable, "-m", "build", "--outdir", str(dist), str(ROOT)], timeout=600)
    wheel, = dist.glob("wsgisec-*.whl")
    sdist, = dist.glob("wsgisec-*.tar.gz")
    names = set(zipfile.ZipFile(wheel).namelist())
    for package in PACKAGES:
        assert package.replace(".", "/") + "/__init__.py" in names, package
    assert not any(name.startswith(("tests/", "examples/")) for name in names)
    with tarfile.open(sdist) as archive:
        members = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {"examples/partner_api.ini", "examples/flask_legacy/app.py", "tests/serving/test_packaging.py",
            "README.md", "CHANGELOG.md"} <= members
    assert not any(name.endswith(".sqlite") or "__pycache__" in name for name in members)

    venv = tmp_path / "venv"
    # A venv without its own pip (ensurepip costs seconds); this interpreter's pip installs
    # the wheel and its dependencies into it (pip --python, pip >= 22.3).
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], timeout=120)
    run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q", str(wheel)],
        timeout=600)
    where = run([str(venv / "bin" / "python"), "-c", "import wsgisec; print(wsgisec.__file__)"], cwd=tmp_path)
    assert where.stdout.startswith(str(venv)), where.stdout  # the installed copy, not the source tree

    site = tmp_path / "site"
    (site / "apps").mkdir(parents=True)
    (site / "apps" / "site_app.py").write_text(SITE_APP)
    (site / "api.ini").write_text(SITE_INI)
    wsgisec = str(venv / "bin" / "wsgisec")

    init = subprocess.run([wsgisec, "store", "init", "--config", str(site / "api.ini")], capture_output=True,
                          text=True, cwd="/", env=clean_env(), timeout=120)
    assert init.returncode == 0, init.stderr
    check = subprocess.run([wsgisec, "check", "--config", str(site / "api.ini")], capture_output=True, text=True,
                           cwd="/", env=clean_env(), timeout=120)
    assert check.returncode in (0, 1), check.stderr
    assert f"store: {site / 'var' / 'site.sqlite'} (reachable, writable, schema current)" in check.stdout

    created = run([wsgisec, "client", "create", "--config", str(site / "api.ini"), "--name", "Acme",
                   "--scope", "items:read", "--json"], cwd="/", timeout=120)
    client = json.loads(created.stdout)

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([wsgisec, "serve", str(site / "api.ini"), "--port", str(port)], cwd="/",
                              env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert wait_for(base + "/healthz", server).text == "hello nobody"
        https = {"X-Forwarded-Proto": "https"}
        token = requests.post(base + "/oauth/token", data={"grant_type": "client_credentials"},
                              auth=(client["client_id"], client["client_secret"]), headers=https, timeout=10)
        assert token.status_code == 200, token.text
        call = requests.get(base + "/", timeout=10,
                            headers=dict(https, Authorization="Bearer " + token.json()["access_token"]))
        assert call.status_code == 200 and call.text == f"hello {client['client_id']}"
    finally:
        server.terminate()
        server.wait(15)
        server.stderr.close()
