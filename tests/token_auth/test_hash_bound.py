"""Bounded client-secret hashing (issue 14): a flood of bad credentials cannot run more
than ``max_concurrent_hashes`` argon2 checks at once, and a request that gets no slot
in time is refused with 503 and ``Retry-After``, never let through.

The checks use a real passlib argon2 context with cheap parameters, wrapped to count how
many run at once and to hold them until the test lets them go (no timing asserts).
"""

import os
import sys
import threading
import time

import pytest

from wsgisec import pipeline
from wsgisec.settings import ConfigurationError
from wsgisec.token_auth import FAILURES, HASHING_BUSY, TokenAuth, filter_factory
from wsgisec.token_auth.clients import ClientRegistry
from wsgisec.token_auth.hashing import HASH_NICENESS, HashingBusy, HashSlots

from test_token_auth import FAST, HTTPS, basic, clock, fetch, make, new_client  # noqa: F401
from test_plaintext import flagship, served  # noqa: F401


class GatedContext:
    """FAST, but each verify counts itself and waits for ``gate`` before it hashes."""

    def __init__(self):
        self.gate = threading.Event()
        self.lock = threading.Condition()
        self.active = self.peak = self.calls = 0

    def verify(self, secret, hash_):
        with self.lock:
            self.active += 1
            self.calls += 1
            self.peak = max(self.peak, self.active)
            self.lock.notify_all()
        try:
            assert self.gate.wait(30), "the test never opened the gate"
            return FAST.verify(secret, hash_)
        finally:
            with self.lock:
                self.active -= 1

    def wait_active(self, count):
        with self.lock:
            assert self.lock.wait_for(lambda: self.active >= count, 30), self.active

    def hash(self, secret):
        return FAST.hash(secret)

    def needs_update(self, hash_):
        return FAST.needs_update(hash_)


def test_eight_concurrent_bad_secrets_never_run_more_than_two_checks(store):
    context = GatedContext()
    registry = ClientRegistry(store, context=context, hash_slots=HashSlots(2, wait=30))
    record, secret = registry.create("Acme")
    results = []

    def attempt(number):
        results.append(registry.authenticate(record["id"], "wrong-" + str(number)))

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    context.wait_active(2)
    assert context.active == 2  # the other six wait for a slot
    context.gate.set()
    for thread in threads:
        thread.join(30)
    assert results == [None] * 8 and context.calls == 8
    assert context.peak == 2 and registry.hash_slots.peak == 2 and registry.hash_slots.active == 0
    # The bound never costs a good secret its answer once a slot is free.
    assert registry.authenticate(record["id"], secret)["id"] == record["id"]


def test_registry_without_a_bound_runs_every_check_at_once(store):
    # Operator verbs and Python callers: no bound unless one is given.
    context = GatedContext()
    registry = ClientRegistry(store, context=context)
    record, _secret = registry.create("Acme")
    threads = [threading.Thread(target=registry.authenticate, args=(record["id"], "x")) for n in range(4)]
    for thread in threads:
        thread.start()
    context.wait_active(4)
    context.gate.set()
    for thread in threads:
        thread.join(30)
    assert context.peak == 4


def test_no_slot_in_time_raises_hashing_busy_and_frees_nothing_it_did_not_take():
    slots = HashSlots(1, wait=0.01)
    inner = []

    def holder():
        with pytest.raises(HashingBusy):
            slots.run(inner.append, "never")
        return slots.active

    assert slots.run(holder) == 1 and inner == []
    assert slots.active == 0
    assert slots.run(lambda: slots.active) == 1  # the slot was released exactly once


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread niceness is Linux's")
def test_checks_run_at_a_lower_cpu_priority_than_the_request_thread():
    def niceness():
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    mine = niceness()
    assert HashSlots(2).run(niceness) == min(19, mine + HASH_NICENESS)
    assert niceness() == mine  # the request's own thread keeps its priority


