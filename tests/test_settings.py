"""Settings parsing: typed values, and one clear ConfigurationError at load time."""

import ipaddress
import pathlib

import pytest

from wsgisec import settings
from wsgisec.settings import ConfigurationError, Secret

INI = pathlib.Path(__file__).parent / "ini"


@pytest.mark.parametrize("text, expected", [
    pytest.param("300", 300, id="bare-seconds"),
    pytest.param("300s", 300, id="seconds"),
    pytest.param("15m", 900, id="minutes"),
    pytest.param(" 1h ", 3600, id="hours-padded"),
    pytest.param("30d", 2592000, id="days"),
])
def test_duration(text, expected):
    assert settings.duration(text) == expected


@pytest.mark.parametrize("text", ["15 minutes", "1.5h", "-5m", "", "m", "10w"])
def test_duration_refuses(text):
    with pytest.raises(ValueError, match="15m"):
        settings.duration(text)


@pytest.mark.parametrize("text, expected", [
    ("512", 512), ("64KB", 65536), ("1MB", 1048576), ("1mib", 1048576), ("2 GB", 2 * 1024**3)])
def test_size(text, expected):
    assert settings.size(text) == expected


@pytest.mark.parametrize("text", ["1MB ; note", "1.5MB", "lots"])
def test_size_refuses_inline_comments_and_junk(text):
    with pytest.raises(ValueError):
        settings.size(text)


@pytest.mark.parametrize("text, expected", [
    ("true", True), ("Yes", True), ("on", True), ("1", True),
    ("false", False), ("NO", False), ("off", False), ("0", False)])
def test_boolean(text, expected):
    assert settings.boolean(text) is expected


@pytest.mark.parametrize("text", ["ture", "y", "enabled", ""])
def test_boolean_unknown_word_is_an_error_not_false(text):
    with pytest.raises(ValueError):
        settings.boolean(text)


def test_words_and_lines():
    assert settings.words("a b\n c,d") == ("a", "b", "c", "d")
    assert settings.lines("\nGET /a x:read\n\n  POST /b x:write \n") == ("GET /a x:read", "POST /b x:write")


def test_cidrs():
    nets = settings.cidrs("10.0.0.0/8 192.168.1.7 ::1")
    assert nets[0] == ipaddress.ip_network("10.0.0.0/8")
    assert ipaddress.ip_address("192.168.1.7") in nets[1]
    with pytest.raises(ValueError, match="nope"):
        settings.cidrs("10.0.0.0/8 nope")


def test_path_prefixes_and_matching():
    prefixes = settings.path_prefixes("/healthz /static/")
    assert settings.path_matches("/healthz", prefixes)
    assert settings.path_matches("/healthz/db", prefixes)
    assert settings.path_matches("/static/app.js", prefixes)
    assert not settings.path_matches("/healthzz", prefixes)
    with pytest.raises(ValueError):
        settings.path_prefixes("healthz")


def test_secret_from_env(monkeypatch):
    monkeypatch.setenv("WSGISEC_TEST_KEY", "k" * 32)
    value = settings.secret("env:WSGISEC_TEST_KEY")
    assert value.reveal() == "k" * 32 and value.source == "env"
    assert "k" * 32 not in repr(value) and "k" * 32 not in str(value)


def test_secret_from_file(tmp_path):
    path = tmp_path / "key"
    path.write_text("s" * 40 + "\n")
    value = settings.secret(f"file:{path}")
    assert value.reveal() == "s" * 40 and value.source == "file"


@pytest.mark.parametrize("text, message", [
    ("env:WSGISEC_SURELY_UNSET", "not set"),
    ("file:/nonexistent/key", "cannot be read"),
    ("short", "at least 16 bytes"),
])
def test_secret_errors(text, message):
    with pytest.raises(ValueError, match=message):
        settings.secret(text)


def test_secret_list_keeps_order(monkeypatch):
    monkeypatch.setenv("OLD_KEY", "o" * 32)
    monkeypatch.setenv("NEW_KEY", "n" * 32)
    keys = settings.secret_list("env:OLD_KEY env:NEW_KEY")
    assert [key.reveal()[0] for key in keys] == ["o", "n"]


