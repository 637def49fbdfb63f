"""Operator verbs for the token_auth layer: ``wsgisec client ...`` and ``wsgisec token ...``.

Each verb loads the pipeline of ``--config`` (default ``$WSGISEC_CONFIG``), finds its
token_auth layer and works on that layer's store, so the operator names the same ini file
the server runs. ``--pipeline`` picks another ``[pipeline:...]`` than ``main`` (``--name``
is the client's name in ``client create``).

``wsgisec client create --config CONFIG --name NAME --scope S [--scope S...] [--permission introspect] [--json]``
    Create a client; prints its id and secret. The secret is shown only this once.
``wsgisec client list [--json]``
    Every client (id, name, scopes, permissions, disabled); never a secret or hash.
``wsgisec client rotate-secret ID [--grace 1d] [--json]``
    A new secret; the old one keeps working for the grace period.
``wsgisec client disable ID``
    The client gets no more tokens and every token it holds stops working at once.
``wsgisec token issue --client ID [--user U] [--scope S...] [--json]``
    Tokens for a client, optionally acting for one of the app's users (``REMOTE_USER``).
``wsgisec token revoke (--client ID | --user U | -)``
    Revoke every token of a client or of a user, or the tokens read from standard input,
    one per line (never pass a token as an argument: it would land in shell history).
``wsgisec token purge``
    Delete expired tokens, spent refresh tokens, counters and lock-outs now.
"""

from __future__ import annotations

import sys

from ..cli import CLI, EXIT_OK, duration_argument, fail, find_layer_or_exit, print_json
from .clients import INTROSPECT, PERMISSIONS, public_view


def register(cli) -> None:
    client_help = "partner clients of the token_auth layer"
    token_help = "access and refresh tokens of the token_auth layer"

    create = cli.command("client", "create", "create a client and print its secret once", _create,
                         group_help=client_help)
    CLI.add_config_argument(create)
    create.add_argument("--name", required=True, help="a human-readable name for the client")
    create.add_argument("--scope", action="append", default=[], metavar="S",
                        help="a scope the client may ask for (repeat for several)")
    create.add_argument("--permission", action="append", default=[], choices=sorted(PERMISSIONS),
                        help=f"an extra right: {INTROSPECT} (may call the introspection endpoint)")
    create.add_argument("--json", action="store_true", help="print JSON (for scripts)")

    listing = cli.command("client", "list", "list clients (never their secrets)", _list,
                          group_help=client_help)
    CLI.add_config_argument(listing)
    listing.add_argument("--json", action="store_true", help="print JSON")

    rotate = cli.command("client", "rotate-secret", "give a client a new secret", _rotate,
                         group_help=client_help)
    CLI.add_config_argument(rotate)
    rotate.add_argument("id", help="the client id")
    rotate.add_argument("--grace", type=duration_argument, default=86400, metavar="DURATION",
                        help="how long the previous secret keeps working (default 1d; 0 ends it now)")
    rotate.add_argument("--json", action="store_true", help="print JSON")

    disable = cli.command("client", "disable", "disable a client and revoke all its tokens", _disable,
                          group_help=client_help)
    CLI.add_config_argument(disable)
    disable.add_argument("id", help="the client id")

    issue = cli.command("token", "issue", "issue tokens for a client (optionally acting for a user)",
                        _issue, group_help=token_help)
    CLI.add_config_argument(issue)
    issue.add_argument("--client", required=True, metavar="ID", help="the client id")
    issue.add_argument("--user", metavar="U", help="the app's user the client acts for (REMOTE_USER)")
    issue.add_argument("--scope", action="append", metavar="S",
                       help="narrow the scopes (default: all the client's scopes)")
    issue.add_argument("--json", action="store_true", help="print JSON")

    revoke = cli.command("token", "revoke", "revoke tokens", _revoke, group_help=token_help)
    CLI.add_config_argument(revoke)
    which = revoke.add_mutually_exclusive_group(required=True)
    which.add_argument("--client", metavar="ID", help="every token of this client")
    which.add_argument("--user", metavar="U", help="every token issued for this user")
    which.add_argument("stdin", nargs="?", choices=["-"],
                       help="- : read tokens from standard input, one per line")

    purge = cli.command("token", "purge", "delete expired tokens and counters now", _purge,
                        group_help=token_help)
    CLI.add_config_argument(purge)


