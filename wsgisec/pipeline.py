"""Load a PasteDeploy ini file and look at the stack of layers it built.

Used by the ``wsgisec`` command (``serve``, ``check`` and the operator verbs that need a
layer's store) and by tests. The ini file's own directory is put on ``sys.path`` first, so
``use = call:legacy_app:app_factory`` finds a module that lies beside the ini file, as a
legacy app usually does.
"""

from __future__ import annotations

import os
import sys

from paste.deploy import loadapp

from .layer import Layer, layer_factory  # noqa: F401  (their home until every import moves)

__all__ = ["load", "layers", "find_layer", "config_uri"]


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
