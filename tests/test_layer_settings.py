"""Every layer declares a setting once: the SETTINGS table is the source, and this test
proves that ``__init__``, the effective settings ``wsgisec check`` prints and the
docstring agree with it (issue 9: a setting written four times drifts)."""

import importlib
import inspect

import pytest

from wsgisec import settings

LAYERS = [
    ("wsgisec.errors", "ErrorMasker"),
    ("wsgisec.https", "HTTPSOnly"),
    ("wsgisec.token_auth", "TokenAuth"),
    ("wsgisec.signed_requests", "SignedRequests"),
    ("wsgisec.signed_requests.csrf", "BrowserCSRF"),
    ("wsgisec.whitelist", "Whitelist"),
    ("wsgisec.escaping", "Escaping"),
    ("wsgisec.reports", "Reports"),
]


# Keyword arguments that are deliberately not ini settings: hooks for Python callers and
# tests (a clock, a passlib context, the CSRF half's settings handed on as one dict).
PYTHON_ONLY = {"clock", "crypt_context", "csrf_kwargs"}


# BrowserCSRF on its own shares its keys and store with nothing; `wsgisec check` shows
# them where signed_requests runs it, so its own view lists only the csrf_* settings.
SHOWN_BY_THE_OUTER_LAYER = {"wsgisec.signed_requests.csrf": {"secret_keys", "store"}}


def _table(module_name, *, with_csrf=False):
    """The settings the layer's own filter_factory parses (``with_csrf``: and hands on to
    the CSRF half it runs, which documents them)."""
    module = importlib.import_module(module_name)
    table = dict(module.SETTINGS)
    if with_csrf and module_name == "wsgisec.signed_requests":
        table.update(importlib.import_module("wsgisec.signed_requests.csrf").SETTINGS)
    if module_name == "wsgisec.signed_requests.csrf":  # standalone: its own keys and store
        table.update(secret_keys=(settings.optional(settings.secret_list), None),
                     store=(settings.optional(settings.store_url), None))
    return table


def _layer(module_name, class_name):
    module = importlib.import_module(module_name)
    return module, getattr(module, class_name)


def _keywords(layer_class):
    parameters = inspect.signature(layer_class.__init__).parameters
    return {name: p for name, p in parameters.items() if name not in ("self", "app")}


@pytest.mark.parametrize("module_name, class_name", LAYERS, ids=[c for _, c in LAYERS])
def test_init_takes_exactly_the_declared_settings(module_name, class_name):
    module, layer_class = _layer(module_name, class_name)
    assert set(_keywords(layer_class)) - PYTHON_ONLY == set(_table(module_name))


@pytest.mark.parametrize("module_name, class_name", LAYERS, ids=[c for _, c in LAYERS])
def test_init_defaults_are_the_declared_defaults(module_name, class_name):
    module, layer_class = _layer(module_name, class_name)
    table = _table(module_name)
    for name, parameter in _keywords(layer_class).items():
        if parameter.default is inspect.Parameter.empty or name in PYTHON_ONLY:
            continue  # required (the factory always passes it) or not an ini setting
        parser, text = table[name]
        declared = None if text is None else parser(text)
        if isinstance(declared, settings.Secret) or isinstance(parameter.default, settings.Secret):
            continue  # secrets compare by value only through reveal(); no default secret exists
        default = parameter.default
        if isinstance(default, str) and text is not None and _comparable(declared) != _comparable(default):
            default = parser(default)  # __init__ also takes the ini spelling ("60/1m")
        assert _comparable(declared) == _comparable(default), name


def _comparable(value):
    """Compare what a setting means, not its Python spelling ("301" and 301, None and ())."""
    if value is None:
        return []
    if isinstance(value, (list, tuple, set, frozenset)):
        return sorted(map(str, value))
    return str(value)


@pytest.mark.parametrize("module_name, class_name", LAYERS, ids=[c for _, c in LAYERS])
def test_effective_settings_name_every_declared_setting(module_name, class_name, tmp_path):
    module, layer_class = _layer(module_name, class_name)
    table = _table(module_name, with_csrf=True)
    kw = settings.parse(layer_class.wsgisec_layer, table, _required(module_name, tmp_path), {})
    layer = layer_class(None, **kw)
    assert set(layer.settings) == set(table) - SHOWN_BY_THE_OUTER_LAYER.get(module_name, set())


@pytest.mark.parametrize("module_name, class_name", LAYERS, ids=[c for _, c in LAYERS])
def test_docstring_documents_every_setting(module_name, class_name):
    module, layer_class = _layer(module_name, class_name)
    text = (module.__doc__ or "") + (layer_class.__doc__ or "")
    missing = [name for name in _table(module_name) if f"``{name}``" not in text and f"`{name}`" not in text]
    assert not missing


def _required(module_name, tmp_path):
    """The few settings that have no default (the layer cannot guess them)."""
    import pathlib
    here = pathlib.Path(__file__).resolve().parent
    store = {"store": f"sqlite:///{tmp_path}/store.sqlite"}
    return store | {
        "wsgisec.signed_requests": {"secret_keys": "a" * 43},
        "wsgisec.signed_requests.csrf": {"secret_keys": "a" * 43},
        "wsgisec.whitelist": {"rules": str(here.parent / "examples" / "partner_api.openapi.yaml")},
    }.get(module_name, {})


# Store settings are declared once (settings.STORE_SETTINGS) and taken by every layer
# whose table has a store; layer_factory writes them into the store URL.
STORE_LAYERS = [(m, c) for m, c in LAYERS if "store" in importlib.import_module(m).SETTINGS]


@pytest.mark.parametrize("module_name, class_name", STORE_LAYERS, ids=[c for _, c in STORE_LAYERS])
def test_every_layer_with_a_store_takes_store_timeout(module_name, class_name, tmp_path):
    module, layer_class = _layer(module_name, class_name)
    local_conf = _required(module_name, tmp_path) | {"store_timeout": "400ms"}
    layer = module.filter_factory({"here": str(tmp_path)}, **local_conf)(None)
    assert layer.store.url == f"sqlite:///{tmp_path}/store.sqlite?timeout=0.4"
    assert layer.settings["store"].endswith("?timeout=0.4")  # what `wsgisec check` prints


@pytest.mark.parametrize("value, message", [
    pytest.param("soon", "store_timeout = 'soon' is not valid; expected a timeout", id="not-a-timeout"),
    pytest.param("90s", "at most 60s", id="too-long"),
])
def test_a_bad_store_timeout_is_a_configuration_error(value, message, tmp_path):
    from wsgisec import token_auth

    with pytest.raises(settings.ConfigurationError, match=message):
        token_auth.filter_factory({}, store=f"sqlite:///{tmp_path}/s.sqlite", store_timeout=value)


def test_store_timeout_and_a_different_url_timeout_are_refused(tmp_path):
    from wsgisec import token_auth

    with pytest.raises(settings.ConfigurationError, match="egg:wsgisec#token_auth.*keep one of them"):
        token_auth.filter_factory({}, store=f"sqlite:///{tmp_path}/s.sqlite?timeout=1s", store_timeout="2s")
