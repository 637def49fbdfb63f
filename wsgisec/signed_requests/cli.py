"""Operator verbs for the signed_requests layer (``wsgisec client ...``).

Each verb loads the pipeline of ``--config`` (default ``$WSGISEC_CONFIG``; ``--pipeline``
picks another section than ``main``, as the token_auth verbs do), finds its
signed_requests layer and works on that layer's store and keys.

``wsgisec client request-token ID [--revoke-older] [--json]``
    Issue a request token for client ID (printed once; the partner sends it in
    ``X-Request-Token``). Shows its token id (for revocation) and expiry.
    ``--revoke-older`` rotates: every token of the client issued before this one is
    refused from now on.
``wsgisec client signing-key ID [--grace 1d] [--json]``
    Issue an ``hmac-sha256`` signing key for client ID: prints the keyid and the key once,
    as base64 of the raw HMAC key (a third-party RFC 9421 client wants the decoded bytes;
    ``wsgisec.partner`` takes the base64 text). The client's older keys stay valid for ``--grace`` (``0`` retires them at
    once), so the partner can switch without downtime.
``wsgisec client revoke-request-token TOKEN_ID`` / ``--client ID``
    Refuse that request token from now on, on every worker; with ``--client``, every
    request token of that client issued until now, including any minted offline with a
    key we still accept (the client's issued-at floor, issue 11).

When token_auth keeps clients in the same store (namespace ``clients``), ID must name
one of them (and not a disabled one); with signed_requests alone any id is accepted.
"""

from __future__ import annotations

import time

from ..cli import CLI, EXIT_OK, duration_argument, fail, find_layer_or_exit, print_json
from ..credentials import CLIENTS

#: How the signing key is printed (the same words in the text and the JSON output).
KEY_ENCODING = "base64 of the raw HMAC key"


def register(cli) -> None:
    group_help = "partner clients"
    token = cli.command("client", "request-token", "issue a request token for a client (shown once)",
                        _request_token, group_help=group_help)
    CLI.add_config_argument(token)
    token.add_argument("id", help="the client id")
    token.add_argument("--revoke-older", action="store_true",
                       help="refuse every request token of this client issued before this one")
    token.add_argument("--json", action="store_true", help="print JSON (for scripts)")

    key = cli.command("client", "signing-key",
                      "issue an hmac-sha256 request signing key for a client (shown once)",
                      _signing_key, group_help=group_help)
    CLI.add_config_argument(key)
    key.add_argument("id", help="the client id")
    key.add_argument("--grace", type=duration_argument, default=86400,
                     help="how long the client's older keys stay valid (default 1d; 0 retires them now)")
    key.add_argument("--json", action="store_true", help="print JSON (for scripts)")

    revoke = cli.command("client", "revoke-request-token", "refuse a request token from now on",
                         _revoke, group_help=group_help)
    CLI.add_config_argument(revoke)
    which = revoke.add_mutually_exclusive_group(required=True)
    which.add_argument("token_id", nargs="?", help="the token id shown when it was issued")
    which.add_argument("--client", metavar="ID", help="every request token of this client issued until now")


def _layer(args):
    from . import SignedRequests

    return find_layer_or_exit(args, SignedRequests, "signed_requests")


def _client_problem(store, client_id: str) -> str | None:
    """Why ``client_id`` may not get credentials, or None."""
    if not store.keys(CLIENTS):
        return None  # no client registry in this store: signed_requests alone
    record = store.get(CLIENTS, client_id)
    if record is None:
        return (f"no client {client_id!r} in this store; create it first with "
                "'wsgisec client create --name NAME --scope S' or check the id with 'wsgisec client list'")
    if record.get("disabled"):
        return f"client {client_id!r} is disabled"
    return None


def _request_token(args) -> int:
    layer = _layer(args)
    problem = _client_problem(layer.store, args.id)
    if problem:
        return fail(problem)
    if layer.tokens is None:
        return fail("this signed_requests layer has no secret_keys: it cannot issue request tokens", 2)
    revoked = layer.revoke_request_tokens_of(args.id) if args.revoke_older else None
    token, record = layer.issue_request_token(args.id)
    if args.json:
        extra = {} if revoked is None else {"older_tokens_revoked": revoked}
        print_json(dict(record, request_token=token, header=layer.request_token_header, **extra))
        return EXIT_OK
    if revoked is not None:
        print(f"revoked:     every older request token of {args.id} ({revoked} listed)")
    print(f"client:      {args.id}")
    print(f"token id:    {record['token_id']}   (for wsgisec client revoke-request-token)")
    print(f"expires:     {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(record['expires']))}")
    print(f"header:      {layer.request_token_header}")
    print(f"token:       {token}")
    print("The token is shown only now: give it to the partner over a secure channel.")
    return EXIT_OK


def _signing_key(args) -> int:
    layer = _layer(args)
    problem = _client_problem(layer.store, args.id)
    if problem:
        return fail(problem)
    issued = layer.issue_signing_key(args.id, grace=args.grace)
    if args.json:
        print_json(dict(issued, key_encoding=KEY_ENCODING, older_keys_valid_for=args.grace))
        return EXIT_OK
    print(f"client:      {args.id}")
    print(f"algorithm:   {issued['algorithm']}")
    print(f"keyid:       {issued['keyid']}")
    print(f"key:         {issued['key']}")
    print(f"             ({KEY_ENCODING}: decode it for an RFC 9421 library, e.g. "
          "base64.b64decode(key))")
    if args.grace:
        print(f"older keys of this client stay valid for {args.grace}s")
    else:
        print("older keys of this client were retired")
    print("The key is shown only now: give it to the partner over a secure channel.")
    return EXIT_OK


def _revoke(args) -> int:
    layer = _layer(args)
    if layer.tokens is None:
        return fail("this signed_requests layer has no secret_keys", 2)
    if args.client:
        problem = _client_problem(layer.store, args.client)
        if problem and "disabled" not in problem:
            return fail(problem)
        count = layer.revoke_request_tokens_of(args.client)
        print(f"every request token of {args.client} issued until now is refused ({count} listed)")
        return EXIT_OK
    layer.revoke_request_token(args.token_id)
    print(f"request token {args.token_id} revoked")
    return EXIT_OK
