"""A deliberately *legacy* Pyramid partner API (see flask_legacy for the Flask twin).

On purpose it builds JSON by hand (``/api/orders``), echoes input into HTML unescaped
(``/greet``), returns XML with the caller's input in it (``/api/orders.xml``), lets a
database error escape (``/api/report``) and announces itself in ``X-Powered-By``.
"""

import sqlite3

from pyramid.config import Configurator
from pyramid.response import Response

ORDERS = [{"id": 101, "sku": "W-1", "quantity": 2}, {"id": 102, "sku": "G-7", "quantity": 1}]


def healthz(request):
    return Response("ok\n", content_type="text/plain")


def list_orders(request):
    sku = request.params.get("sku", "")
    found = [order for order in ORDERS if not sku or order["sku"] == sku]
    body = '{"sku": "' + sku + '", "orders": [' + ", ".join(
        '{"id": %d, "sku": "%s", "quantity": %d}' % (o["id"], o["sku"], o["quantity"]) for o in found) + "]}"
    response = Response(body, content_type="application/json", charset="utf-8")
    response.headers["X-Powered-By"] = "Pyramid/2"
    return response


def orders_xml(request):
    sku = request.params.get("sku", "")
    body = '<?xml version="1.0"?><orders sku="' + sku + '">' + "".join(
        '<order id="%d">%s</order>' % (o["id"], o["sku"]) for o in ORDERS) + "</orders>"
    return Response(body, content_type="application/xml", charset="utf-8")


def greet(request):
    name = request.params.get("name", "partner")
    return Response("<!DOCTYPE html><html><body><p>Hello " + name + "</p></body></html>",
                    content_type="text/html")


def report(request):
    # A table that does not exist: sqlite3.OperationalError escapes to the server.
    rows = sqlite3.connect(":memory:").execute("SELECT * FROM monthly_report").fetchall()
    return Response(str(rows), content_type="text/plain")


def make_app():
    with Configurator() as config:
        for name, path, view, method in [
            ("healthz", "/healthz", healthz, "GET"),
            ("orders", "/api/orders", list_orders, "GET"),
            ("orders_xml", "/api/orders.xml", orders_xml, "GET"),
            ("greet", "/greet", greet, "GET"),
            ("report", "/api/report", report, "GET"),
        ]:
            config.add_route(name, path, request_method=method)
            config.add_view(view, route_name=name)
        return config.make_wsgi_app()


def app_factory(global_conf, **local_conf):
    """PasteDeploy ``[app:...] use = call:pyramid_legacy.app:app_factory``."""
    return make_app()
