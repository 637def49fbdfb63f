"""Hostile requests against every layer of the flagship at once (issue 14).

Each example is one raw WSGI environ (see :mod:`tests.fuzz.strategies`) sent through
``wsgiref.validate`` to ``examples/partner_api.ini`` as PasteDeploy loads it; most are
signed as a real partner, so they get past token_auth and signed_requests and reach the
allowlist, the escaping layer and the legacy app. :meth:`Flagship.check` asserts the
properties of every response; each test also asserts that its fuzz reached the legacy app
often enough to mean something (a fuzz refused at the first layer proves little).
"""

from __future__ import annotations

import io
import resource

import pytest
from hypothesis import given, strategies as st

from .harness import Flagship, fuzz_settings, reached_report
from .strategies import BODY_PATHS, bodies, deep_bodies, deep_requests, headers, methods, paths, queries

AUTH = st.sampled_from(["signed", "signed", "signed", "unsigned", "forged-body", "forged-path", "stale",
                        "replay", "wrong-key"])


@pytest.fixture(scope="module")
def flagship(tmp_path_factory):
    return Flagship(tmp_path_factory.mktemp("fuzz"))


@pytest.fixture
def fresh(flagship):
    flagship.statuses.clear()
    flagship.reached = flagship.authenticated = 0
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    yield flagship
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 256, f"peak memory grew by {grown_mb:.0f} MB"


def signature_protected(path: str) -> bool:
    """Paths signed_requests guards in the flagship: the partner API and partner reports.
    (The operators' dashboard takes an admin bearer token alone, by design.)"""
    return path.startswith("/api/") or path == "/_wsgisec/reports"


def send(flagship, auth, method, path, query, extra, body=b"", content_length="auto", terminated=False):
    """Build, maybe sign (or forge), send and check one request; returns its status code."""
    def build():
        return flagship.environ(method, path, query, extra, body, content_length, terminated)

    environ = build()
    signature = None
    if auth != "unsigned":
        signature = flagship.sign(environ, body, created=1_000_000_000 if auth == "stale" else None)
    if signature is not None:
        if auth == "forged-body":
            environ["wsgi.input"] = io.BytesIO(body + b"x")
            environ["CONTENT_LENGTH"] = str(len(body) + 1)
        elif auth == "forged-path":
            environ["PATH_INFO"] += "x"
        elif auth == "wrong-key":
            environ["HTTP_SIGNATURE_INPUT"] = environ["HTTP_SIGNATURE_INPUT"].replace(flagship.keyid, "k_unknown")
    signed = {key: environ[key] for key in environ if key.startswith("HTTP_")}
    status = int(flagship.call(environ, signature=signature)[0][:3])
    if auth == "replay" and signature is not None:
        again = build()
        again.update(signed)
        replayed = int(flagship.call(again, signature=signature)[0][:3])
        if status < 300 and signature_protected(path):
            assert replayed in (401, 403), f"a replay of {method} {path!r} was answered {replayed}"
    if auth in ("forged-body", "forged-path", "stale", "wrong-key") and signature is not None \
            and signature_protected(path):
        assert status >= 400, f"a forged request ({auth}) to {path!r} was answered {status}"
    return status


#: Declared routes, signed (they reach the allowlist, the escaping layer and the app), or
#: anything at all with any kind of credential or forgery. Hypothesis does not repeat an
#: example, so the declared routes (a smaller space) are used up first and the rest of
#: the budget goes to anything at all.
REQUESTS = st.one_of(deep_requests().map(lambda found: ("signed", *found)),
               st.tuples(AUTH, methods, paths(), queries(), headers()))
DEEP_BODIES = deep_bodies().map(lambda found: ("signed", "POST", found[0], "", {"CONTENT_TYPE": found[1]},
                                              *found[2:]))
BODY_REQUESTS = st.one_of(
    DEEP_BODIES,
    st.tuples(AUTH, st.sampled_from(["POST", "POST", "POST", "PUT", "PATCH", "DELETE"]), st.sampled_from(BODY_PATHS),
              queries(), headers(), bodies()).map(
        lambda found: (*found[:4], {"CONTENT_TYPE": found[5][0], **found[4]}, *found[5][1:])))


def test_hostile_requests_without_a_body(fresh):
    @fuzz_settings(0.5)
    @given(request=REQUESTS)
    def one(request):
        send(fresh, *request)

    one()
    print(reached_report(fresh))
    total = fresh.statuses.total()
    assert fresh.authenticated >= min(total // 5, 1000) and fresh.reached >= min(total // 8, 600), \
        reached_report(fresh)


def test_hostile_bodies(fresh):
    @fuzz_settings(0.45)
    @given(request=BODY_REQUESTS)
    def one(request):
        send(fresh, *request)

    one()
    print(reached_report(fresh))
    total = fresh.statuses.total()
    assert fresh.authenticated >= min(total // 30, 150) and fresh.reached >= min(total // 300, 15), \
        reached_report(fresh)


CONTROLS = st.sampled_from([chr(code) for code in range(0x20)] + ["\x7f"])


def test_plain_http_redirects_never_carry_a_control_character(fresh):
    """The https layer's redirect, inside the whole stack: a GET over plain HTTP from an
    address that is not a trusted proxy (no credentials) gets a Location rebuilt from
    re-encoded parts, whatever control characters the path and query held."""
    @fuzz_settings(0.05)
    @given(path=paths(), control=CONTROLS, query=queries(), where=st.sampled_from(["path", "query", "both"]))
    def one(path, control, query, where):
        if where in ("path", "both"):
            path += control
        if where in ("query", "both"):
            query = "q=a" + control + "b&" + query
        environ = fresh.environ("GET", path, query, {"REMOTE_ADDR": "203.0.113.9", "HTTP_X_FORWARDED_PROTO": None})
        status, found, _body = fresh.call(environ)
        location = dict(found).get("Location")
        if status.startswith("301"):
            assert location.startswith("https://localhost/")
            assert not any(ord(ch) < 0x21 or ord(ch) == 0x7f for ch in location), location

    one()
    assert fresh.statuses["301"] > 0, reached_report(fresh)
