"""wsgisec beside the peer security stack, in one process and one run (issue 13).

    pip install -e '.[test,bench]'
    python benchmarks/bench_peers.py [--json PATH] [--rounds N]

Three workloads, each sent through a trusted TLS proxy (``X-Forwarded-Proto: https``
from 127.0.0.1):

* **W1** ``GET /api/items?id=42`` with a bearer token, answered with 200 B of JSON;
* **W2** ``POST /api/items`` with a 1 KB JSON body and a bearer token (201);
* **W3** ``GET /page``, a public 50 KB HTML page (``bench_escaping.html_page``).

Stacks, every one around the same bare WSGI function (so "added" is what the stack
costs over it):

* ``bare``: the function alone;
* ``peer``: a Flask app serving the same bodies, with werkzeug ``ProxyFix`` (one proxy),
  flask-talisman (HTTPS forced, HSTS, CSP, nosniff, frame options) and an Authlib
  ``ResourceProtector`` whose ``BearerTokenValidator`` looks tokens up in a dict;
* ``wsgisec-4``: error_masker + https + token_auth + escaping (SQLite store): what the
  peer does, and more (leak masking, reflection checks, a revocable token store);
* ``flagship``: examples/partner_api.ini (error_masker, https, reports, token_auth,
  signed_requests, whitelist, escaping) on SQLite, with the bare function as its app and
  the example's OpenAPI rules plus ``/page`` and the ``id`` query parameter; W1 and W2
  carry a request token and an RFC 9421 signature with a fresh nonce (pre-signed pools
  from ``bench_stack.signed_pool``).

Each (stack, workload) is measured in ``--rounds`` rounds of ~``--seconds`` each, taken
round-robin (every case once per round, so a busy moment of a shared machine lands on all
stacks alike); the table gives the median µs per request with the spread (lowest-highest
round), the added µs over the bare function and the ratio of that to what the peer adds. ``--json`` writes every number.
Not a test: the machine is shared, so read medians and ratios, not single digits.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import json
import logging
import os
import statistics
import sys
import tempfile
import time

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.abspath(os.path.join(HERE, "..", "examples"))
sys.path[:0] = [HERE, EXAMPLES]

from bench_escaping import html_page  # noqa: E402
from bench_stack import PROXY, signed_pool  # noqa: E402
from harness import _call, environ_for  # noqa: E402

from wsgisec import pipeline  # noqa: E402
from wsgisec.signed_requests import SignedRequests  # noqa: E402
from wsgisec.token_auth import TokenAuth  # noqa: E402

PAGE = html_page("widget")
ITEMS = json.dumps({"query": "42", "items": [{"id": 42, "name": "Widget deluxe", "price": 9.5},
                                              {"id": 43, "name": "Widget standard", "price": 7.25},
                                              {"id": 44, "name": "Widget mini", "price": 3.0}]}).encode()
POST_BODY = json.dumps({"name": "Widget deluxe edition, blue", "price": 3.5,
                        "description": "A sturdy widget. " * 56}).encode()
CREATED = b'{"id": 101, "name": "Widget deluxe edition, blue"}'
WORKLOADS = ("W1", "W2", "W3")


# -- the bare WSGI function, and the same bodies from Flask ---------------------------

def bare(environ, start_response):
    path, method = environ["PATH_INFO"], environ["REQUEST_METHOD"]
    if path == "/page":
        body, status, ctype = PAGE, "200 OK", "text/html; charset=utf-8"
    elif path == "/api/items" and method == "POST":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        environ["wsgi.input"].read(length)
        body, status, ctype = CREATED, "201 Created", "application/json"
    elif path == "/api/items":
        body, status, ctype = ITEMS, "200 OK", "application/json"
    else:
        body, status, ctype = b"not found", "404 Not Found", "text/plain"
    start_response(status, [("Content-Type", ctype), ("Content-Length", str(len(body)))])
    return [body]


def peer_stack(token: str):
    """Flask + ProxyFix + flask-talisman + Authlib bearer (an in-memory token)."""
    from authlib.integrations.flask_oauth2 import ResourceProtector
    from authlib.oauth2.rfc6750 import BearerTokenValidator
    from flask import Flask, Response, request
    from flask_talisman import Talisman
    from werkzeug.middleware.proxy_fix import ProxyFix

    class Token:
        def __init__(self, scope):
            self.scope = scope

        def is_expired(self):
            return False

        def is_revoked(self):
            return False

        def get_scope(self):
            return self.scope

    class Validator(BearerTokenValidator):
        tokens = {token: Token("items:read items:write")}

        def authenticate_token(self, token_string):
            return self.tokens.get(token_string)

    app = Flask("peer")
    Talisman(app, force_https=True, strict_transport_security_max_age=365 * 86400)
    require_oauth = ResourceProtector()
    require_oauth.register_token_validator(Validator())

    @app.get("/api/items")
    @require_oauth("items:read")
    def items():
        return Response(ITEMS, mimetype="application/json")

    @app.post("/api/items")
    @require_oauth("items:write")
    def create():
        request.get_json()
        return Response(CREATED, status=201, mimetype="application/json")

    @app.get("/page")
    def page():
        return Response(PAGE, mimetype="text/html")

    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1)
    return app


# -- the wsgisec stacks ---------------------------------------------------------------

def layer(module, app, directory, **conf):
    """A layer built the way PasteDeploy builds it (ini strings through filter_factory)."""
    factory = importlib.import_module(f"wsgisec.{module}").filter_factory
    return factory({"here": directory, "__file__": os.path.join(directory, "bench.ini")}, **conf)(app)


def four_layers(directory):
    store = "sqlite:///" + os.path.join(directory, "four.sqlite")
    app = layer("escaping", bare, directory, store=store)
    app = layer("token_auth", app, directory, store=store, public_paths="=/page",
                scopes="GET /api/items items:read\nPOST /api/items items:write")
    app = layer("https", app, directory, store=store, trusted_proxies="127.0.0.1 ::1")
    stack = layer("errors", app, directory, store=store)
    token_auth = pipeline.find_layer(stack, TokenAuth)
    client, _secret = token_auth.registry.create("bench", scopes=["items:read", "items:write"])
    return stack, token_auth.issue_token(client["id"])["access_token"]


def bench_rules(directory):
    """The example's allowlist plus what the workloads send (``id``, a description, /page)."""
    with open(os.path.join(EXAMPLES, "partner_api.openapi.yaml"), encoding="utf-8") as source:
        rules = yaml.safe_load(source)
    items = rules["paths"]["/api/items"]
    items["get"]["parameters"].append({"name": "id", "in": "query", "schema": {"type": "integer", "minimum": 1}})
    new_item = copy.deepcopy(rules["components"]["schemas"]["NewItem"])
    new_item["properties"]["description"] = {"type": "string", "maxLength": 2000}
    rules["components"]["schemas"]["BenchItem"] = new_item
    items["post"]["requestBody"]["content"]["application/json"]["schema"] = {"$ref": "#/components/schemas/BenchItem"}
    rules["paths"]["/page"] = {"get": {"summary": "50 KB page", "responses": {"200": {"description": "page"}}}}
    path = os.path.join(directory, "bench.openapi.yaml")
    with open(path, "w", encoding="utf-8") as out:
        yaml.safe_dump(rules, out, allow_unicode=True)
    return path


