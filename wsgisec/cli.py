"""The ``wsgisec`` command: serve and check a pipeline, and the operators' verbs.

``wsgisec --version``
    The installed wsgisec version.

``wsgisec serve [CONFIG | --config CONFIG] [--host H] [--port P] [--pipeline main]``
    Load ``[pipeline:main]`` (or ``[app:main]``) from the ini file and serve it: with the
    ini's ``[server:main]`` section if there is one, else with waitress on
    127.0.0.1:8080. ``--host``/``--port`` override either. Logging comes from the ini's
    ``[loggers]``/``[handlers]``/``[formatters]`` sections when it has them (security
    events are on ``wsgisec.events``, masked bodies on ``wsgisec.errors``), else INFO and
    above go to stderr. With waitress, unless the ini
    says otherwise, no ``Server`` header is added and ``X-Forwarded-*`` headers are left
    for the https layer's ``trusted_proxies`` to judge (waitress would otherwise drop
    them all): proxy trust is configured in one place.

``wsgisec check [CONFIG | --config CONFIG] [--pipeline main]``
    Load the pipeline without serving it, print the stack outermost first with each
    layer's effective settings (secrets as ``***``), open each store the layers use
    (reachable, writable, schema current) and print its resolved path, then warnings
    about insecure choices (in the spirit of Django's ``check --deploy``; a Redis store that
    keeps nothing on disk is one: a restart would reopen replay windows). Exit status:
    0 clean, 1 warned, 2 configuration error or unusable store.

``wsgisec store init --config CONFIG [--pipeline main]``
    Create the stores the pipeline names (the SQLite file with its schema). Every other
    verb (``check``, ``client ...``, ``token ...``, ``reports ...``, ``learn``) refuses a
    missing store with one line naming it, rather than create an empty one; ``serve``
    still creates the default SQLite store on first start.

``serve`` and ``check`` take the ini file as an argument or as ``--config``, and fall back
to ``$WSGISEC_CONFIG`` like every other verb.

A user's mistake never shows a traceback: an unknown ``egg:wsgisec#name``, a module that
cannot be imported, an unusable store or a port already in use each print one line and
exit 2.

Other verbs (``client ...``, ``token ...``, ``learn``) are contributed by the layers that
own the state they manage: a module ``wsgisec/<practice>/cli.py`` with a function
``register(cli)`` that calls :meth:`CLI.command`. Every such verb takes ``--config``
(default: the ``WSGISEC_CONFIG`` environment variable) and ``--pipeline`` (default
``main``) to find its layer and store. ``--name`` is accepted as an alias of
``--pipeline`` by ``serve`` and ``check`` only.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import importlib.metadata
import importlib.util
import json
import os
import shlex
import sys

from . import pipeline
from .settings import ConfigurationError, Secret
from .store import StoreUnavailable, redact_url

__all__ = ["main", "CLI"]

EXIT_OK, EXIT_WARNED, EXIT_CONFIG = 0, 1, 2
#: An operator verb named a client, token or key that does not exist.
EXIT_NOT_FOUND = 3

# Practices that contribute operator verbs, as wsgisec/<name>/cli.py modules.
_CLI_PROVIDERS = ("token_auth", "signed_requests", "whitelist", "reports", "store")

# Layers the check expects in this order (outermost first) when they are present.
_RECOMMENDED_ORDER = ("error_masker", "https", "reports", "token_auth", "signed_requests",
                      "whitelist", "escaping")


class CLI:
    """The argument parser, with named groups (``client``, ``token``) providers add to."""

    def __init__(self):
        self.parser = argparse.ArgumentParser(
            prog="wsgisec", description="Security practices for partner APIs, as WSGI middleware.")
        self.subparsers = self.parser.add_subparsers(dest="command", metavar="COMMAND")
        self.subparsers.required = True
        self._groups: dict[str, argparse._SubParsersAction] = {}

    def group(self, name: str, help: str):
        if name not in self._groups:
            parser = self.subparsers.add_parser(name, help=help)
            sub = parser.add_subparsers(dest=f"{name}_command", metavar="VERB")
            sub.required = True
            self._groups[name] = sub
        return self._groups[name]

    def command(self, group: str | None, name: str, help: str, handler,
                group_help: str = "") -> argparse.ArgumentParser:
        """Add ``wsgisec [group] name``; ``handler(args) -> exit status``."""
        target = self.group(group, group_help or f"{group} commands") if group else self.subparsers
        parser = target.add_parser(name, help=help, description=help)
        parser.set_defaults(handler=handler)
        return parser

    @staticmethod
    def add_config_argument(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--config", default=os.environ.get("WSGISEC_CONFIG"),
                            required=not os.environ.get("WSGISEC_CONFIG"),
                            help="the PasteDeploy ini file (default: $WSGISEC_CONFIG)")
        add_pipeline_argument(parser)


def add_pipeline_argument(parser: argparse.ArgumentParser, aliases=()) -> None:
    """``--pipeline NAME``: which ``[pipeline:NAME]``/``[app:NAME]`` (default ``main``).

    Not ``--name``: ``wsgisec client create --name`` is the client's name.
    """
    parser.add_argument("--pipeline", *aliases, dest="pipeline", default="main", metavar="NAME",
                        help="pipeline or app section (default: main)")


def add_config_source(parser: argparse.ArgumentParser) -> None:
    """``serve``/``check``: the ini file as ``CONFIG``, ``--config CONFIG`` or $WSGISEC_CONFIG."""
    parser.add_argument("config_argument", nargs="?", metavar="CONFIG",
                        help="the PasteDeploy ini file (or --config; default: $WSGISEC_CONFIG)")
    parser.add_argument("--config", default=None, help="the PasteDeploy ini file, as for the other verbs")


def resolve_config(parser: argparse.ArgumentParser, args) -> None:
    """Settle ``args.config`` from the argument, ``--config`` or the environment."""
    given = [value for value in (getattr(args, "config_argument", None), args.config) if value]
    if len(set(given)) > 1:
        parser.error(f"two different ini files given: {given[0]} and {given[1]}")
    args.config = given[0] if given else os.environ.get("WSGISEC_CONFIG")
    if not args.config:
        parser.error("the ini file is required: CONFIG, --config CONFIG or $WSGISEC_CONFIG")


def load_stack(args):
    """The pipeline named by ``args.config``/``args.pipeline``; ConfigurationError propagates."""
    return pipeline.load(args.config, name=args.pipeline)


def find_layer_or_exit(args, layer_type, what: str):
    """The layer of ``layer_type`` in the configured stack, or exit 2 with a clear message."""
    try:
        app = load_stack(args)
    except ConfigurationError as error:
        print(f"wsgisec: configuration error: {error}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG)
    layer = pipeline.find_layer(app, layer_type)
    if layer is None:
        print(f"wsgisec: {args.config} has no {what} layer in [pipeline:{args.pipeline}]", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG)
    return layer


def fail(message: str, code: int = EXIT_NOT_FOUND) -> int:
    """Print ``wsgisec: message`` to stderr and return the exit status."""
    print(f"wsgisec: {message}", file=sys.stderr)
    return code


def duration_argument(text: str) -> int:
    """argparse ``type=`` for durations written as in ini files (``1d``, ``15m``)."""
    from .settings import duration

    try:
        return duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def print_json(value) -> None:
    json.dump(value, sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")


# -- serve --------------------------------------------------------------------------

# Unless the ini's [server:main] says otherwise:
# - ident: our error_masker removes the app's Server header; waitress should not add one;
# - clear_untrusted_proxy_headers: waitress would drop X-Forwarded-* before the https layer
#   sees them; the https layer's trusted_proxies decides (and removes untrusted ones).
#   Configure proxy trust in one place: here, wsgisec's https layer.
_WAITRESS_DEFAULTS = {"ident": "", "clear_untrusted_proxy_headers": "false"}

def setup_logging(config: str) -> None:
    """The ini's ``[loggers]`` sections if it has them (as pserve does), else INFO to stderr."""
    import configparser
    import logging.config

    parser = configparser.ConfigParser(interpolation=None)
    parser.read(config)
    if parser.has_section("loggers"):
        path = os.path.abspath(config)
        logging.config.fileConfig(path, {"__file__": path, "here": os.path.dirname(path)},
                                  disable_existing_loggers=False)
    else:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [%(name)s] %(message)s")


