"""CSRF token injection in a bounded sliding window (issue 11, "Browser forms").

The review grew the /notes page past ``csrf_max_rewrite_size`` with a few dozen posts;
the form then went out without its token and every logged-in user got 403. Now the
size of a page never switches the defence off: a larger page is injected chunk by chunk.
"""

from __future__ import annotations

import re

from hypothesis import given, settings as hsettings, strategies as st

from test_csrf import TOKEN_FIELD, Browser, client, layer
from wsgisec.signed_requests.csrf import inject
from wsgisec.signed_requests.csrf.inject import _MAX_TAG, WindowInjector


def test_notes_page_grown_past_the_limit_still_works_for_users():
    """Through the Flask example: grow the page with posts, then a user posts again."""
    from flask_legacy.app import create_app

    csrf = layer(create_app(), csrf_max_rewrite_size=1024)
    user = Browser(csrf)
    for _ in range(40):  # ~40 notes of 100 bytes: the page is now well over 1 KB
        user.post({"note": "n" * 100, "csrf_token": user.token}, status=200)
    grown = Browser(csrf)  # a user loading the big page gets a form with a token
    page = client(csrf).get("/notes", headers={"Cookie": grown.cookie_header()})
    assert len(page.body) > 4 * 1024
    assert len(TOKEN_FIELD.findall(page.text)) == 1
    grown.post({"note": "still works", "csrf_token": grown.token}, status=200)


def window(data: bytes, cuts, masked="MASKED") -> bytes:
    injector = WindowInjector(masked, "csrf_token", "X-CSRF-Token")
    out, position = [], 0
    for cut in sorted(set(cuts)):
        if position < cut < len(data):
            out.append(injector.feed(data[position:cut]))
            position = cut
    out.append(injector.feed(data[position:]))
    out.append(injector.finish())
    return b"".join(out)


PIECES = st.sampled_from([b"<html>", b"<head>", b"<HEAD lang=en>", b"</head>", b"<form method=post>",
                          b'<form action="/x" method="POST">', b"<form method='get'>", b"<form>", b"</form>",
                          b'<form data-x="a>b" method=post>', b"<p>", b"text ", b"<fo", b"rm", b"<", b">",
                          b'"', b"<formx method=post>", b"<head/>"])


@hsettings(max_examples=300, deadline=None)
@given(pieces=st.lists(PIECES, max_size=30), cuts=st.lists(st.integers(1, 400), max_size=12))
def test_window_gives_the_same_page_as_the_whole_rewrite(pieces, cuts):
    data = b"".join(pieces)
    assert window(data, cuts) == inject(data, "MASKED", "csrf_token", "X-CSRF-Token")


def test_tag_split_across_many_chunks_and_bounded_carry():
    page = b"<html><head></head><body>" + b"x" * 10_000 + b'<form method="post" ' + b"a" * 1000 + b">"
    injector = WindowInjector("M", "csrf_token", "X-CSRF-Token")
    out = []
    for i in range(0, len(page), 7):  # 7-byte chunks: every tag is cut several times
        out.append(injector.feed(page[i:i + 7]))
        assert len(injector.carry) <= _MAX_TAG + 5
    out.append(injector.finish())
    body = b"".join(out)
    assert body.count(b'name="csrf_token"') == 1 and body.count(b'<meta name="csrf-token"') == 1


def test_an_unclosed_tag_does_not_hold_the_page():
    page = b"<form method=post " + b"x" * (3 * _MAX_TAG)
    injector = WindowInjector("M", "csrf_token", "X-CSRF-Token")
    sent = sum(len(injector.feed(page[i:i + 1000])) for i in range(0, len(page), 1000))
    assert sent >= len(page) - _MAX_TAG - 5  # only a bounded tail is ever held back
    assert injector.finish() + b"" is not None


def test_large_page_is_linear():
    """A 4 MB page goes through in 64 KB chunks with memory bounded by the carry."""
    form = b'<form method="post"><input name=a></form>'
    page = (b"<p>row</p>" * 1000 + form) * 100
    injector = WindowInjector("M", "csrf_token", "X-CSRF-Token")
    total = 0
    for i in range(0, len(page), 65536):
        total += injector.feed(page[i:i + 65536]).count(b'name="csrf_token"')
    total += injector.finish().count(b'name="csrf_token"')
    assert total == 100
    assert re.search(rb"csrf", page) is None
