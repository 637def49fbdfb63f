"""Secrets verified in this process are remembered (issue 14): a partner renewing its
token needs no argon2 check, so a flood that keeps the hashing bounds busy cannot keep
it out; rotation, upgrades and disabling still take effect at once, and the memory holds
no secret."""

import threading

import pytest

from wsgisec.token_auth import CLIENT_DISABLED
from wsgisec.token_auth.clients import ClientRegistry
from wsgisec.token_auth.verified import VerifiedSecrets

from test_hash_bound import CountingContext, GatedContext
from test_token_auth import FAST, HTTPS, basic, clock, fetch, make, new_client  # noqa: F401


def test_a_renewal_with_the_same_secret_needs_no_check(make):
    app, layer = make()
    layer.registry.context = context = CountingContext()
    client_id, secret = new_client(layer)
    for _ in range(5):
        assert "access_token" in fetch(app, client_id, secret).json
    assert context.calls == 1
    fetch(app, client_id, secret + "x", status=401)  # another secret is checked, and fails
    assert context.calls == 2


def test_a_renewal_gets_its_token_while_a_flood_holds_every_hashing_slot(make):
    app, layer = make(max_concurrent_hashes=1, hash_wait=0.01)
    client_id, secret = new_client(layer)
    fetch(app, client_id, secret)  # the partner's first token, checked
    layer.registry.context = context = GatedContext()
    holder = threading.Thread(target=lambda: fetch(app, client_id, "wrong", status=401))
    holder.start()
    context.wait_active(1)
    try:
        fetch(app, client_id, "also-wrong", status=503)  # a bad secret finds no slot
        assert "access_token" in fetch(app, client_id, secret).json  # the partner does not wait
    finally:
        context.gate.set()
        holder.join(30)


def test_rotation_without_grace_in_another_process_takes_effect_at_once(make, store):
    app, layer = make()
    client_id, secret = new_client(layer)
    fetch(app, client_id, secret)
    # An operator's `wsgisec client rotate-secret --grace 0`: another registry, same store.
    new = ClientRegistry(store, context=FAST).rotate_secret(client_id, grace=0)
    fetch(app, client_id, secret, status=401)
    assert "access_token" in fetch(app, client_id, new).json


def test_rotation_with_grace_keeps_the_old_secret_until_the_grace_ends(make, clock):
    app, layer = make()
    layer.registry.context = context = CountingContext()
    client_id, secret = new_client(layer)
    fetch(app, client_id, secret)
    new = layer.registry.rotate_secret(client_id, grace=60)
    fetch(app, client_id, secret)  # still live, still remembered
    assert context.calls == 1
    fetch(app, client_id, new)
    clock.now += 61
    fetch(app, client_id, secret, status=401)
    fetch(app, client_id, new)


def test_a_disabled_client_is_refused_even_with_a_remembered_secret(make):
    app, layer = make()
    client_id, secret = new_client(layer)
    fetch(app, client_id, secret)
    ClientRegistry(layer.store, context=FAST).disable(client_id)  # from another process
    refused = fetch(app, client_id, secret, status=401)
    assert refused.json["error"] == "invalid_client"
    assert [e for e in layer.store.events() if e["kind"] == "token_auth." + CLIENT_DISABLED]


def test_an_upgraded_hash_is_remembered_and_the_old_one_is_not(make, store):
    from passlib.hash import pbkdf2_sha256

    app, layer = make()
    layer.registry.context = context = CountingContext()
    client_id, secret = new_client(layer)
    store.update("clients", client_id, {"secrets": [{"hash": pbkdf2_sha256.hash(secret), "created": 1,
                                                      "expires": None}]})
    fetch(app, client_id, secret)  # checked against pbkdf2, upgraded to argon2
    stored = store.get("clients", client_id)["secrets"][0]["hash"]
    assert stored.startswith("$argon2")
    fetch(app, client_id, secret)
    assert context.calls == 1
    assert list(layer.registry.verified._entries.values())[0][0] == stored  # (hash, expires)


def test_verified_secret_ttl_zero_checks_every_request(make):
    app, layer = make(verified_secret_ttl=0)
    layer.registry.context = context = CountingContext()
    client_id, secret = new_client(layer)
    for _ in range(3):
        fetch(app, client_id, secret)
    assert context.calls == 3 and len(layer.registry.verified) == 0


def test_the_memory_holds_an_hmac_never_the_secret(make):
    app, layer = make()
    client_id, secret = new_client(layer)
    fetch(app, client_id, secret)
    kept = repr(layer.registry.verified._entries)
    assert client_id in kept and secret not in kept
    assert secret.encode() not in b"".join(key[1] for key in layer.registry.verified._entries)


def test_entries_expire_after_their_last_use_and_the_oldest_go_first():
    now = [0.0]
    cache = VerifiedSecrets(60, size=2, clock=lambda: now[0])
    cache.remember("c_1", "s1", "h1")
    now[0] = 50
    assert cache.matched_hash("c_1", "s1", {"h1"}) == "h1"  # used: lives 60 s from now
    now[0] = 100
    assert cache.matched_hash("c_1", "s1", {"h1"}) == "h1"
    assert cache.matched_hash("c_1", "s2", {"h1"}) is None  # another secret
    assert cache.matched_hash("c_1", "s1", {"h2"}) is None  # the hash is no longer live
    assert cache.matched_hash("c_1", "s1", {"h1"}) is None  # ...and the entry is gone
    cache.remember("c_1", "s1", "h1")
    cache.remember("c_2", "s2", "h2")
    cache.remember("c_3", "s3", "h3")  # size 2: c_1 goes
    assert len(cache) == 2 and cache.matched_hash("c_1", "s1", {"h1"}) is None
    now[0] = 161
    assert cache.matched_hash("c_2", "s2", {"h2"}) is None  # 60 s unused


@pytest.mark.parametrize("value", ["-1", "soon"])
def test_bad_verified_secret_ttl_is_refused_at_start_up(tmp_path, value):
    from wsgisec.settings import ConfigurationError
    from wsgisec.token_auth import filter_factory

    with pytest.raises(ConfigurationError, match="verified_secret_ttl"):
        filter_factory({"here": str(tmp_path)}, store=f"sqlite:///{tmp_path}/s.sqlite", verified_secret_ttl=value)