def flagship(directory, store=None):
    """examples/partner_api.ini, the bare function as its app, the bench rules; on
    ``store`` (a URL; default an SQLite file in ``directory``)."""
    with open(os.path.join(EXAMPLES, "partner_api.ini"), encoding="utf-8") as source:
        text = source.read()
    rules = bench_rules(directory)
    text = text.replace("%(here)s/partner_api.openapi.yaml", rules).replace("%(here)s", EXAMPLES)
    text = text.replace("public_paths = =/healthz", "public_paths = =/page =/healthz")
    text = text.replace("factory = flask_legacy.app:app_factory", f"application = bench_peers:bare\npath = {HERE}")
    ini = os.path.join(directory, "flagship.ini")
    with open(ini, "w", encoding="utf-8") as out:
        out.write(text)
    store = store or "sqlite:///" + os.path.join(directory, "flagship.sqlite")
    stack = pipeline.load(ini, global_conf={"wsgisec_store": store})
    token_auth = pipeline.find_layer(stack, TokenAuth)
    signed = pipeline.find_layer(stack, SignedRequests)
    client, _secret = token_auth.registry.create("bench", scopes=["items:read", "items:write"])
    key = signed.issue_signing_key(client["id"])
    return stack, {"access_token": token_auth.issue_token(client["id"])["access_token"],
                   "request_token": signed.issue_request_token(client["id"])[0],
                   "keyid": key["keyid"], "key": key["key"]}


