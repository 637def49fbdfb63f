"""Per-request cost of the whole flagship stack (examples/partner_api.ini), in one run.

    python benchmarks/bench_stack.py

The pipeline is loaded exactly as `wsgisec serve` loads it (SQLite store in a temporary
directory), in front of the legacy Flask app:

    error_masker -> https -> token_auth -> signed_requests -> whitelist -> escaping -> Flask

Cases: a signed partner GET (bearer token + request token + RFC 9421 signature with a
fresh nonce), a signed JSON POST (+ Content-Digest, schema and text policy), a public
browser page, and a refusal. Each signed call draws pre-signed headers from a pool (a nonce can be used only
once); the bare app draws from the same kind of pool, so the ratio is the stack's own cost.
"""

import logging
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.join(HERE, "..", "examples")
sys.path[:0] = [HERE, EXAMPLES]

from harness import Case, Rotating, environ_for, run  # noqa: E402

from flask_legacy.app import create_app  # noqa: E402
from wsgisec import pipeline  # noqa: E402
from wsgisec.partner import sign_headers  # noqa: E402
from wsgisec.signed_requests import SignedRequests  # noqa: E402
from wsgisec.token_auth import TokenAuth  # noqa: E402

POOL = 12000
POST_BODY = b'{"name": "Widget deluxe edition, blue, with a spare sprocket and the long handle", "price": 3.5}'
PROXY = {"REMOTE_ADDR": "127.0.0.1"}  # the example trusts a TLS proxy on this host


def signed_pool(credentials, method, path, body, size=POOL):
    pool = []
    for _ in range(size):
        headers = {"Authorization": "Bearer " + credentials["access_token"],
                   "X-Request-Token": credentials["request_token"]}
        if body:
            headers["Content-Type"] = "application/json"
        headers.update(sign_headers(method, "https://localhost" + path, headers, body,
                                    keyid=credentials["keyid"], signing_key=credentials["key"],
                                    digest=bool(body)))
        pool.append({("CONTENT_TYPE" if name == "Content-Type" else "HTTP_" + name.upper().replace("-", "_")):
                     value for name, value in headers.items()})
    return pool


def flagship(directory):
    """The flagship stack on an SQLite store in ``directory``, and a partner's credentials
    (access token, request token, signing key) for a client with both item scopes."""
    store = "sqlite:///" + os.path.join(directory, "wsgisec.sqlite")
    stack = pipeline.load(os.path.join(EXAMPLES, "partner_api.ini"), global_conf={"wsgisec_store": store})
    token_auth = pipeline.find_layer(stack, TokenAuth)
    signed = pipeline.find_layer(stack, SignedRequests)
    client, _secret = token_auth.registry.create("bench", scopes=["items:read", "items:write"])
    key = signed.issue_signing_key(client["id"])
    credentials = {"access_token": token_auth.issue_token(client["id"])["access_token"],
                   "request_token": signed.issue_request_token(client["id"])[0],
                   "keyid": key["keyid"], "key": key["key"]}
    return stack, credentials


def main():
    logging.disable(logging.CRITICAL)  # refusals log events; not what is measured
    stack, credentials = flagship(tempfile.mkdtemp(prefix="wsgisec-bench-"))
    print(f"signing {2 * POOL} requests ...", file=sys.stderr)
    get_pool = signed_pool(credentials, "GET", "/api/items?q=Wid", b"")
    post_pool = signed_pool(credentials, "POST", "/api/items", POST_BODY)

    bare = create_app()
    get = environ_for("/api/items?q=Wid", https=False, HTTP_X_FORWARDED_PROTO="https", **PROXY)
    post = environ_for("/api/items", method="POST", body=POST_BODY, https=False,
                       headers={"Content-Type": "application/json"}, HTTP_X_FORWARDED_PROTO="https", **PROXY)
    page = environ_for("/search?q=Widget", https=False, HTTP_X_FORWARDED_PROTO="https",
                       HTTP_ACCEPT="text/html", **PROXY)
    print("\n## legacy Flask app, GET /api/items?q=Wid")
    run([Case("full stack, signed partner GET", Rotating(stack, get_pool), get),
         Case("full stack, bearer token only: refused 401 (signature-missing)",
              Rotating(stack, [{"HTTP_AUTHORIZATION": "Bearer " + credentials["access_token"]}]),
              get, expect_status="401")],
        bare=Case("bare Flask app", Rotating(bare, get_pool), get))
    print("\n## legacy Flask app, POST /api/items (JSON item)")
    run([Case("full stack, signed partner POST (digest, schema, text policy)", Rotating(stack, post_pool),
              post, expect_status="201")],
        bare=Case("bare Flask app", Rotating(bare, post_pool), post, expect_status="201"))
    print("\n## legacy Flask app, GET /search (public browser page)")
    run([Case("full stack, browser page (CSRF token injected, reflection checked)", stack, page)],
        bare=Case("bare Flask app", bare, page))


if __name__ == "__main__":
    main()
