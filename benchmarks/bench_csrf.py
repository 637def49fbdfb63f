"""Per-request cost of BrowserCSRF (wsgisec.csrf), against the bare app.

    python benchmarks/bench_csrf.py

Cases: a GET of an HTML page whose form gets the token injected (with and without a
valid CSRF cookie already in the browser), a verified form POST (Origin + Sec-Fetch-Site
+ signed double-submit token from an urlencoded body, and from the header), and a JSON
GET that the layer must not touch. Two bare apps: a minimal WSGI callable serving a
~4 KB page (the layer's own cost) and the legacy Flask example's /notes (what users run).
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, "..", "examples")]

from harness import Case, environ_for, run  # noqa: E402

from flask_legacy.app import create_app  # noqa: E402
from wsgisec.signed_requests.csrf import BrowserCSRF  # noqa: E402
from wsgisec.signed_requests.csrf.tokens import mask as _mask  # noqa: E402
from wsgisec.settings import Secret  # noqa: E402

KEYS = (Secret("benchmark-key-0123456789abcdef0123456789", "env"),)
PAGE = (b"<!DOCTYPE html><html><head><title>Notes</title></head><body><h1>Notes</h1><ul>"
        + b"".join(b"<li>note number %d with some text</li>" % i for i in range(100))
        + b'</ul><form method="post" action="/notes"><input name="note">'
          b'<button type="submit">Add</button></form></body></html>')
JSON = b'{"items": [' + b", ".join(b'{"id": %d, "name": "Widget %d"}' % (i, i) for i in range(40)) + b"]}"


def tiny(environ, start_response):
    if environ["PATH_INFO"] == "/api/items":
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(JSON)))])
        return [JSON]
    if environ["REQUEST_METHOD"] == "POST":
        environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(PAGE)))])
    return [PAGE]


def main():
    for label, bare in ((f"minimal WSGI app, {len(PAGE)} B HTML page", tiny),
                        ("legacy Flask app, /notes", create_app())):
        print(f"\n## {label}")
        csrf = BrowserCSRF(bare, secret_keys=KEYS, store=None, csrf_session_cookie="session")
        token = csrf.issue("legacy-session-id")
        cookie = f"session=legacy-session-id; csrf={token}"
        masked = _mask(token)
        get = environ_for("/notes", https=False, headers={"Cookie": "session=legacy-session-id"})
        get_with_cookie = environ_for("/notes", https=False, headers={"Cookie": cookie})
        same_origin = {"Cookie": cookie, "Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"}
        form = f"note=hello&csrf_token={masked}".encode()
        post_form = environ_for("/notes", method="POST", body=form, https=False, headers=dict(
            same_origin, **{"Content-Type": "application/x-www-form-urlencoded"}))
        post_header = environ_for("/notes", method="POST", body=b"note=hello", https=False, headers=dict(
            same_origin, **{"Content-Type": "application/x-www-form-urlencoded", "X-CSRF-Token": masked}))
        bare_post = environ_for("/notes", method="POST", body=b"note=hello", https=False, headers={
            "Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"})
        json_get = environ_for("/api/items", https=False, headers={"Cookie": cookie})
        cases = [
            Case("csrf: GET HTML, new token (Set-Cookie + injection)", csrf, get),
            Case("csrf: GET HTML, valid cookie (injection only)", csrf, get_with_cookie),
        ]
        # The Flask app appends every posted note to its page, so repeated POSTs would
        # measure a growing page: POSTs are measured on the minimal app only.
        if bare is tiny:
            cases += [
                Case("csrf: POST, token in urlencoded form (verified)", csrf, post_form),
                Case("csrf: POST, token in X-CSRF-Token header (verified)", csrf, post_header),
                Case("bare app: POST", bare, bare_post),
                Case("csrf: GET JSON (passed through untouched)", csrf, json_get),
                Case("bare app: GET JSON", bare, json_get),
            ]
        run(cases, bare=Case("bare app: GET HTML", bare, get))


if __name__ == "__main__":
    main()
