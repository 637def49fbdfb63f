"""Tiny bare WSGI apps for the ini fixtures in this folder (importable: the ini's folder
is put on sys.path by wsgisec.pipeline.load)."""


def hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", "6")])
    return [b"hello\n"]


def hello_factory(global_conf, **local_conf):
    return hello
