"""egg:wsgisec#app: the legacy app imported relative to the ini file, whatever the cwd."""

from __future__ import annotations

import sys

import pytest

from wsgisec import pipeline
from wsgisec.settings import ConfigurationError


def write_app(tmp_path, module_name="bare_legacy_app"):
    (tmp_path / "apps").mkdir()
    (tmp_path / "apps" / f"{module_name}.py").write_text(
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [b'legacy']\n"
        "def app_factory(global_conf, greeting='hi'):\n"
        "    app.greeting = greeting\n"
        "    return app\n")


def test_factory_is_imported_from_a_path_relative_to_the_ini(tmp_path, monkeypatch):
    write_app(tmp_path, "rel_factory_app")
    (tmp_path / "app.ini").write_text(
        "[app:main]\nuse = egg:wsgisec#app\nfactory = rel_factory_app:app_factory\npath = apps\ngreeting = hello\n")
    monkeypatch.chdir("/")
    monkeypatch.setattr(sys, "path", list(sys.path))
    from paste.deploy import loadapp

    app = loadapp("config:" + str(tmp_path / "app.ini"))  # as gunicorn and pserve load it
    assert app.greeting == "hello"
    assert str(tmp_path / "apps") in sys.path


def test_application_names_a_wsgi_callable(tmp_path, monkeypatch):
    write_app(tmp_path, "rel_callable_app")
    (tmp_path / "app.ini").write_text(
        "[app:main]\nuse = egg:wsgisec#app\napplication = rel_callable_app:app\npath = apps\n")
    monkeypatch.setattr(sys, "path", list(sys.path))
    app = pipeline.load(str(tmp_path / "app.ini"))
    assert app.__name__ == "app"


@pytest.mark.parametrize("section, expected", [
    pytest.param("factory = no_such_legacy_module:app_factory",
                 "cannot import 'no_such_legacy_module' (No module named 'no_such_legacy_module'); sys.path is ",
                 id="missing-module"),
    pytest.param("factory = json:no_such_factory", "module 'json' (", id="missing-attribute"),
    pytest.param("factory = json", "'json' is not module:attribute", id="not-module-attribute"),
    pytest.param("", "set exactly one of factory = module:app_factory or application = module:app",
                 id="neither"),
    pytest.param("application = json:dumps\nextra = 1", "unknown setting extra", id="settings-for-a-callable"),
])
def test_mistakes_are_configuration_errors_naming_the_fix(tmp_path, monkeypatch, section, expected):
    monkeypatch.setattr(sys, "path", list(sys.path))
    (tmp_path / "app.ini").write_text(f"[app:main]\nuse = egg:wsgisec#app\n{section}\n")
    with pytest.raises(ConfigurationError) as error:
        pipeline.load(str(tmp_path / "app.ini"))
    assert expected in str(error.value)
    assert str(tmp_path / "app.ini") in str(error.value)
    if "sys.path" in expected:
        assert str(tmp_path) in str(error.value)  # the ini's directory was searched