def _layer(args):
    from . import TokenAuth

    return find_layer_or_exit(args, TokenAuth, "token_auth")


# -- client ----------------------------------------------------------------------------

def _create(args) -> int:
    layer = _layer(args)
    try:
        record, secret = layer.registry.create(args.name, scopes=args.scope, permissions=args.permission)
    except ValueError as error:
        return fail(str(error), 2)
    if args.json:
        print_json({"client_id": record["id"], "client_secret": secret, "name": record["name"],
                    "scopes": record["scopes"], "permissions": record["permissions"]})
    else:
        print(f"client_id:     {record['id']}")
        print(f"client_secret: {secret}")
        print(f"scopes:        {' '.join(record['scopes']) or '(none)'}")
        if record["permissions"]:
            print(f"permissions:   {' '.join(record['permissions'])}")
        print("Give the secret to the partner now: it is stored only as a hash and cannot be shown again.",
              file=sys.stderr)
    return EXIT_OK


def _list(args) -> int:
    layer = _layer(args)
    clients = sorted((public_view(record) for record in layer.registry.list()),
                     key=lambda record: record.get("created", 0))
    if args.json:
        print_json(clients)
        return EXIT_OK
    for record in clients:
        state = "disabled" if record.get("disabled") else "enabled"
        extra = f" [{' '.join(record['permissions'])}]" if record.get("permissions") else ""
        print(f"{record['id']}  {state:8}  {record.get('name', '')!r}  "
              f"scopes: {' '.join(record.get('scopes', ())) or '-'}{extra}")
    if not clients:
        print("no clients", file=sys.stderr)
    return EXIT_OK


def _rotate(args) -> int:
    layer = _layer(args)
    secret = layer.registry.rotate_secret(args.id, grace=args.grace)
    if secret is None:
        return fail(f"no client {args.id!r}")
    if args.json:
        print_json({"client_id": args.id, "client_secret": secret, "previous_valid_for": args.grace})
    else:
        print(f"client_id:     {args.id}")
        print(f"client_secret: {secret}")
        print(f"The previous secret keeps working for {args.grace} seconds.", file=sys.stderr)
    return EXIT_OK


def _disable(args) -> int:
    layer = _layer(args)
    revoked = layer.registry.disable(args.id)
    if revoked is None:
        return fail(f"no client {args.id!r}")
    print(f"disabled {args.id}; {revoked} token(s) revoked")
    return EXIT_OK


# -- token -----------------------------------------------------------------------------

def _issue(args) -> int:
    layer = _layer(args)
    try:
        tokens = layer.issue_token(args.client, user=args.user, scopes=args.scope)
    except LookupError as error:
        return fail(str(error))
    except ValueError as error:
        return fail(str(error), 2)
    if args.json:
        print_json(tokens)
    else:
        for key in ("access_token", "refresh_token", "expires_in", "scope"):
            print(f"{key + ':':15}{tokens[key]}")
    return EXIT_OK


def _revoke(args) -> int:
    from .clients import client_tag
    from ..credentials import TOKENS

    layer = _layer(args)
    if args.client:
        count = layer.store.delete_tagged(TOKENS, client_tag(args.client))
    elif args.user:
        count = layer.store.delete_tagged(TOKENS, f"user:{args.user}")
    else:
        count = sum(1 for line in sys.stdin if line.strip() and layer.revoke(line.strip()))
    print(f"{count} token(s) revoked")
    return EXIT_OK


def _purge(args) -> int:
    removed = _layer(args).purge()
    print(f"{removed} expired row(s) removed")
    return EXIT_OK
