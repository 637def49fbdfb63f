"""``wsgisec store init``: create the stores a pipeline names, explicitly; ``wsgisec
store migrate``: move their contents to another store (:mod:`wsgisec.store.migrate`).

    wsgisec store init --config partner_api.ini [--pipeline main]
    wsgisec store migrate --from sqlite:////srv/api/var/wsgisec.sqlite --to redis://cache:6379/0

The operator's other verbs (``wsgisec client ...``, ``token ...``, ``reports ...``,
``learn``) never create a store: run against a store file that was deleted or a path
with a typo, an empty new file would answer "no such client" and the operator could not
revoke a live one. They fail with one line naming the file and this verb instead.
``wsgisec serve`` still creates the default SQLite store on first start (``wsgisec check``
reports a missing one, exit 2), so the README quick start works as written.

Prints one line per store: ``created PATH``, ``PATH: exists, schema current`` or, for
Redis, ``URL: reachable, writable``. Exit status 0, or 2 if a store is unusable.
"""

from __future__ import annotations

import os

__all__ = ["register", "CREATING_VERBS"]

#: ``(command, verb)`` pairs that may create a missing store; every other verb runs
#: inside :func:`wsgisec.store.no_create`.
CREATING_VERBS = {("serve", None), ("store", "init")}


def _init(args) -> int:
    from .. import cli, pipeline
    from . import StoreUnavailable, url_options

    try:
        chain = pipeline.layers(cli.load_stack(args))
    except cli.ConfigurationError as error:
        return cli.fail(f"configuration error: {error}", cli.EXIT_CONFIG)
    stores = cli.stores_of(chain)
    if not stores:
        return cli.fail(f"{args.config}: no layer of [pipeline:{args.pipeline}] uses a store", cli.EXIT_CONFIG)
    for url, store in stores.items():
        base = url_options(url)[0]
        path = base[len("sqlite:///"):] if base.startswith("sqlite:///") else None
        existed = path is not None and os.path.exists(path)
        try:
            where = store.check()  # opening it creates a missing SQLite file with the schema
        except StoreUnavailable as error:
            return cli.fail(f"store unavailable: {error}", cli.EXIT_CONFIG)
        if path is None:
            print(f"{where}: reachable, writable")
        elif existed:
            print(f"{where}: exists, schema current")
        else:
            print(f"created {where}")
    return cli.EXIT_OK


def _migrate(args) -> int:
    from .migrate import run

    return run(args)


def register(cli) -> None:
    parser = cli.command("store", "init", "create the stores the pipeline names (SQLite file and schema)",
                         _init, group_help="the layers' shared store")
    cli.add_config_argument(parser)
    parser = cli.command("store", "migrate", "copy every live client, key and token from one store to another "
                         "(idempotent; keys the target has are kept)", _migrate)
    parser.add_argument("--from", dest="source", required=True, metavar="URL",
                        help="the store to read, e.g. sqlite:////srv/api/var/wsgisec.sqlite")
    parser.add_argument("--to", dest="target", required=True, metavar="URL",
                        help="the store to fill, e.g. redis://cache:6379/0 or redis+cluster://h1:7000,h2:7001/")