def test_token_endpoint_answers_503_with_retry_after_when_no_slot_frees(make, store):
    app, layer = make(max_concurrent_hashes=1, hash_wait=0.05)
    context = GatedContext()
    layer.registry.context = context
    client_id, secret = new_client(layer)
    holder = threading.Thread(target=lambda: fetch(app, client_id, "wrong", status=401))
    holder.start()
    context.wait_active(1)  # one bad check holds the only slot
    try:
        # Even the right secret is not let through without a check: 503, no token.
        busy = fetch(app, client_id, secret, status=503)
    finally:
        context.gate.set()
        holder.join(30)
    assert busy.json["error"] == "temporarily_unavailable" and "access_token" not in busy.json
    assert busy.headers["Retry-After"] == "1" and busy.headers["Cache-Control"] == "no-store"
    assert secret not in busy.text
    kinds = [event["kind"] for event in store.events()]
    assert "token_auth." + HASHING_BUSY in kinds
    event = [e for e in store.events() if e["kind"] == "token_auth." + HASHING_BUSY][0]
    assert event["incident_id"] == busy.json["incident_id"]
    # Nothing was checked, so the refusal counts as no failure towards the lock-out.
    # (the holder's bad secret counted once: the next count is its second)
    assert store.incr(FAILURES, f"client-addr:{client_id}@{HTTPS['REMOTE_ADDR']}",
                      layer.failed_auth_window) == 2
    # Once the slot is free the same request succeeds.
    assert "access_token" in fetch(app, client_id, secret).json


@pytest.mark.parametrize("conf, message", [
    pytest.param({"max_concurrent_hashes": "0"}, "max_concurrent_hashes", id="zero-slots"),
    pytest.param({"max_concurrent_hashes": "two"}, "max_concurrent_hashes", id="not-a-number"),
    pytest.param({"hash_wait": "forever"}, "hash_wait", id="bad-wait"),
])
def test_bad_hashing_settings_are_refused_at_start_up(tmp_path, conf, message):
    with pytest.raises(ConfigurationError, match=message):
        filter_factory({"here": str(tmp_path)}, store=f"sqlite:///{tmp_path}/s.sqlite", **conf)


def test_the_flagship_bounds_hashing_at_two_per_process(load_example):
    app = load_example("partner_api.ini")
    layer = pipeline.find_layer(app, TokenAuth)
    assert layer.hash_slots.limit == 2 and layer.hash_slots.wait == 0.01
    assert layer.settings["max_concurrent_hashes"] == 2
    assert layer.settings["failed_hash_budget"] == "12/60s" and layer.hash_slots.failures.capacity == 12


# -- what a flood spends: unknown ids nothing, bad secrets the failure budget --------------

class CountingContext:
    """FAST, counting the checks (``verify`` calls) it runs."""

    def __init__(self):
        self.calls = 0

    def verify(self, secret, hash_):
        self.calls += 1
        return FAST.verify(secret, hash_)

    def hash(self, secret):
        return FAST.hash(secret)

    def needs_update(self, hash_):
        return FAST.needs_update(hash_)


def from_address(app, client_id, secret, address, status):
    return app.post("/oauth/token", {"grant_type": "client_credentials"}, headers=basic(client_id, secret),
                    extra_environ={"REMOTE_ADDR": address}, status=status)


def test_unknown_client_ids_are_refused_without_a_check(make):
    """Ids are not secret (RFC 6749 §2.2): a flood of random ids costs no argon2 at all."""
    app, layer = make(max_failed_auth=1000)
    layer.registry.context = context = CountingContext()
    for number in range(30):
        answer = from_address(app, f"c_{number:016x}", "guess", f"198.51.100.{number}", 401)
        assert answer.json["error"] == "invalid_client"
    from_address(app, "not-an-id", "guess", "198.51.100.200", 401)
    assert context.calls == 0


def test_failed_checks_beyond_the_budget_get_503_at_once_until_it_refills(make, store, clock):
    app, layer = make(failed_hash_budget="3/3s", verified_secret_ttl=0, max_failed_auth=1000)
    layer.registry.context = context = CountingContext()
    client_id, secret = new_client(layer)
    for number in range(3):
        from_address(app, client_id, "wrong", f"198.51.100.{number}", 401)
    busy = from_address(app, client_id, "wrong", "198.51.100.9", 503)
    assert busy.json["error"] == "temporarily_unavailable" and busy.headers["Retry-After"] == "1"
    # A stranger's right secret waits too: nothing is let through unchecked.
    refused = from_address(app, client_id, secret, "192.0.2.1", 503)
    assert "access_token" not in refused.json and context.calls == 3
    event = [e for e in store.events() if e["incident_id"] == busy.json["incident_id"]][0]
    assert event["kind"] == "token_auth." + HASHING_BUSY and event["detail"]["why"] == "failure budget"
    # Nothing was checked, so nothing counts towards the lock-out of that address.
    assert store.incr(FAILURES, "addr:198.51.100.9", layer.failed_auth_window) == 1
    clock.now += 1  # one check per second refills
    assert "access_token" in from_address(app, client_id, secret, "192.0.2.1", 200).json
    # Right secrets give their token back: many successes leave the whole budget to failures.
    for number in range(10):
        from_address(app, client_id, secret, f"192.0.2.{10 + number}", 200)
    from_address(app, client_id, "wrong", "198.51.100.20", 401)
    from_address(app, client_id, "wrong", "198.51.100.21", 503)


