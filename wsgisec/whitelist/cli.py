"""``wsgisec learn``: write the OpenAPI document the whitelist layer learned from traffic.

    wsgisec learn --config partner_api.ini [--min-samples N] > partner_api.openapi.yaml

Reads the observations that ``mode = learn`` recorded in the whitelist layer's store
(see :mod:`wsgisec.whitelist.learning`) and prints an OpenAPI 3.1 document (YAML) on stdout, for the
operator to review, diff against the current allowlist, and then enforce with
``mode = enforce`` and ``rules = <that file>``. Operations seen fewer than
``--min-samples`` times are left out and listed on stderr. Exit status 0, or 2 if the ini
file has no whitelist layer or nothing was learned.
"""

from __future__ import annotations

import sys

__all__ = ["register"]


def _learn(args) -> int:
    import yaml

    from ..cli import EXIT_CONFIG, find_layer_or_exit
    from .learning import NAMESPACE, infer_document
    from ..store import StoreUnavailable
    from . import Whitelist

    layer = find_layer_or_exit(args, Whitelist, "whitelist")
    if layer.store is None:
        print("wsgisec learn: the whitelist layer has no store", file=sys.stderr)
        return EXIT_CONFIG
    try:
        records = list(layer.store.items(NAMESPACE))
    except StoreUnavailable as error:
        print(f"wsgisec learn: the store cannot be read: {error}", file=sys.stderr)
        return EXIT_CONFIG
    if not records:
        print("wsgisec learn: nothing learned yet; run the pipeline with mode = learn first",
              file=sys.stderr)
        return EXIT_CONFIG
    document, skipped = infer_document(records, min_samples=args.min_samples)
    for key in skipped:
        print(f"wsgisec learn: left out {key} (seen fewer than {args.min_samples} times)", file=sys.stderr)
    sys.stdout.write("# Learned by `wsgisec learn`: review before enforcing.\n")
    yaml.safe_dump(document, sys.stdout, sort_keys=False, allow_unicode=True, default_flow_style=False)
    return 0


def register(cli) -> None:
    parser = cli.command(None, "learn", "print the OpenAPI document learned by the whitelist layer "
                         "(mode = learn) as YAML", _learn)
    cli.add_config_argument(parser)
    parser.add_argument("--min-samples", type=int, default=1, metavar="N",
                        help="leave out operations seen fewer than N times (default: 1)")
