"""format: html values are cleaned by nh3 first; the declared length limits hold for what the app gets.

nh3 can grow a value (``&`` becomes ``&amp;``, a bare ``<`` becomes ``&lt;``, links gain
``rel="noopener noreferrer"``) or shrink it (a ``<script>`` is dropped). The app receives the
cleaned value, so ``maxLength``/``minLength`` (or ``max_string_length``) are checked on it.
"""

import json

import nh3
import pytest
from webtest import TestApp

from conftest import validated
from wsgisec.whitelist import Whitelist

DOC = {"openapi": "3.1.0", "paths": {"/notes": {
    "get": {"parameters": [{"name": "note", "in": "query",
                            "schema": {"type": "string", "format": "html", "maxLength": 20}}]},
    "post": {"requestBody": {"content": {"application/json": {"schema": {"type": "object", "properties": {
        "note": {"type": "string", "format": "html", "minLength": 3, "maxLength": 40},
        "free": {"type": "string", "format": "html"}}}}}}},
}}}


def echo(environ, start_response):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [environ.get("QUERY_STRING", "").encode() + b"|" + environ["wsgi.input"].read(length)]


@pytest.fixture
def app():
    return TestApp(validated(Whitelist(echo, rules=DOC, max_string_length=60)))


def test_a_value_that_grows_past_max_length_when_cleaned_is_refused(app):
    value = "R&D & Q&A & AT&T"  # 16 characters; nh3 makes it "R&amp;D &amp; ..." (32)
    assert len(value) <= 20 < len(nh3.clean(value))
    response = app.get("/notes", params={"note": value}, status=400)
    assert response.json["detail"] == 'query parameter "note": is longer than 20 characters once cleaned'
    assert response.headers["Content-Type"] == "application/problem+json"


def test_a_link_that_gains_rel_past_max_length_is_refused_in_a_json_body(app):
    value = '<a href="/x">y</a>'  # nh3 adds rel="noopener noreferrer"
    assert len(value) <= 40 < len(nh3.clean(value))
    response = app.post("/notes", json.dumps({"note": value}), content_type="application/json", status=400)
    assert response.json["detail"] == 'body property "note": is longer than 40 characters once cleaned'


def test_without_max_length_the_layer_limit_holds_after_cleaning(app):
    value = "&" * 50  # 50 characters; 250 once each "&" is "&amp;"
    response = app.post("/notes", json.dumps({"free": value}), content_type="application/json", status=400)
    assert response.json["detail"] == 'body property "free": is longer than 60 characters once cleaned'


def test_a_value_cleaned_below_min_length_is_refused(app):
    response = app.post("/notes", json.dumps({"note": "<script>alert(1)</script>ok"}),
                        content_type="application/json", status=400)
    assert response.json["detail"] == 'body property "note": is shorter than 3 characters once cleaned'


def test_a_cleaned_value_within_the_limits_reaches_the_app_cleaned(app):
    response = app.get("/notes", params={"note": "<b onclick=x>hi</b>"})
    assert response.text == "note=%3Cb%3Ehi%3C%2Fb%3E|"
    app.get("/notes", params={"note": "plain words"}, status=200)
