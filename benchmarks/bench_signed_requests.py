"""Per-request cost of signed_requests: request token + RFC 9421 signature + nonce.

    python benchmarks/bench_signed_requests.py [--redis redis://127.0.0.1:6379/15]

Every signed request needs a fresh nonce (a repeated one is refused as a replay), so
each case draws pre-signed headers from a pool; the bare app draws from a pool the same
way, so the ratio shows the layer's own cost. The nonce is written to a real store
(SQLite file; Redis if given), which is most of the cost of a passing request.
"""

import argparse
import logging
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, "..", "examples")]

from harness import Case, Rotating, environ_for, run  # noqa: E402

from wsgisec.partner import sign_headers  # noqa: E402
from wsgisec.settings import Secret  # noqa: E402
from wsgisec.signed_requests import SignedRequests  # noqa: E402
from wsgisec.store import open_store  # noqa: E402

BODY = b'{"items": [' + b", ".join(b'{"id": %d, "name": "Widget %d"}' % (i, i) for i in range(40)) + b"]}"
POST_BODY = b'{"name": "' + b"w" * 1000 + b'", "price": 3}'  # ~1 KB
POOL = 40000
SECRET = Secret("benchmark-request-token-key-0123456789", "env")


def tiny(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))])
    return [BODY]


def pool_for(layer, method, path, body, *, token=True, sign=True, size=POOL, use_nonce=True):
    key = layer.issue_signing_key("bench")
    request_token = layer.issue_request_token("bench")[0] if layer.tokens else None
    pool = []
    for _ in range(size):
        headers = {}
        if token and request_token:
            headers["X-Request-Token"] = request_token
        if sign:
            headers.update(sign_headers(method, "https://localhost" + path, headers, body, keyid=key["keyid"],
                                        signing_key=key["key"], digest=bool(body), use_nonce=use_nonce))
        pool.append({"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()})
    return pool


def cases_for(store_url, label):
    store = open_store(store_url)
    full = SignedRequests(tiny, secret_keys=[SECRET], store=store_url, browser_csrf=False)
    no_nonce = SignedRequests(tiny, secret_keys=[SECRET], store=store_url, browser_csrf=False,
                              required_params=("created", "keyid"))
    token_only = SignedRequests(tiny, secret_keys=[SECRET], store=store_url, browser_csrf=False,
                                require_signature=False)
    get = environ_for("/api/items?q=Wid")
    post = environ_for("/api/items", method="POST", body=POST_BODY,
                       headers={"Content-Type": "application/json"})
    print(f"signing {POOL} requests per case for {label} ...", file=sys.stderr)
    get_pool = pool_for(full, "GET", "/api/items?q=Wid", b"")
    cases = [
        Case(f"[{label}] GET: token + signature + nonce", Rotating(full, get_pool), get),
        Case(f"[{label}] POST 1 KB: token + signature + digest + nonce",
             Rotating(full, pool_for(full, "POST", "/api/items", POST_BODY)), post),
        Case(f"[{label}] GET: token + signature, no nonce (no store write)",
             Rotating(no_nonce, pool_for(no_nonce, "GET", "/api/items?q=Wid", b"", size=10, use_nonce=False)), get),
        Case(f"[{label}] GET: request token only (require_signature=false)",
             Rotating(token_only, pool_for(token_only, "GET", "/api/items?q=Wid", b"", sign=False, size=10)), get),
        Case(f"[{label}] GET unsigned: refused 401", Rotating(full, [{}]), get, expect_status="401"),
    ]
    return cases, store


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis", help="also measure with this Redis store URL (its database is used)")
    args = parser.parse_args()
    # Refusals log one event each; keep them off the terminal (they still go to the store).
    logging.getLogger("wsgisec.events").addHandler(logging.NullHandler())
    logging.getLogger("wsgisec.events").propagate = False
    tmp = tempfile.mkdtemp()
    get = environ_for("/api/items?q=Wid")
    bare = Case("bare app (same header rotation)", Rotating(tiny, [{"HTTP_X": "1"}]), get)
    stores = [("sqlite:///" + os.path.join(tmp, "bench.sqlite"), "sqlite")]
    if args.redis:
        stores.append((args.redis, "redis"))
    for url, label in stores:
        print(f"\n## minimal WSGI app, 2 KB JSON, {label} store")
        cases, store = cases_for(url, label)
        started = time.time()
        run(cases, bare=bare)
        replays = store.events(kinds=["replayed"], since=started)
        if replays:
            raise SystemExit(f"{len(replays)} replays: the pool was too small, numbers are wrong")


if __name__ == "__main__":
    main()
