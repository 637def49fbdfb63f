"""The store URL a user writes: relative SQLite paths, a missing redis package, and
``wsgisec check`` opening the store (reachable, writable, schema current)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest

from conftest import REDIS_URL, redis_available
from wsgisec import pipeline
from wsgisec.cli import main
from wsgisec.https import HTTPSOnly
from wsgisec.settings import ConfigurationError
from wsgisec.store import StoreUnavailable, resolve_url
from wsgisec.store.sqlite import SCHEMA_VERSION, SQLiteStore

APP = ("def app(environ, start_response):\n"
       "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
       "    return [b'ok']\n")


def write_ini(directory, store_line: str) -> str:
    """An https layer and a bare app, with ``store_line`` in [DEFAULT]."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "store_url_app.py").write_text(APP)
    ini = directory / "api.ini"
    ini.write_text(f"[DEFAULT]\n{store_line}\n\n[pipeline:main]\npipeline = https app\n\n"
                   "[filter:https]\nuse = egg:wsgisec#https\nget store = wsgisec_store\n"
                   "allowed_hosts = api.example.com\n\n"
                   "[app:app]\nuse = egg:wsgisec#app\napplication = store_url_app:app\n")
    return str(ini)


@pytest.mark.parametrize("url, expected", [
    pytest.param("sqlite:///var/x.sqlite", "sqlite:////srv/api/var/x.sqlite", id="relative"),
    pytest.param("sqlite:///./x.sqlite", "sqlite:////srv/api/x.sqlite", id="dot"),
    pytest.param("sqlite:///../shared/x.sqlite", "sqlite:////srv/shared/x.sqlite", id="parent"),
    pytest.param("sqlite:////var/lib/x.sqlite", "sqlite:////var/lib/x.sqlite", id="absolute-kept"),
    pytest.param("sqlite:///:memory:", "sqlite:///:memory:", id="memory-kept"),
    pytest.param("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0", id="redis-kept"),
])
def test_resolve_url_against_the_ini_directory(url, expected):
    assert resolve_url(url, "/srv/api") == expected


def test_relative_sqlite_path_is_the_same_file_whatever_the_cwd(tmp_path, monkeypatch):
    ini = write_ini(tmp_path / "site", "wsgisec_store = sqlite:///var/rel.sqlite")
    expected = "sqlite:///" + str(tmp_path / "site" / "var" / "rel.sqlite")
    for cwd in ("/", str(tmp_path)):
        monkeypatch.chdir(cwd)
        layer = pipeline.find_layer(pipeline.load(ini), HTTPSOnly)
        assert layer.store.url == expected
    # the CLI, run from yet another directory, creates, opens (and prints) that same file
    created = subprocess.run([sys.executable, "-m", "wsgisec.cli", "store", "init", "--config", ini], cwd="/",
                             capture_output=True, text=True, timeout=60)
    assert created.returncode == 0, created.stderr
    result = subprocess.run([sys.executable, "-m", "wsgisec.cli", "check", ini], cwd="/",
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert f"store: {tmp_path / 'site' / 'var' / 'rel.sqlite'} (reachable, writable, schema current)" in result.stdout
    assert (tmp_path / "site" / "var" / "rel.sqlite").exists()


def test_redis_url_without_the_redis_package_is_a_configuration_error(tmp_path, monkeypatch):
    ini = write_ini(tmp_path, "wsgisec_store = redis://:s3cret@127.0.0.1:6379/0")
    monkeypatch.setitem(sys.modules, "redis", None)  # as if wsgisec[redis] were not installed
    with pytest.raises(ConfigurationError) as error:
        pipeline.load(ini)
    message = str(error.value)
    assert "egg:wsgisec#https" in message and "pip install 'wsgisec[redis]'" in message
    assert "s3cret" not in message


def test_store_init_fails_with_one_line_when_the_directory_cannot_be_made(tmp_path, capsys):
    ini = write_ini(tmp_path, "wsgisec_store = sqlite:////etc/hostname/sub/x.db")
    assert main(["store", "init", "--config", ini]) == 2
    err = capsys.readouterr().err
    assert err == ("wsgisec: store unavailable: sqlite store /etc/hostname/sub/x.db: "
                   "cannot create /etc/hostname/sub: Not a directory\n")


def test_check_fails_when_the_file_is_not_a_database(tmp_path, capsys):
    (tmp_path / "junk.sqlite").write_bytes(b"this is not an SQLite file" * 100)
    ini = write_ini(tmp_path, "wsgisec_store = sqlite:///junk.sqlite")
    assert main(["check", ini]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"wsgisec: store unavailable: sqlite store {tmp_path / 'junk.sqlite'}: ")
    assert "not a database" in err and err.count("\n") == 1


def test_check_fails_when_the_schema_is_newer(tmp_path, capsys):
    SQLiteStore(str(tmp_path / "new.sqlite")).close()
    with sqlite3.connect(tmp_path / "new.sqlite") as connection:
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    ini = write_ini(tmp_path, "wsgisec_store = sqlite:///new.sqlite")
    assert main(["check", ini]) == 2
    assert "was written by a newer wsgisec" in capsys.readouterr().err


def test_check_fails_when_a_table_is_not_ours(tmp_path, capsys):
    with sqlite3.connect(tmp_path / "other.sqlite") as connection:
        connection.execute("CREATE TABLE kv (k TEXT, v TEXT)")
    ini = write_ini(tmp_path, "wsgisec_store = sqlite:///other.sqlite")
    assert main(["check", ini]) == 2
    assert "table kv has columns ['k', 'v'], expected ['ns', 'key', 'value', 'expires']" in capsys.readouterr().err


def test_check_fails_when_redis_is_unreachable(tmp_path, capsys):
    pytest.importorskip("redis", reason="the redis package is part of wsgisec[test]")
    ini = write_ini(tmp_path, "wsgisec_store = redis://:s3cret@127.0.0.1:1/0")
    assert main(["check", ini]) == 2
    err = capsys.readouterr().err
    assert err.startswith("wsgisec: store unavailable: redis store redis://:***@127.0.0.1:1/0: ConnectionError")
    assert "s3cret" not in err


def test_check_opens_a_reachable_redis(tmp_path, capsys):
    reason = redis_available()
    if reason:
        pytest.skip(reason)
    ini = write_ini(tmp_path, f"wsgisec_store = {REDIS_URL}")
    code = main(["check", ini])
    out = capsys.readouterr().out
    assert f"store: {REDIS_URL} (reachable, writable, schema current)" in out
    # the only warning allowed: a test Redis that keeps nothing on disk (tests/store/test_faults.py)
    assert code == (1 if "keeps nothing on disk" in out or "keeps only RDB snapshots" in out else 0)


def test_opening_an_impossible_path_is_store_unavailable_not_oserror(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreUnavailable, match="cannot create"):
        SQLiteStore(str(tmp_path / "file" / "sub" / "x.sqlite"))