# -- measuring ------------------------------------------------------------------------

class Pool:
    """The next pre-signed headers for each call (a nonce is good once: never wraps)."""

    def __init__(self, app, headers):
        self.app, self.headers, self.used = app, headers, 0

    def __call__(self, environ, start_response):
        if self.used >= len(self.headers):
            raise SystemExit("bench_peers: the signed pool ran out; raise --pool")
        environ.update(self.headers[self.used])
        self.used += 1
        return self.app(environ, start_response)


def templates(token):
    common = dict(https=False, HTTP_X_FORWARDED_PROTO="https", HTTP_X_FORWARDED_FOR="203.0.113.9", **PROXY)
    bearer = {"Authorization": "Bearer " + token}
    return {
        "W1": (environ_for("/api/items?id=42", headers=bearer, **common), "200"),
        "W2": (environ_for("/api/items", method="POST", body=POST_BODY,
                           headers=dict(bearer, **{"Content-Type": "application/json"}), **common), "201"),
        "W3": (environ_for("/page", HTTP_ACCEPT="text/html", **common), "200"),
    }


def calibrate(app, template, expect, seconds):
    """How many calls make one round of about ``seconds`` (after checking the status)."""
    status = _call(app, template)
    if not status.startswith(expect):
        raise SystemExit(f"bench_peers: expected {expect}, got {status}")
    count, elapsed = 1, 0.0
    while elapsed < seconds / 4:
        count *= 2
        start = time.perf_counter()
        for _ in range(count):
            _call(app, template)
        elapsed = time.perf_counter() - start
    return max(1, int(count * seconds / elapsed))