SPEC = {
    "token_ttl": (settings.duration, "15m"),
    "debug": (settings.boolean, "false"),
    "signing_key": (settings.optional(settings.secret), None),
}


def test_parse_applies_defaults_and_types():
    values = settings.parse("demo", SPEC, {"debug": "on"})
    assert values == {"token_ttl": 900, "debug": True}


def test_parse_rejects_unknown_keys_naming_them_and_the_known_ones():
    with pytest.raises(ConfigurationError) as info:
        settings.parse("demo", SPEC, {"tokn_ttl": "5m"}, {"__file__": "/srv/api.ini"})
    message = str(info.value)
    assert "egg:wsgisec#demo (/srv/api.ini)" in message
    assert "tokn_ttl" in message and "token_ttl" in message


def test_parse_error_names_filter_file_key_value_and_fix():
    with pytest.raises(ConfigurationError) as info:
        settings.parse("demo", SPEC, {"token_ttl": "15 minutes"}, {"__file__": "/srv/api.ini"})
    assert str(info.value) == ("egg:wsgisec#demo (/srv/api.ini): token_ttl = '15 minutes' is not valid; "
                               "expected a duration; write 300s, 15m, 1h or 30d")


def test_parse_error_never_shows_a_secret_value():
    with pytest.raises(ConfigurationError) as info:
        settings.parse("demo", SPEC, {"signing_key": "tooshort"})
    assert "tooshort" not in str(info.value) and "<redacted>" in str(info.value)


def test_default_store_url_is_beside_the_ini():
    assert settings.default_store_url({"here": "/srv/api"}) == "sqlite:////srv/api/wsgisec.sqlite"
    assert settings.default_store_url({}) is None


def test_secret_repr_is_redacted():
    assert repr(Secret("x" * 20)) == "Secret('***')"


@pytest.mark.parametrize("ini, message", [
    pytest.param("bad_duration.ini", "hsts_max_age = '1 year' is not valid", id="bad-duration"),
    pytest.param("unknown_key.ini", "unknown setting hsts_maxage", id="unknown-key"),
    pytest.param("inline_comment.ini", "max_scan_size = '1MB ; scan less' is not valid", id="inline-comment"),
    pytest.param("bad_boolean.ini", "debug = 'ture' is not valid", id="bad-boolean"),
    pytest.param("preload_without_subdomains.ini", "hsts_preload needs", id="preload-rules"),
])
def test_bad_ini_files_fail_at_load_time(ini, message):
    from wsgisec import pipeline

    with pytest.raises(ConfigurationError, match=message) as info:
        pipeline.load(str(INI / ini))
    assert str(INI / ini) in str(info.value)


@pytest.mark.parametrize("global_conf, expected", [
    pytest.param({"here": "/srv", "store": "redis://cache:6379/0"}, "redis://cache:6379/0", id="default-store"),
    pytest.param({"here": "/srv", "wsgisec_store": "sqlite:////data/s.sqlite"}, "sqlite:////data/s.sqlite",
                 id="default-wsgisec-store"),
    pytest.param({"here": "/srv"}, "sqlite:////srv/wsgisec.sqlite", id="beside-the-ini"),
])
def test_store_in_default_section_is_not_silently_lost(global_conf, expected):
    assert settings.default_store_url(global_conf) == expected


def test_a_setting_hidden_by_default_section_is_warned_about(caplog):
    settings.parse("demo", SPEC, {}, {"__file__": "/srv/api.ini", "token_ttl": "1h"})
    assert "token_ttl is set in [DEFAULT]" in caplog.text and "get token_ttl = token_ttl" in caplog.text


def test_default_store_section_reaches_every_layer(tmp_path):
    """`[DEFAULT] store = ...` (the issue's wording) must reach all layers, not only `get`."""
    from wsgisec import pipeline

    ini = tmp_path / "api.ini"
    ini.write_text((INI / "default_store.ini").read_text())
    (tmp_path / "wsgisec_test_apps.py").write_text((INI / "wsgisec_test_apps.py").read_text())
    app = pipeline.load(str(ini))
    urls = {layer.store.url for layer in pipeline.layers(app)[:-1]}
    assert urls == {"sqlite:///" + str(tmp_path / "shared" / "one.sqlite")}
