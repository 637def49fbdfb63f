"""README's "Serving" section: the mod_wsgi script runs as written, the table names each server."""

from __future__ import annotations

import logging
import pathlib
import re

from webtest import TestApp

ROOT = pathlib.Path(__file__).resolve().parents[2]


def serving_section() -> str:
    text = (ROOT / "README.md").read_text()
    return text[text.index("## Serving\n"):text.index("## The store\n")]


def test_readme_names_each_server_with_its_proxy_setting():
    section = serving_section()
    for expected in ("wsgisec serve api.ini", "pserve api.ini", "gunicorn --paste api.ini", "uwsgi --http-socket",
                     "mod_wsgi", "clear_untrusted_proxy_headers = false", "--forwarded-allow-ips",
                     "use = egg:wsgisec#app"):
        assert expected in section, expected


def test_mod_wsgi_script_loads_the_flagship_and_its_logging(examples_copy, monkeypatch):
    script = re.search(r"```python\n(# /srv/api/api.wsgi\n.*?)```", serving_section(), re.S).group(1)
    ini = examples_copy / "partner_api.ini"
    assert 'INI = "/srv/api/api.ini"' in script
    namespace: dict = {}
    monkeypatch.chdir("/")
    root, ours = logging.getLogger(), logging.getLogger("wsgisec")
    saved = root.handlers[:], root.level, ours.handlers[:], ours.level, ours.propagate
    exec(compile(script.replace("/srv/api/api.ini", str(ini)), "api.wsgi", "exec"), namespace)
    try:
        assert logging.getLogger("wsgisec").level == logging.INFO  # [logger_wsgisec]
        app = TestApp(namespace["application"], extra_environ={"REMOTE_ADDR": "127.0.0.1"})
        assert app.get("/healthz").text == "ok\n"
        refused = app.get("/api/items", headers={"X-Forwarded-Proto": "https"}, status=401)
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    finally:
        root.handlers[:], ours.handlers[:] = saved[0], saved[2]
        root.setLevel(saved[1])
        ours.setLevel(saved[3])
        ours.propagate = saved[4]
