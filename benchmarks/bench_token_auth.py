"""Per-request cost of token_auth's bearer check, against the bare app.

    python benchmarks/bench_token_auth.py

A valid bearer request costs one SHA-256 of the token and one store read (SQLite file or
Redis at 127.0.0.1:6379/15, skipped if absent); no password hash runs per API request:
the script counts ``CryptContext.verify``/``hash`` calls while the API cases run and
fails if there was any. The token endpoint (one argon2id verification per request, by
design) is measured too, for contrast.
"""

import base64
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, "..", "examples")]

from harness import Case, environ_for, measure, run  # noqa: E402
from passlib.context import CryptContext  # noqa: E402

from flask_legacy.app import create_app  # noqa: E402
from wsgisec.store import StoreUnavailable, open_store  # noqa: E402
from wsgisec.token_auth import TokenAuth  # noqa: E402

BODY = b'{"items": [' + b", ".join(b'{"id": %d, "name": "Widget %d"}' % (i, i) for i in range(40)) + b"]}"
RULES = ("GET /api/items items:read", "POST /api/items items:write")


def tiny(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))])
    return [BODY]


class HashCounter:
    """Counts CryptContext.verify/hash/verify_and_update calls (the password hashing)."""

    def __init__(self):
        self.calls = 0
        self._originals = {}

    def __enter__(self):
        for name in ("verify", "hash", "verify_and_update"):
            original = getattr(CryptContext, name)
            self._originals[name] = original

            def counted(*args, __original=original, **kwargs):
                self.calls += 1
                return __original(*args, **kwargs)

            setattr(CryptContext, name, counted)
        return self

    def __exit__(self, *exc):
        for name, original in self._originals.items():
            setattr(CryptContext, name, original)


def stores():
    yield "SQLite", "sqlite:///" + os.path.join(tempfile.mkdtemp(), "bench.sqlite")
    url = os.environ.get("WSGISEC_BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
    try:
        store = open_store(url + "?prefix=wsgisec-bench:")
        store.get("x", "y")
        yield "Redis", url + "?prefix=wsgisec-bench:"
    except (StoreUnavailable, ImportError) as error:
        print(f"(Redis skipped: {type(error).__name__})")


def main():
    for label, bare in (("minimal WSGI app, 2 KB JSON", tiny), ("legacy Flask app, /api/items", create_app())):
        for store_name, url in stores():
            print(f"\n## {label}, {store_name} store")
            layer = TokenAuth(bare, store=url, scopes=RULES, public_paths=("/healthz",))
            record, secret = layer.registry.create("bench", scopes=["items:read"])
            token = layer.issue_token(record["id"])["access_token"]
            valid = environ_for("/api/items?q=Wid", headers={"Authorization": f"Bearer {token}"})
            # Same request, but its path listed in public_paths: the layer's floor cost.
            open_layer = TokenAuth(bare, store=url, scopes=RULES, public_paths=("/api/items",))
            anonymous = environ_for("/api/items?q=Wid")
            with HashCounter() as counter:
                rows = run([
                    Case("token_auth: valid bearer token (digest + 1 store read)", layer, valid),
                    Case("token_auth: path in public_paths", open_layer, anonymous),
                ], bare=Case("bare app", bare, valid))
            print(f"password hash calls during the API cases: {counter.calls}")
            if counter.calls:
                raise SystemExit("a password hash ran on the API path")
            assert rows
        basic = base64.b64encode(f"{record['id']}:{secret}".encode()).decode()
        endpoint = environ_for("/oauth/token", method="POST", body=b"grant_type=client_credentials",
                               headers={"Authorization": f"Basic {basic}",
                                        "Content-Type": "application/x-www-form-urlencoded"})
        case = Case("token endpoint (argon2id verify, by design)", layer, endpoint)
        measure(case, rounds=2, min_time=0.5)
        with HashCounter() as counter:
            environ = dict(endpoint)
            environ["wsgi.input"] = __import__("io").BytesIO(endpoint["wsgi.input"])
            list(layer(environ, lambda *a: None))
        print(f"{case.name:58} {case.result:11.1f} µs  ({counter.calls} hash call per token request)")


if __name__ == "__main__":
    main()