def test_a_partner_known_from_its_address_is_not_held_by_a_spent_budget(make, store):
    """A flood from strangers with the partner's id spends the budget; the partner, which
    authenticated from its address before, still gets its check (and its token)."""
    from wsgisec.token_auth.refusals import KNOWN_CALLERS

    app, layer = make(failed_hash_budget="2/10s", verified_secret_ttl=0, max_failed_auth=1000)
    layer.registry.context = context = CountingContext()
    client_id, secret = new_client(layer)
    from_address(app, client_id, secret, "192.0.2.7", 200)
    assert store.get(KNOWN_CALLERS, f"{client_id}@192.0.2.7") is not None
    for number in range(5):
        from_address(app, client_id, "wrong", f"198.51.100.{number}", (401, 503))
    from_address(app, client_id, secret, "192.0.2.99", 503)  # a stranger waits
    before = context.calls
    assert "access_token" in from_address(app, client_id, secret, "192.0.2.7", 200).json
    # Known callers are still checked, and a wrong secret from them still fails (401).
    from_address(app, client_id, "wrong", "192.0.2.7", 401)
    assert context.calls == before + 2


def test_failure_budget_refills_with_time_and_never_drains_when_the_clock_steps_back():
    from wsgisec.token_auth.hashing import FailureBudget

    now = [1000.0]
    budget = FailureBudget(2, 4, clock=lambda: now[0])
    assert budget.take() and budget.take() and not budget.take()
    assert budget.retry_after() == 2 and budget.spent == 1
    budget.give_back()
    assert budget.take() and not budget.take()
    now[0] -= 3600  # a wall clock set back an hour
    assert not budget.take()
    now[0] += 2
    assert budget.take()


@pytest.mark.parametrize("value", ["0/1s", "1/0s", "many", "3"])
def test_bad_failure_budgets_are_refused_at_start_up(tmp_path, value):
    with pytest.raises(ConfigurationError, match="failed_hash_budget"):
        filter_factory({"here": str(tmp_path)}, store=f"sqlite:///{tmp_path}/s.sqlite", failed_hash_budget=value)


def test_served_flagship_holds_a_flood_of_bad_credentials_to_its_budget_and_the_partner_renews(served):
    """The flagship's defaults behind its trusted local proxy (addresses from
    X-Forwarded-For): forty bad requests from forty addresses, half with the partner's id;
    the partner, which got its token before, renews in the middle of it."""
    import random

    import requests

    base, layer, client_id, secret = served
    partner = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "192.0.2.11"}
    form = {"grant_type": "client_credentials"}
    assert requests.post(base + "/oauth/token", data=form, auth=(client_id, secret), headers=partner).ok
    rng = random.Random(14)
    answers = {"known id": [], "unknown id": []}
    started = time.monotonic()
    for number in range(40):
        claimed = client_id if number % 2 else f"c_{rng.getrandbits(64):016x}"
        answer = requests.post(base + "/oauth/token", data=form, auth=(claimed, f"wrong-{number}"),
                               headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": f"198.51.100.{number}"})
        answers["known id" if number % 2 else "unknown id"].append(answer.status_code)
        if answer.status_code == 503:  # one check every 5 s: Retry-After says when
            assert 1 <= int(answer.headers["Retry-After"]) <= 5
            assert answer.json()["error"] == "temporarily_unavailable"
        if number == 30:
            renewed = requests.post(base + "/oauth/token", data=form, auth=(client_id, secret), headers=partner)
            assert renewed.status_code == 200 and renewed.json()["access_token"]
    assert set(answers["unknown id"]) == {401}  # refused without a check
    # The burst of twelve failed checks, then 503, and one more check per 5 s it took.
    refilled = int((time.monotonic() - started) / 5)
    assert 12 <= answers["known id"].count(401) <= 12 + refilled + 1
    assert answers["known id"].count(503) >= 20 - (12 + refilled + 1)
    assert layer.hash_slots.failures.spent >= 7
