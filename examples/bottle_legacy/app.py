"""A deliberately *legacy* Bottle partner API, run the old way: ``bottle.debug(True)``.

In debug mode Bottle answers an exception with a page that shows the exception and the
traceback; with wsgisec's error_masker in front, callers get a generic 500 instead. On
purpose it also builds JSON by hand (``/api/stock``) and echoes input into HTML (``/hello``).
"""

import bottle


def make_app():
    app = bottle.Bottle(catchall=True)

    @app.get("/healthz")
    def healthz():
        bottle.response.content_type = "text/plain"
        return "ok\n"

    @app.get("/api/stock")
    def stock():
        sku = bottle.request.query.get("sku", "")
        bottle.response.content_type = "application/json"
        return '{"sku": "' + sku + '", "in_stock": 7}'

    @app.get("/hello")
    def hello():
        return "<!DOCTYPE html><html><body><p>Hello " + bottle.request.query.get("name", "") + "</p></body></html>"

    @app.get("/api/fail")
    def fail():
        raise KeyError("warehouse-db-password")

    return app


def app_factory(global_conf, **local_conf):
    """PasteDeploy ``[app:...] use = call:bottle_legacy.app:app_factory``."""
    bottle.debug(local_conf.get("debug", "true").lower() == "true")
    return make_app()