def _serve(args) -> int:
    from paste.deploy import loadwsgi

    setup_logging(args.config)
    try:
        app = load_stack(args)
    except ConfigurationError as error:
        print(f"wsgisec: configuration error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    uri = pipeline.config_uri(args.config)
    try:
        context = loadwsgi.loadcontext(loadwsgi.SERVER, uri, name=args.pipeline)
    except LookupError:
        context = None
    _warn_unusable_stores(app)
    overrides = {key: str(value) for key, value in (("host", args.host), ("port", args.port)) if value}
    if context is not None:
        if getattr(context.object, "__module__", "").startswith("waitress"):
            context.local_conf.update({key: value for key, value in _WAITRESS_DEFAULTS.items()
                                       if key not in context.local_conf})
        context.local_conf.update(overrides)
        server = context.create()
        address = f"{context.local_conf.get('host', '?')}:{context.local_conf.get('port', '?')}"
        print(f"wsgisec: serving {args.config} with [server:{args.pipeline}]", file=sys.stderr)
        return _run_server(lambda: server(app), address)
    import waitress

    host = args.host or "127.0.0.1"
    port = int(args.port or 8080)
    print(f"wsgisec: serving {args.config} on http://{host}:{port}/ (waitress)", file=sys.stderr)
    return _run_server(lambda: waitress.serve(app, host=host, port=port, **_WAITRESS_DEFAULTS), f"{host}:{port}")


# Errors binding the listening socket: the operator's to fix, not a traceback.
_LISTEN_ERRORS = (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL)


def _run_server(run, address: str) -> int:
    try:
        run()
    except OSError as error:
        if error.errno not in _LISTEN_ERRORS:
            raise
        hint = " (another server is there; stop it or pick --port)" if error.errno == errno.EADDRINUSE else ""
        return fail(f"cannot listen on {address}: {error.strerror}{hint}", EXIT_CONFIG)
    return EXIT_OK


def _warn_unusable_stores(app) -> None:
    """Serve anyway (the layers answer 503 until the store is back), but say so now."""
    for store in stores_of(pipeline.layers(app)).values():
        try:
            store.check()
        except NotImplementedError:
            continue
        except StoreUnavailable as error:
            print(f"wsgisec: warning: store unavailable: {error}; requests that need it get 503 "
                  "until it is back", file=sys.stderr)


# -- check --------------------------------------------------------------------------

def _shown(value):
    if isinstance(value, Secret):
        return "***"
    if isinstance(value, (list, tuple)):
        if any(isinstance(item, Secret) for item in value):
            return ["***" for _ in value]
        return [str(item) for item in value]
    return value


def _inline_secrets(settings: dict):
    for key, value in settings.items():
        values = value if isinstance(value, (list, tuple)) else [value]
        if any(isinstance(item, Secret) and item.source == "inline" for item in values):
            yield key


def stores_of(chain) -> dict:
    """The distinct stores the layers of a stack use, by URL, in stack order."""
    found = {}
    for layer in chain:
        store = getattr(layer, "store", None) if getattr(type(layer), "wsgisec_layer", None) else None
        if store is not None:
            found.setdefault(getattr(store, "url", repr(store)), store)
    return found


def check_stores(chain) -> list[str]:
    """One line per store, once it is open, writable and current; StoreUnavailable if not."""
    lines = []
    for url, store in stores_of(chain).items():
        try:
            where = store.check()
        except NotImplementedError:  # a store object of the application's own making
            lines.append(f"\nstore: {url} (not checked: {type(store).__name__} has no check())")
            continue
        lines.append(f"\nstore: {where} (reachable, writable, schema current)")
    return lines


def _check(args) -> int:
    try:
        app = load_stack(args)
    except ConfigurationError as error:
        print(f"wsgisec: configuration error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    chain = pipeline.layers(app)
    warnings = []
    print(f"{args.config} [{args.pipeline}], outermost first:")
    for position, layer in enumerate(chain, 1):
        name = getattr(type(layer), "wsgisec_layer", None)
        if not name:
            print(f"{position}. application: {layer!r}")
            continue
        print(f"{position}. {name} ({type(layer).__module__}.{type(layer).__name__})")
        for key, value in sorted(layer.settings.items()):
            print(f"     {key} = {json.dumps(_shown(value), default=str)}")
        warnings.extend(f"{name}: {text}" for text in layer.warnings())
        warnings.extend(f"{name}: {key} is written inline in the ini file; use env:NAME or file:PATH"
                        for key in _inline_secrets(layer.settings))
    try:
        for line in check_stores(chain):
            print(line)
    except StoreUnavailable as error:
        print(f"wsgisec: store unavailable: {store_hint(error, args)}", file=sys.stderr)
        return EXIT_CONFIG
    for url, store in stores_of(chain).items():
        warnings.extend(f"store {redact_url(url)}: {text}" for text in getattr(store, "warnings", list)())
    names = [type(layer).wsgisec_layer for layer in chain if getattr(type(layer), "wsgisec_layer", None)]
    present = [name for name in _RECOMMENDED_ORDER if name in names]
    actual = [name for name in names if name in _RECOMMENDED_ORDER]
    if present != actual:
        warnings.append("pipeline order is " + " -> ".join(actual) + "; recommended: " + " -> ".join(present))
    if "error_masker" in names and names[0] != "error_masker":
        warnings.append("error_masker is not the outermost layer: failures in the layers outside it are not masked")
    if not names:
        warnings.append("no wsgisec layer in this pipeline")
    if warnings:
        print("\nwarnings:")
        for text in warnings:
            print(f"  - {text}")
        return EXIT_WARNED
    print("\nno warnings")
    return EXIT_OK


# -- entry point --------------------------------------------------------------------

def build() -> CLI:
    cli = CLI()
    cli.parser.add_argument("--version", action="version", version=f"wsgisec {version()}")
    serve = cli.command(None, "serve", "serve the pipeline of an ini file", _serve)
    add_config_source(serve)
    add_pipeline_argument(serve, aliases=("--name",))
    serve.add_argument("--host", help="listen address (overrides [server:main])")
    serve.add_argument("--port", type=int, help="listen port (overrides [server:main])")
    check = cli.command(None, "check", "load a pipeline and report insecure settings", _check)
    add_config_source(check)
    add_pipeline_argument(check, aliases=("--name",))
    for provider in _CLI_PROVIDERS:
        if importlib.util.find_spec(f"wsgisec.{provider}") is None:
            continue
        module_name = f"wsgisec.{provider}.cli"
        if importlib.util.find_spec(module_name) is not None:
            importlib.import_module(module_name).register(cli)
    return cli


def version() -> str:
    try:
        return importlib.metadata.version("wsgisec")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree, not installed
        return "unknown (not installed)"


def main(argv=None) -> int:
    cli = build()
    args = cli.parser.parse_args(argv)
    if hasattr(args, "config_argument"):
        resolve_config(cli.subparsers.choices[args.command], args)
    try:
        return _run(args)
    except ConfigurationError as error:
        print(f"wsgisec: configuration error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    except StoreUnavailable as error:
        # Fail closed, and say which store: the operator's verb did nothing.
        print(f"wsgisec: store unavailable: {store_hint(error, args)}", file=sys.stderr)
        return EXIT_CONFIG


def store_hint(error: StoreUnavailable, args) -> str:
    """The error's text, with the ini file the operator gave in place of ``--config INI``
    (the store cannot know it), so the suggested command can be pasted as it is."""
    config = getattr(args, "config", None)
    text = str(error)
    return text.replace("--config INI", f"--config {shlex.quote(config)}") if config else text


def _run(args) -> int:
    """The verb; only ``serve`` and ``store init`` may create a missing store."""
    from .store import no_create
    from .store.cli import CREATING_VERBS

    verb = getattr(args, f"{args.command}_command", None)
    if (args.command, verb) in CREATING_VERBS:
        return args.handler(args)
    with no_create():
        return args.handler(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
