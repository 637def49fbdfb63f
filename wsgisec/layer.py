"""What every wsgisec middleware shares: the :class:`Layer` base and :func:`layer_factory`.

A layer declares its settings once, in a module-level ``SETTINGS`` table of
``name: (parser, default text)``; its ``filter_factory`` parses the ini values with
:func:`wsgisec.settings.parse` and ends with :func:`layer_factory`, which builds the
layer once at start-up (so a bad combination fails there, naming the file) and returns
``app -> layer``. ``tests/test_layer_settings.py`` proves that ``__init__``, the effective
settings ``wsgisec check`` prints and the docstring agree with the table.

Store settings are declared once, in :data:`wsgisec.settings.STORE_SETTINGS`: every layer
whose table has ``store`` also takes ``store_timeout`` (seconds a store call may wait,
``250ms``/``0.5s``/``2``; default 0.25s), which :func:`layer_factory` writes into the store
URL as ``?timeout=`` (so ``wsgisec check`` shows it with the store), e.g.::

    [filter:token_auth]
    use = egg:wsgisec#token_auth
    get store = wsgisec_store
    store_timeout = 250ms
"""

from __future__ import annotations

import functools

from . import settings

__all__ = ["Layer", "layer_factory"]


class Layer:
    """What every wsgisec middleware shares, so ``wsgisec check`` can describe the stack.

    Subclasses set ``wsgisec_layer`` (their entry point name), keep the wrapped app in
    ``self.app`` and their effective, typed settings in ``self.settings``, and may
    override :meth:`warnings` to name insecure choices.
    """

    wsgisec_layer: str = ""
    app = None
    settings: dict = {}

    def warnings(self) -> list[str]:
        return []

    def __repr__(self):
        return f"<{type(self).__name__} around {self.app!r}>"


def layer_factory(name: str, layer_class, kw: dict, global_conf: dict | None):
    """The end of every ``filter_factory``: ``app -> layer`` with these typed settings.

    Gives the layer the default store (see :func:`settings.default_store_url`), with a
    relative SQLite path resolved against the ini file's directory
    (:func:`wsgisec.store.resolve_url`), and builds it once without an app, so that rules
    spanning several settings fail at start-up with the filter and the file named, never
    at the first request.
    """
    from .store import resolve_url

    kw.setdefault("store", settings.default_store_url(global_conf))
    timeout = kw.pop("store_timeout", None)
    try:
        if isinstance(kw["store"], str):
            kw["store"] = resolve_url(kw["store"], (global_conf or {}).get("here"))
            if timeout is not None:
                kw["store"] = _with_timeout(kw["store"], timeout)
        elif timeout is not None:
            raise settings.ConfigurationError("store_timeout needs a store URL (store = sqlite:///... "
                                              "or redis://...)")
        layer_class(None, **kw)
    except settings.ConfigurationError as error:
        raise settings.config_error(name, global_conf, str(error)) from None
    return functools.partial(layer_class, **kw)


def _with_timeout(url: str, timeout: float) -> str:
    """``url?timeout=...``; ConfigurationError if the URL already names another timeout."""
    from .store import with_timeout

    try:
        return with_timeout(url, timeout)
    except ValueError as error:  # store_timeout and the URL's ?timeout= disagree
        raise settings.ConfigurationError(str(error)) from None
