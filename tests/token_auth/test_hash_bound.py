"""Bounded client-secret hashing (issue 14): a flood of bad credentials cannot run more
than ``max_concurrent_hashes`` argon2 checks at once, and a request that gets no slot
in time is refused with 503 and ``Retry-After``, never let through.

The checks use a real passlib argon2 context with cheap parameters, wrapped to count how
many run at once and to hold them until the test lets them go (no timing asserts).
"""

import os
import sys
import threading

import pytest

from wsgisec import pipeline
from wsgisec.settings import ConfigurationError
from wsgisec.token_auth import FAILURES, HASHING_BUSY, TokenAuth, filter_factory
from wsgisec.token_auth.clients import ClientRegistry
from wsgisec.token_auth.hashing import HASH_NICENESS, HashingBusy, HashSlots

from test_token_auth import FAST, HTTPS, clock, fetch, make, new_client  # noqa: F401


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
        # Half with a known id and a wrong secret, half with unknown ids (the dummy check).
        client_id = record["id"] if number % 2 else f"c_{number:016x}"
        results.append(registry.authenticate(client_id, "wrong-" + str(number)))

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
    threads = [threading.Thread(target=registry.authenticate, args=(f"c_{n:016x}", "x")) for n in range(4)]
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
