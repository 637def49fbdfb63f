"""A deliberately *legacy* Flask partner API: the app wsgisec is put in front of.

It is written the way old partner APIs often are, and must not be "fixed" here: the point
of wsgisec is that its code stays as it is. On purpose it

* builds JSON by string concatenation (``/api/items``),
* echoes input into HTML unescaped (``/search``) and into XML (``/api/items.xml``),
* builds SQL by string formatting and returns the database error and traceback to the
  caller (``/api/lookup``),
* has a route that raises, with exceptions propagating to the server (``/api/crash``),
* exports CSV without neutralising formulas (``/api/export.csv``),
* has an HTML form posted with a cookie session (``/notes``),
* announces itself with ``Server`` and ``X-Powered-By`` headers.

It trusts ``REMOTE_USER`` and ``environ["wsgisec.scopes"]`` to know who is calling.
"""

import sqlite3
import traceback
import xml.etree.ElementTree as ElementTree

from flask import Flask, Response, request

ITEMS = [
    {"id": 1, "name": "Widget", "price": 9.5},
    {"id": 2, "name": "Gadget", "price": 24.0},
    {"id": 3, "name": "O'Brien's sprocket", "price": 3.25},
]


def _db():
    connection = sqlite3.connect(":memory:")
    connection.execute("CREATE TABLE items (id INTEGER, name TEXT, price REAL)")
    connection.executemany("INSERT INTO items VALUES (:id, :name, :price)", ITEMS)
    return connection


def create_app():
    app = Flask(__name__)
    # Legacy: exceptions escape to the WSGI server instead of Flask's own 500 page.
    app.config["PROPAGATE_EXCEPTIONS"] = True
    notes = []

    @app.after_request
    def legacy_headers(response):
        response.headers["Server"] = "LegacyServer/1.0 (Debian) Python/3"
        response.headers["X-Powered-By"] = "Flask"
        return response

    @app.get("/healthz")
    def healthz():
        return "ok\n"

    @app.get("/")
    def index():
        return ("<!DOCTYPE html><html><head><title>Partner API</title></head><body>"
                "<h1>Partner API</h1><p>See <a href=\"/api/items\">/api/items</a>.</p>"
                "</body></html>")

    @app.get("/api/whoami")
    def whoami():
        user = request.environ.get("REMOTE_USER", "")
        scopes = " ".join(request.environ.get("wsgisec.scopes", ()))
        # String-built JSON, the legacy way.
        body = '{"user": "' + user + '", "scopes": "' + scopes + '"}'
        return Response(body, mimetype="application/json")

    @app.get("/api/items")
    def list_items():
        q = request.args.get("q", "")
        limit = int(request.args.get("limit", "10"))
        found = [item for item in ITEMS if q.lower() in item["name"].lower()][:limit]
        parts = ['{"id": %d, "name": "%s", "price": %s}' % (i["id"], i["name"], i["price"]) for i in found]
        body = '{"query": "' + q + '", "items": [' + ", ".join(parts) + "]}"
        return Response(body, mimetype="application/json")

    @app.get("/api/items/<int:item_id>")
    def get_item(item_id):
        for item in ITEMS:
            if item["id"] == item_id:
                return Response('{"id": %d, "name": "%s"}' % (item["id"], item["name"]),
                                mimetype="application/json")
        return Response('{"error": "no item ' + str(item_id) + '"}', status=404, mimetype="application/json")

    @app.post("/api/items")
    def create_item():
        data = request.get_json(force=True, silent=True) or {}
        name = str(data.get("name", ""))
        price = data.get("price", 0)
        item = {"id": len(ITEMS) + 1, "name": name, "price": price}
        ITEMS.append(item)
        return Response('{"id": %d, "name": "%s"}' % (item["id"], name), status=201,
                        mimetype="application/json")

    @app.get("/api/lookup")
    def lookup():
        # SQL built by string formatting: a classic injection, and errors leak.
        name = request.args.get("name", "")
        try:
            rows = _db().execute("SELECT id, name FROM items WHERE name = '%s'" % name).fetchall()
        except sqlite3.Error:
            # "Helpful" legacy error reporting: the database error and the trace go to the caller.
            return Response('{"error": "' + traceback.format_exc().replace("\n", "\\n").replace('"', "'") + '"}',
                            mimetype="application/json")
        return Response('{"count": %d}' % len(rows), mimetype="application/json")

    @app.get("/api/crash")
    def crash():
        return str(1 / 0)

    @app.get("/search")
    def search():
        q = request.args.get("q", "")
        return ("<!DOCTYPE html><html><head><title>Search</title></head><body>"
                "<h1>Results for " + q + "</h1>"
                "<a href=\"" + request.args.get("next", "/") + "\">back</a>"
                "</body></html>")

    @app.get("/api/items.xml")
    def items_xml():
        q = request.args.get("q", "")
        body = "<?xml version=\"1.0\"?><items query=\"" + q + "\">" + "".join(
            "<item id=\"%d\">%s</item>" % (i["id"], i["name"]) for i in ITEMS) + "</items>"
        return Response(body, mimetype="application/xml")

    @app.post("/api/orders.xml")
    def order_xml():
        root = ElementTree.fromstring(request.get_data())
        sku = root.findtext("sku", "")
        return Response("<?xml version=\"1.0\"?><order><sku>" + sku + "</sku><status>accepted</status></order>",
                        status=201, mimetype="application/xml")

    @app.get("/api/export.csv")
    def export_csv():
        rows = ["id,name,price"] + ["%d,%s,%s" % (i["id"], i["name"], i["price"]) for i in ITEMS]
        return Response("\r\n".join(rows) + "\r\n", mimetype="text/csv")

    @app.route("/notes", methods=["GET", "POST"])
    def notes_page():
        if request.method == "POST":
            notes.append(request.form.get("note", ""))
        response = Response(
            "<!DOCTYPE html><html><head><title>Notes</title></head><body><h1>Notes</h1><ul>"
            + "".join("<li>" + note + "</li>" for note in notes)
            + "</ul><form method=\"post\" action=\"/notes\"><input name=\"note\">"
            "<button type=\"submit\">Add</button></form></body></html>",
            mimetype="text/html")
        if "session" not in request.cookies:
            response.set_cookie("session", "legacy-session-id")
        return response

    return app


def app_factory(global_conf, **local_conf):
    """PasteDeploy ``[app:...] use = call:flask_legacy.app:app_factory``."""
    return create_app()
