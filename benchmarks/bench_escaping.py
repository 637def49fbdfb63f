"""What the escaping layer costs per response (python benchmarks/bench_escaping.py).

Two bodies, each served by a trivial WSGI app that returns prepared bytes (so the ratio
is the layer's own cost against the cheapest possible app):

* a 2 KB JSON response (30 items), once with nothing to escape and once with
  ``< > & '`` in every name (the hand-concatenated case);
* a 50 KB HTML page (a table of 480 rows), requested without a query (headers only,
  body untouched and unbuffered), with a harmless query (``q=widget``: not a candidate,
  so still unbuffered), with a candidate that the page does not contain (buffered,
  searched, sent unchanged), and with a payload reflected near the end of the page
  (buffered, scanned up to the reflection, rewritten, event logged without a store).

Response schemas (``response_schemas``): a 200 B and a 50 KB JSON response (an object
holding a list of items), with the check off and with ``enforce`` against an OpenAPI 3.0
document (``$ref`` to a closed item schema with a pattern, bounds and ``nullable``): what
parsing the held body once and validating it with the compiled schema adds.

Then the example Flask app bare and behind the layer (a realistic ratio). Also the 50 KB
``markupsafe.escape`` of the whole page, the cost DESIGN.md says a layer
must never pay per request, for comparison.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import timeit

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "examples"))

from harness import Case, environ_for, run  # noqa: E402

from markupsafe import escape  # noqa: E402

from wsgisec import openapi  # noqa: E402
from wsgisec.escaping import Escaping  # noqa: E402

# The reflection event is logged (no store): keep the log out of the timing output.
logging.getLogger("wsgisec.events").addHandler(logging.NullHandler())
logging.getLogger("wsgisec.events").propagate = False

PAYLOAD = "<script>alert(document.cookie)</script>"


def json_body(names):
    items = [{"id": i, "name": names[i % len(names)], "price": 9.5 + i, "sku": f"SKU-{i:05d}"}
             for i in range(30)]
    return json.dumps({"query": "widget", "items": items}, ensure_ascii=False).encode()


JSON_PLAIN = json_body(["Widget deluxe", "Gadget pro", "Sprocket"])
JSON_SPECIAL = json_body(["Widget <deluxe>", "O'Brien & Sons", "AT&T <pro>"])
assert 1900 <= len(JSON_PLAIN) <= 2300 and 1900 <= len(JSON_SPECIAL) <= 2300, (len(JSON_PLAIN), len(JSON_SPECIAL))

ROWS = "".join(f'<tr><td><a href="/items/{i}">Item number {i}</a></td><td class="price">{i * 1.5:.2f}</td>'
               f"<td>In stock</td></tr>\n" for i in range(480))


def html_page(reflected=""):
    return ("<!DOCTYPE html><html><head><title>Items</title><script>var page = {size: 480};</script>"
            "</head><body><h1>Items</h1><table>" + ROWS + "</table><p>You searched for "
            + reflected + "</p></body></html>").encode()


HTML_PLAIN = html_page("widget")
HTML_REFLECTED = html_page(PAYLOAD)
assert 45_000 <= len(HTML_PLAIN) <= 55_000, len(HTML_PLAIN)


def serving(body, content_type):
    headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]

    def app(environ, start_response):
        start_response("200 OK", list(headers))
        return [body]

    return app


SCHEMA_DOC = {"openapi": "3.0.3", "info": {"title": "bench", "version": "1"}, "paths": {"/api/items": {"get": {
    "responses": {"200": {"description": "items", "content": {"application/json": {"schema": {
        "type": "object", "required": ["query", "items"],
        "properties": {"query": {"type": "string"},
                       "items": {"type": "array", "items": {"$ref": "#/components/schemas/Item"}}}}}}}}}}},
    "components": {"schemas": {"Item": {
        "type": "object", "required": ["id", "name", "price", "sku"],
        "properties": {"id": {"type": "integer", "minimum": 0}, "name": {"type": "string", "maxLength": 100},
                       "price": {"type": "number", "nullable": True},
                       "sku": {"type": "string", "pattern": "^SKU-[0-9]{5}$"}}}}}}


def items_body(count):
    items = [{"id": i, "name": f"Widget number {i}", "price": 9.5 + i, "sku": f"SKU-{i:05d}"}
             for i in range(count)]
    return json.dumps({"query": "widget", "items": items}).encode()


JSON_200B = items_body(2)
JSON_50KB = items_body(660)
assert 150 <= len(JSON_200B) <= 250 and 45_000 <= len(JSON_50KB) <= 55_000, (len(JSON_200B), len(JSON_50KB))


def response_schemas():
    document = openapi.load(SCHEMA_DOC, responses=True)
    get = environ_for("/api/items")
    for label, body in (("200 B", JSON_200B), ("50 KB", JSON_50KB)):
        app = serving(body, "application/json")
        print()
        print(f"{label} JSON response, response schemas off / enforce")
        run([
            Case(f"escaping: {label} JSON, response_schemas = off", Escaping(app, store=None), get),
            Case(f"escaping: {label} JSON, response_schemas = enforce",
                 Escaping(app, store=None, response_schemas="enforce", rules=document), get),
        ], bare=Case(f"bare app: {label} JSON", app, get))


def main():
    json_plain = serving(JSON_PLAIN, "application/json")
    json_special = serving(JSON_SPECIAL, "application/json")
    get = environ_for("/api/items")
    print("2 KB JSON response")
    run([
        Case("escaping: 2 KB JSON, nothing to escape", Escaping(json_plain, store=None), get),
        Case("escaping: 2 KB JSON, < > & ' in every name", Escaping(json_special, store=None), get),
    ], bare=Case("bare app: 2 KB JSON", json_plain, get))
    response_schemas()

    html_plain = serving(HTML_PLAIN, "text/html; charset=utf-8")
    html_reflected = serving(HTML_REFLECTED, "text/html; charset=utf-8")
    print()
    print("50 KB HTML page")
    run([
        Case("escaping: 50 KB HTML, no query (headers only)", Escaping(html_plain, store=None),
             environ_for("/items")),
        Case("escaping: 50 KB HTML, ?q=widget (not a candidate)", Escaping(html_plain, store=None),
             environ_for("/items?q=widget")),
        Case("escaping: 50 KB HTML, candidate not in the page", Escaping(html_plain, store=None),
             environ_for("/items?q=%3Cb%3Ewidget%3C/b%3E")),
        Case("escaping: 50 KB HTML, payload reflected (rewritten)", Escaping(html_reflected, store=None),
             environ_for("/items?q=%3Cscript%3Ealert(document.cookie)%3C/script%3E")),
    ], bare=Case("bare app: 50 KB HTML", html_plain, environ_for("/items")))

    from flask_legacy.app import create_app

    flask = create_app()
    print()
    print("the example Flask app (a realistic ratio)")
    run([
        Case("escaping: Flask /api/items (JSON)", Escaping(flask, store=None), environ_for("/api/items")),
    ], bare=Case("bare Flask: /api/items", flask, environ_for("/api/items")))
    run([
        Case("escaping: Flask /search?q=widget (HTML)", Escaping(flask, store=None),
             environ_for("/search?q=widget")),
        Case("escaping: Flask /search?q=<script>... (rewritten)", Escaping(flask, store=None),
             environ_for("/search?q=%3Cscript%3Ealert(1)%3C/script%3E")),
    ], bare=Case("bare Flask: /search?q=widget", flask, environ_for("/search?q=widget")))

    number = 200
    seconds = min(timeit.repeat(lambda: escape(HTML_PLAIN.decode()), number=number, repeat=5)) / number
    print()
    print(f"for comparison, markupsafe.escape of the whole 50 KB page: {seconds * 1e6:.1f} µs")


if __name__ == "__main__":
    main()
