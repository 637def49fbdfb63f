"""What the whitelist layer costs per passing request (python benchmarks/bench_whitelist.py).

Cases: a GET with three declared query parameters (free text, integer, enum) and a 1 KB
JSON POST validated against its schema and walked by the text policy; each against a
trivial WSGI app (the layer's own cost) and against the example Flask app (a realistic
ratio). Also the per-value cost of the text policy and of fastjsonschema vs jsonschema,
the measurement behind the choice of fastjsonschema.
"""

from __future__ import annotations

import json
import os
import sys
import timeit

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "examples"))

from harness import Case, environ_for, run  # noqa: E402

from wsgisec.whitelist.text_policy import check  # noqa: E402
from wsgisec.whitelist import Whitelist  # noqa: E402

RULES = os.path.join(HERE, "..", "examples", "partner_api.openapi.yaml")

# A 1 KB order as partners send it: short typed fields plus some free text.
BODY = json.dumps({
    "name": "Deluxe sprocket", "price": 24.5, "quantity": 3, "sku": "SPR-0042-DELUXE-EDITION",
    "tags": ["hardware", "sprockets", "O'Brien", "AT&T-compatible"],
    "note": "Please deliver to the loading dock at the back; ring twice. Grade 3 < 5 is fine. " * 9,
    "contact": {"name": "Siobhán O'Brien", "email": "siobhan@example.com", "phone": "+353 1 234 5678"},
}).encode()
assert 1000 <= len(BODY) <= 1100, len(BODY)

DOC = {"openapi": "3.1.0", "paths": {
    "/items": {"get": {"parameters": [
        {"name": "q", "in": "query", "schema": {"type": "string", "maxLength": 100}},
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
        {"name": "sort", "in": "query", "schema": {"type": "string", "enum": ["name", "price"]}}]}},
    "/api/items": {"post": {"requestBody": {"content": {"application/json": {"schema": {
        "type": "object", "required": ["name"], "properties": {
            "name": {"type": "string", "maxLength": 100}, "price": {"type": "number", "minimum": 0},
            "quantity": {"type": "integer", "minimum": 1}, "sku": {"type": "string", "pattern": "^[A-Z0-9-]+$"},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 40}},
            "note": {"type": "string", "maxLength": 2000},
            "contact": {"type": "object", "properties": {
                "name": {"type": "string"}, "email": {"type": "string", "format": "email"},
                "phone": {"type": "string", "pattern": "^[+0-9 ]+$"}}}}}}}}}},
}}


def trivial(environ, start_response):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if length:
        environ["wsgi.input"].read(length)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


def main():
    from flask_legacy.app import create_app

    three = environ_for("/items?q=O%27Brien+%26+sons&limit=10&sort=name")
    post = environ_for("/api/items", method="POST", body=BODY,
                       headers={"Content-Type": "application/json; charset=utf-8"})
    layer = Whitelist(trivial, rules=DOC)
    print("-- the layer's own cost (a trivial app inside) --")
    run([Case("whitelist: GET, 3 params (free text, integer, enum)", layer, three)],
        bare=Case("bare trivial app: GET", trivial, three))
    run([Case("whitelist: POST 1 KB JSON (schema + text policy)", layer, post)],
        bare=Case("bare trivial app: POST 1 KB (body read)", trivial, post))

    flask_app = create_app()
    print("\n-- in front of the example Flask app --")
    search = environ_for("/search?q=O%27Brien+%26+sons&next=/api/items")
    run([Case("whitelist(example doc) + flask: GET /search, 2 params", Whitelist(flask_app, rules=RULES), search)],
        bare=Case("bare flask: GET /search", flask_app, search))
    run([Case("whitelist + flask: POST /api/items 1 KB JSON", Whitelist(flask_app, rules=DOC), post,
              expect_status="201")],
        bare=Case("bare flask: POST /api/items 1 KB JSON", flask_app, post, expect_status="201"))

    print("\n-- pieces --")
    n = 20000
    for value in ("Widget", "O'Brien & sons, 3 < 5", "日本語のテキスト 👍", BODY.decode()[:1000]):
        cost = timeit.timeit(lambda: check(value), number=n // 10) / (n // 10) * 1e6
        print(f"text_policy.check({value[:24]!r:28} {len(value):5} chars) {cost:8.2f} µs")
    import fastjsonschema

    schema = DOC["paths"]["/api/items"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    value = json.loads(BODY)
    fast = fastjsonschema.compile(schema, formats={})
    print(f"fastjsonschema: validate the 1 KB order  {timeit.timeit(lambda: fast(value), number=n) / n * 1e6:8.2f} µs")
    try:
        import jsonschema  # only for the comparison behind choosing fastjsonschema; not a dependency
    except ImportError:
        print("jsonschema:     not installed (pip install jsonschema to compare)")
        return
    slow = jsonschema.Draft7Validator(schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
    print(f"jsonschema:     validate the 1 KB order  "
          f"{timeit.timeit(lambda: slow.validate(value), number=n // 10) / (n // 10) * 1e6:8.2f} µs")


if __name__ == "__main__":
    main()
