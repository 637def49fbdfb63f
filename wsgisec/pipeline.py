"""Load a PasteDeploy ini file and look at the stack of layers it built.

Used by the ``wsgisec`` command (``serve``, ``check`` and the operator verbs that need a
layer's store) and by tests. The ini file's own directory is put on ``sys.path`` first, so
``use = call:legacy_app:app_factory`` finds a module that lies beside the ini file, as a
legacy app usually does.

Other servers (``gunicorn --paste``, ``pserve``, uWSGI, mod_wsgi) load the ini with
PasteDeploy alone, without that help. For them, ``egg:wsgisec#app`` imports the legacy
app by path relative to the ini file, whatever the current directory::

    [app:legacy]
    use = egg:wsgisec#app
    # a PasteDeploy app factory (called with the section's other settings) ...
    factory = flask_legacy.app:app_factory
    # ... or a WSGI callable: application = legacy_app:app
    # directories put on sys.path, relative to this file's directory (default: .)
    path = .

A module that cannot be imported is a :class:`~wsgisec.settings.ConfigurationError`
naming the module and ``sys.path``, never a traceback from the server.
"""

from __future__ import annotations

import importlib
import os
import re
import sys

from paste.deploy import loadapp

from . import settings

__all__ = ["load", "layers", "find_layer", "config_uri", "app_factory", "import_object"]


def config_uri(path: str) -> str:
    return "config:" + os.path.abspath(path)


def load(path: str, name: str = "main", global_conf: dict | None = None):
    """The WSGI application that ``[pipeline:name]`` (or ``[app:name]``) describes.

    A user's mistake in the ini file (a missing file, an unknown ``egg:wsgisec#name``, a
    module that cannot be imported) is a :class:`~wsgisec.settings.ConfigurationError`
    saying what to fix, so the CLI prints one line instead of a traceback.
    """
    if not os.path.isfile(path):
        raise settings.ConfigurationError(f"{path}: no such ini file")
    here = os.path.dirname(os.path.abspath(path))
    if here not in sys.path:
        sys.path.insert(0, here)
    try:
        return loadapp(config_uri(path), name=name, global_conf=global_conf)
    except settings.ConfigurationError:
        raise
    except (LookupError, ImportError) as error:
        raise settings.ConfigurationError(f"{os.path.abspath(path)}: {explain(error)}") from None


def known_entry_points(group: str, package: str = "wsgisec") -> list[str]:
    """The names ``egg:wsgisec#...`` offers in a PasteDeploy entry point group."""
    from importlib.metadata import entry_points

    return sorted(point.name for point in entry_points(group=group)
                  if point.dist is None or point.dist.name == package)


_UNKNOWN_ENTRY_POINT = re.compile(r"Entry point '([^']*)' not found in egg '([^']*)'")


def explain(error: Exception) -> str:
    """One line for a PasteDeploy loading error: what was asked for, what exists."""
    from importlib.metadata import PackageNotFoundError

    if isinstance(error, PackageNotFoundError):
        return f"use = egg:{error.name}#...: no installed package named {error.name!r} (pip install it, or fix the name)"
    if isinstance(error, ImportError):
        module = error.name or str(error)
        return f"cannot import {module!r} ({error}); sys.path is {os.pathsep.join(sys.path)}"
    match = _UNKNOWN_ENTRY_POINT.search(str(error))
    if match and match.group(2) == "wsgisec":
        filters = ", ".join(known_entry_points("paste.filter_factory"))
        apps = ", ".join(known_entry_points("paste.app_factory"))
        return (f"use = egg:wsgisec#{match.group(1)}: no such wsgisec layer; "
                f"the layers are {filters} (and {apps} for [app:] sections)")
    return str(error).split("\n")[0]


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


# -- the legacy app, imported by path -------------------------------------------------

def import_object(spec: str, where: str = "[app]"):
    """``module:attribute`` imported; a ConfigurationError naming the module and sys.path.

    A missing module is the most common deployment mistake (wrong directory, wrong
    virtualenv); the operator needs to see where Python looked, not a traceback.
    """
    module_name, sep, attribute = spec.strip().partition(":")
    if not module_name or not sep or not attribute:
        raise settings.ConfigurationError(f"{where}: {spec!r} is not module:attribute")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise settings.ConfigurationError(
            f"{where}: cannot import {module_name!r} ({error}); sys.path is {os.pathsep.join(sys.path)}") from None
    target = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise settings.ConfigurationError(
                f"{where}: module {module_name!r} ({getattr(module, '__file__', '?')}) has no {attribute!r}") from None
    return target


def app_factory(global_conf, factory: str = "", application: str = "", path: str = ".", **local_conf):
    """``egg:wsgisec#app``: the legacy app, found relative to the ini file (see above)."""
    here = global_conf.get("here") or os.getcwd()
    where = f"egg:wsgisec#app ({global_conf.get('__file__', here)})"
    if bool(factory) == bool(application):
        raise settings.ConfigurationError(
            f"{where}: set exactly one of factory = module:app_factory or application = module:app")
    for directory in reversed(path.split()):
        directory = os.path.normpath(os.path.join(here, directory))
        if directory not in sys.path:
            sys.path.insert(0, directory)
    if application:
        if local_conf:
            raise settings.ConfigurationError(
                f"{where}: unknown setting {sorted(local_conf)[0]} (settings go to a factory, not an application)")
        return import_object(application, where)
    return import_object(factory, where)(global_conf, **local_conf)
