"""The steps that must hold across hosts, raced by two processes on one store (SQLite
file and real Redis): refresh-token rotation with reuse detection (RFC 9700 §4.14.2),
disabling a client while another host issues its tokens, and failed-login counting
(check-and-count, OWASP ASVS V2.2.1). Each race runs a few rounds, since an interleaving
that breaks an invariant need not happen every time; every round must hold it.
"""

from __future__ import annotations

import base64
import random
import time

from webtest import TestApp

from racing import race, shared_url  # noqa: F401 - a fixture
from store_servers import redis_cluster  # noqa: F401 - a fixture
from wsgisec.store import open_store
from wsgisec.token_auth import TokenAuth

from token_auth.test_token_auth import FAST, HTTPS, echo

ROUNDS = 6


def basic(client_id, secret):
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def alive(app, access):
    response = app.get("/api/items", headers={"Authorization": "Bearer " + access}, expect_errors=True)
    return response.status_int == 200


def partner(url, **settings):
    layer = TokenAuth(echo, store=url, crypt_context=FAST, **settings)
    record, secret = layer.registry.create("Acme", scopes=["items:read"])
    return layer, TestApp(layer, extra_environ=HTTPS), record["id"], basic(record["id"], secret)


def test_a_refresh_token_used_twice_at_once_leaves_no_live_token_of_its_grant(shared_url):
    layer, app, client_id, credentials = partner(shared_url)
    for _ in range(ROUNDS):
        refresh = layer.issue_token(client_id)["refresh_token"]

        def rotate():
            answer = app.post("/oauth/token", {"grant_type": "refresh_token", "refresh_token": refresh},
                              headers=credentials, expect_errors=True)
            return answer.status_int, answer.json.get("access_token")

        outcomes = race(rotate, rotate)
        # One rotation at most; the other use is reuse, which revokes the whole grant,
        # the pair the winner just got included, whichever host finished first.
        assert sorted(status for status, _ in outcomes) in ([200, 400], [400, 400]), outcomes
        assert not any(alive(app, access) for _, access in outcomes if access)


def test_a_client_disabled_on_one_host_keeps_no_token_another_host_was_issuing(shared_url):
    layer, app, client_id, credentials = partner(shared_url)
    for _ in range(ROUNDS):
        layer.registry.enable(client_id)

        def issue():
            issued = []
            for _ in range(15):
                answer = app.post("/oauth/token", {"grant_type": "client_credentials"}, headers=credentials,
                                  expect_errors=True)
                assert answer.status_int in (200, 401), answer.text
                if answer.status_int == 200:
                    issued.append(answer.json["access_token"])
            return issued

        def disable():
            time.sleep(random.uniform(0, 0.05))  # somewhere among the issues
            return layer.registry.disable(client_id)

        issued, _ = race(issue, disable)
        assert not [access for access in issued if alive(app, access)]


def test_failed_logins_on_two_hosts_are_counted_once_each(shared_url):
    layer, app, client_id, credentials = partner(shared_url, max_failed_auth=6)
    wrong = basic(client_id, "not-the-secret")

    def fail_three_times():
        return [app.post("/oauth/token", {"grant_type": "client_credentials"}, headers=wrong,
                         expect_errors=True).status_int for _ in range(3)]

    assert race(fail_three_times, fail_three_times) == [[401] * 3, [401] * 3]
    locked = app.post("/oauth/token", {"grant_type": "client_credentials"}, headers=credentials, expect_errors=True)
    assert locked.status_int == 429 and int(locked.headers["Retry-After"]) > 0


def test_a_counter_raced_by_two_processes_hands_out_each_count_once(shared_url):
    """incr is check-and-count in one step: exactly one caller sees any given count, so
    exactly one crosses a rate limit's threshold."""

    def count():
        store = open_store(shared_url)
        return [store.incr("ratelimit", "client:c1", 60) for _ in range(100)]

    first, second = race(count, count)
    assert sorted(first + second) == list(range(1, 201))
