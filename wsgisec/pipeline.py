"""Load a PasteDeploy ini file and look at the stack of layers it built.

Used by the ``wsgisec`` command (``serve``, ``check`` and the operator verbs that need a
layer's store) and by tests. The ini file's own directory is put on ``sys.path`` first, so
``use = call:legacy_app:app_factory`` finds a module that lies beside the ini file, as a
legacy app usually does.
"""

from __future__ import annotations

import functools
import os
import sys

from paste.deploy import loadapp

from . import settings

__all__ = ["load", "layers", "find_layer", "config_uri", "Layer", "layer_factory"]


def config_uri(path: str) -> str:
    return "config:" + os.path.abspath(path)


def load(path: str, name: str = "main", global_conf: dict | None = None):
    """The WSGI application that ``[pipeline:name]`` (or ``[app:name]``) describes."""
    here = os.path.dirname(os.path.abspath(path))
    if here not in sys.path:
        sys.path.insert(0, here)
    return loadapp(config_uri(path), name=name, global_conf=global_conf)


def layers(app) -> list:
    """The chain of wsgisec layers, outermost first, ending with the wrapped app."""
    chain = [app]
    seen = {id(app)}
    while getattr(type(chain[-1]), "wsgisec_layer", None) and hasattr(chain[-1], "app"):
        inner = chain[-1].app
        if id(inner) in seen:
            break
        seen.add(id(inner))
        chain.append(inner)
    return chain


def find_layer(app, layer_type):
    """The first layer of ``layer_type`` in the stack, or None."""
    for layer in layers(app):
        if isinstance(layer, layer_type):
            return layer
    return None


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

    Gives the layer the default store (see :func:`settings.default_store_url`) and builds
    it once without an app, so that rules spanning several settings fail at start-up
    with the filter and the file named, never at the first request.
    """
    kw.setdefault("store", settings.default_store_url(global_conf))
    try:
        layer_class(None, **kw)
    except settings.ConfigurationError as error:
        raise settings.config_error(name, global_conf, str(error)) from None
    return functools.partial(layer_class, **kw)
