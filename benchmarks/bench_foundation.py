"""Per-request cost of the outer layers (https, error_masker), against the bare app.

    python benchmarks/bench_foundation.py

Two bare apps: the legacy Flask example (what users run) and a minimal WSGI callable
(which shows a layer's own cost without Flask's ~100 µs hiding it).
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, "..", "examples")]

from harness import Case, environ_for, run  # noqa: E402

from flask_legacy.app import create_app  # noqa: E402
from wsgisec.errors import ErrorMasker  # noqa: E402
from wsgisec.https import HTTPSOnly  # noqa: E402

BODY = b'{"items": [' + b", ".join(b'{"id": %d, "name": "Widget %d"}' % (i, i) for i in range(40)) + b"]}"


def tiny(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))])
    return [BODY]


def main():
    get = environ_for("/api/items?q=Wid")
    plain = environ_for("/api/items?q=Wid", https=False)
    for label, bare in (("minimal WSGI app, 2 KB JSON", tiny), ("legacy Flask app, /api/items", create_app())):
        print(f"\n## {label}")
        https = HTTPSOnly(bare, store=None)
        masker = ErrorMasker(bare, store=None)
        masker_5xx = ErrorMasker(bare, mask_leaks="5xx", store=None)
        both = ErrorMasker(HTTPSOnly(bare, store=None), store=None)
        run([
            Case("https (HSTS added, cookies checked)", https, get),
            Case("https: plain-HTTP GET redirected (app not called)", https, plain, expect_status="301"),
            Case("error_masker, mask_leaks=all (body scanned)", masker, get),
            Case("error_masker, mask_leaks=5xx", masker_5xx, get),
            Case("error_masker + https", both, get),
        ], bare=Case("bare app", bare, get))


if __name__ == "__main__":
    main()