def timed_round(app, template, count):
    start = time.perf_counter()
    for _ in range(count):
        _call(app, template)
    return (time.perf_counter() - start) / count * 1e6


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", default=os.path.join(tempfile.gettempdir(), "bench_peers.json"))
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--seconds", type=float, default=0.1, help="length of one round of one case")
    parser.add_argument("--pool", type=int, default=16000, help="pre-signed requests per signed workload")
    parser.add_argument("--redis", metavar="URL", help="also the flagship on this Redis (e.g. "
                        "redis://127.0.0.1:6379/15), under a key prefix of its own, deleted afterwards")
    args = parser.parse_args(argv)
    logging.disable(logging.CRITICAL)  # events are logged per request; not what is measured
    directory = tempfile.mkdtemp(prefix="wsgisec-peers-")
    four, four_token = four_layers(directory)
    flag, credentials = flagship(directory)
    print(f"signing {2 * args.pool} requests for the flagship ...", file=sys.stderr)
    flag_apps = {"W1": Pool(flag, signed_pool(credentials, "GET", "/api/items?id=42", b"", size=args.pool)),
                 "W2": Pool(flag, signed_pool(credentials, "POST", "/api/items", POST_BODY, size=args.pool)),
                 "W3": flag}
    peer_token = "peer-" + "t" * 40
    peer = peer_stack(peer_token)
    on_redis = None
    if args.redis:
        separator = "&" if "?" in args.redis else "?"
        prefix = f"bench-peers-{os.getpid()}:"
        on_redis = args.redis + f"{separator}prefix={prefix}"
        redis_flag, redis_credentials = flagship(directory, store=on_redis)
        redis_apps = {"W1": Pool(redis_flag, signed_pool(redis_credentials, "GET", "/api/items?id=42", b"",
                                                         size=args.pool)),
                      "W2": Pool(redis_flag, signed_pool(redis_credentials, "POST", "/api/items", POST_BODY,
                                                         size=args.pool)),
                      "W3": redis_flag}
    stacks = [("bare WSGI function", lambda w: bare, peer_token),
              ("Flask + ProxyFix + flask-talisman + Authlib bearer (peer)", lambda w: peer, peer_token),
              ("wsgisec error_masker + https + token_auth + escaping", lambda w: four, four_token),
              ("wsgisec flagship (partner_api.ini, 7 layers) on SQLite", lambda w: flag_apps[w],
               credentials["access_token"])]
    if on_redis:
        stacks.append(("wsgisec flagship (7 layers) on Redis (loopback, tracked cache)",
                       lambda w: redis_apps[w], redis_credentials["access_token"]))
    cases = []
    for name, app_for, token in stacks:
        for workload in WORKLOADS:
            template, expect = templates(token)[workload]
            app = app_for(workload)
            cases.append((name, workload, app, template, expect,
                          calibrate(app, template, expect, args.seconds)))
    # Round-robin: every case runs once per round, so a busy moment of the (shared)
    # machine lands on all stacks alike instead of on whichever ran then.
    per_round = {(name, workload): [] for name, workload, *_ in cases}
    for _ in range(args.rounds):
        for name, workload, app, template, expect, count in cases:
            per_round[name, workload].append(timed_round(app, template, count))
    results = {}
    for name, workload, app, template, expect, count in cases:
        if not _call(app, template).startswith(expect):
            raise SystemExit(f"bench_peers: {name} {workload}: the last call was not {expect}")
        rounds = per_round[name, workload]
        results.setdefault(name, {})[workload] = {
            "median": statistics.median(rounds), "low": min(rounds), "high": max(rounds),
            "count": count, "rounds": len(rounds)}
    report(results, args.json)
    if on_redis:
        import redis

        client = redis.Redis.from_url(args.redis.split("?")[0])
        for name in client.scan_iter(match=prefix.replace("*", "\\*") + "*", count=1000):
            client.delete(name)


def report(results, path):
    names = list(results)
    bare_name, peer_name = names[0], names[1]
    print(f"\n{'stack':58}" + "".join(f" {w + ' µs (low-high)':>22} {'added':>7} {'/peer':>6}" for w in WORKLOADS))
    for name in names:
        line = f"{name:58}"
        for workload in WORKLOADS:
            row = results[name][workload]
            row["added"] = row["median"] - results[bare_name][workload]["median"]
            peer_added = results[peer_name][workload]["median"] - results[bare_name][workload]["median"]
            row["ratio_to_peer"] = row["added"] / peer_added if peer_added > 0 else None
            spread = f"{row['median']:.1f} ({row['low']:.0f}-{row['high']:.0f})"
            ratio = f"{row['ratio_to_peer']:.2f}" if row["ratio_to_peer"] is not None else "-"
            line += f" {spread:>22} {row['added']:+7.1f} {ratio:>6}"
        print(line)
    print("\n| stack |" + "".join(f" {w} µs (low-high) | {w} added | ×peer |" for w in WORKLOADS))
    print("|---|" + "---:|" * 3 * len(WORKLOADS))
    for name in names:
        cells = []
        for workload in WORKLOADS:
            row = results[name][workload]
            ratio = f"{row['ratio_to_peer']:.2f}" if row["ratio_to_peer"] is not None else "-"
            cells.append(f" {row['median']:.1f} ({row['low']:.0f}-{row['high']:.0f}) | {row['added']:+.0f} | {ratio} |")
        print(f"| {name} |" + "".join(cells))
    with open(path, "w", encoding="utf-8") as out:
        json.dump({"python": sys.version.split()[0], "load": os.getloadavg(), "results": results}, out, indent=1)
    print(f"\nJSON: {path}")


if __name__ == "__main__":
    main()
