"""One suite, every backend: the SQLite file, a real Redis server, and a local Redis
Cluster and Sentinel where redis-server is installed (``store``, from store_servers)."""

import multiprocessing
import time

import pytest

from store_servers import every_store as store, redis_cluster, redis_sentinel  # noqa: F401 - fixtures
from wsgisec.store import StoreUnavailable, open_store, redact_url


def test_put_get_delete(store):
    assert store.get("clients", "c1") is None
    store.put("clients", "c1", {"name": "Acme", "scopes": ["items:read"]})
    assert store.get("clients", "c1") == {"name": "Acme", "scopes": ["items:read"]}
    store.put("clients", "c1", {"name": "Acme Corp"})
    assert store.get("clients", "c1") == {"name": "Acme Corp"}
    assert store.delete("clients", "c1") is True
    assert store.delete("clients", "c1") is False
    assert store.get("clients", "c1") is None


def test_namespaces_are_separate(store):
    store.put("a", "k", {"v": 1})
    store.put("b", "k", {"v": 2})
    assert store.get("a", "k") == {"v": 1} and store.get("b", "k") == {"v": 2}


def test_get_many_answers_each_pair_like_get(store):
    store.put("clients", "c1", {"name": "Acme"})
    store.put("keys", "c1", {"key": "k"})  # the same key in another namespace
    store.put("tokens", "short", {"x": 1}, ttl=0.05)
    store.put("tokens", "long", {"x": 2}, ttl=60)
    time.sleep(0.12)
    pairs = [("keys", "c1"), ("clients", "absent"), ("tokens", "short"), ("clients", "c1"),
             ("tokens", "long"), ("keys", "c1")]
    assert store.get_many(pairs) == [{"key": "k"}, None, None, {"name": "Acme"}, {"x": 2}, {"key": "k"}]
    assert store.get_many(pairs) == [store.get(ns, key) for ns, key in pairs]
    assert store.get_many([("clients", "c1")]) == [{"name": "Acme"}]
    assert store.get_many([]) == []


def test_ttl_expires(store):
    store.put("tokens", "short", {"x": 1}, ttl=0.05)
    store.put("tokens", "long", {"x": 2}, ttl=60)
    time.sleep(0.12)
    assert store.get("tokens", "short") is None
    assert store.get("tokens", "long") == {"x": 2}
    assert "short" not in store.keys("tokens")


def test_add_is_insert_if_absent(store):
    assert store.add("nonces", "n1", {}, ttl=60) is True
    assert store.add("nonces", "n1", {}, ttl=60) is False
    assert store.add("nonces", "n2", {}, ttl=60) is True


def test_add_takes_over_an_expired_key(store):
    assert store.add("nonces", "n1", {"first": True}, ttl=0.05) is True
    time.sleep(0.12)
    assert store.add("nonces", "n1", {"second": True}, ttl=60) is True
    assert store.get("nonces", "n1") == {"second": True}


def test_update_merges_and_keeps_ttl(store):
    assert store.update("clients", "missing", {"disabled": True}) is False
    store.put("clients", "c1", {"name": "Acme", "disabled": False}, ttl=60)
    assert store.update("clients", "c1", {"disabled": True}) is True
    assert store.get("clients", "c1") == {"name": "Acme", "disabled": True}


def test_delete_tagged_revokes_a_family(store):
    store.put("tokens", "a1", {"kind": "access"}, ttl=60, tags=["client:c1", "family:f1"])
    store.put("tokens", "r1", {"kind": "refresh"}, ttl=60, tags=["client:c1", "family:f1"])
    store.put("tokens", "a2", {"kind": "access"}, ttl=60, tags=["client:c1", "family:f2"])
    store.put("tokens", "b1", {"kind": "access"}, ttl=60, tags=["client:c2"])
    assert store.delete_tagged("tokens", "family:f1") == 2
    assert store.get("tokens", "a1") is None and store.get("tokens", "r1") is None
    assert store.get("tokens", "a2") is not None
    assert store.delete_tagged("tokens", "client:c1") == 1
    assert store.get("tokens", "b1") is not None
    assert store.delete_tagged("tokens", "client:nobody") == 0


def test_keys_and_items(store):
    for key in ("b", "a", "c"):
        store.put("clients", key, {"id": key})
    assert store.keys("clients") == ["a", "b", "c"]
    assert dict(store.items("clients")) == {k: {"id": k} for k in "abc"}


def test_incr_counts_within_a_window(store):
    assert [store.incr("failures", "ip:1.2.3.4", 60) for _ in range(3)] == [1, 2, 3]
    assert store.incr("failures", "ip:5.6.7.8", 60) == 1


def test_incr_starts_afresh_after_the_window(store):
    store.incr("failures", "k", 0.05)
    store.incr("failures", "k", 0.05)
    time.sleep(0.12)
    assert store.incr("failures", "k", 0.05) == 1


def test_events_round_trip_and_filter(store):
    now = time.time()
    for number, kind in enumerate(["a", "b", "a"]):
        store.record_event({"kind": kind, "time": now + number * 0.001, "incident_id": str(number)})
    assert [e["incident_id"] for e in store.events()] == ["0", "1", "2"]
    assert [e["incident_id"] for e in store.events(kinds=["a"])] == ["0", "2"]
    assert [e["incident_id"] for e in store.events(limit=2)] == ["1", "2"]
    assert store.events(since=now + 10) == []


def test_unicode_values(store):
    store.put("learn", "/api/items q", {"sample": "Zoë 東京 🚀"})
    assert store.get("learn", "/api/items q") == {"sample": "Zoë 東京 🚀"}


def _claim(url, results, barrier):
    store = open_store(url)
    barrier.wait()
    results.put(store.add("nonces", "shared", {}, ttl=60))


def test_add_is_atomic_across_processes(tmp_path):
    """Only one of several worker processes wins the same nonce on one SQLite file."""
    url = "sqlite:///" + str(tmp_path / "shared.sqlite")
    open_store(url)  # create the schema once
    context = multiprocessing.get_context("fork")
    results, barrier = context.Queue(), context.Barrier(4)
    workers = [context.Process(target=_claim, args=(url, results, barrier)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(10)
    assert sorted(results.get(timeout=5) for _ in workers) == [False, False, False, True]


def test_sqlite_failure_is_store_unavailable(tmp_path):
    from wsgisec.store.sqlite import SQLiteStore

    store = SQLiteStore(str(tmp_path / "s.sqlite"))
    store._connection().execute("DROP TABLE kv")
    with pytest.raises(StoreUnavailable):
        store.get("clients", "x")


def test_redis_unreachable_is_store_unavailable():
    from wsgisec.store.redis import RedisStore

    store = RedisStore.from_url("redis://127.0.0.1:1/0")  # nothing listens on port 1
    with pytest.raises(StoreUnavailable) as info:
        store.get("clients", "x")
    assert "127.0.0.1:1" in str(info.value)


def test_open_store_shares_one_object_per_url_per_process(tmp_path):
    url = "sqlite:///" + str(tmp_path / "one.sqlite")
    assert open_store(url) is open_store(url)


def test_redact_url_hides_passwords():
    assert redact_url("redis://user:hunter2@cache:6379/0") == "redis://user:***@cache:6379/0"
    assert "hunter2" not in redact_url("redis://:hunter2@cache:6379/0")
    # A Sentinel's own password is a query option, and reaches every StoreUnavailable too.
    assert redact_url("redis+sentinel://s1:26379/mymaster/0?sentinel_password=hunter2&timeout=1s") == (
        "redis+sentinel://s1:26379/mymaster/0?sentinel_password=***&timeout=1s")


def test_unknown_scheme_is_refused():
    with pytest.raises(ValueError):
        open_store("mongodb://localhost/x")


@pytest.mark.parametrize("store", ["redis"], indirect=True)
def test_redis_tag_sets_expire_with_their_longest_member(store):
    store.put("tokens", "a", {}, ttl=30, tags=["family:f"])
    store.put("tokens", "b", {}, ttl=300, tags=["family:f"])
    store.put("tokens", "c", {}, ttl=10, tags=["family:f"])
    assert 290_000 < store.client.pttl(store._t("tokens", "family:f")) <= 300_000
    store.put("clients", "x", {}, tags=["forever"])
    assert store.client.pttl(store._t("clients", "forever")) == -1


def test_sqlite_purge_drops_expired_rows_and_old_events(tmp_path):
    from wsgisec.store import sqlite

    now = [1_000_000.0]
    store = sqlite.SQLiteStore(str(tmp_path / "p.sqlite"), clock=lambda: now[0])
    store.put("tokens", "t", {}, ttl=10, tags=["client:c"])
    store.put("clients", "c", {})
    store.record_event({"kind": "old", "time": now[0] - sqlite.EVENT_RETENTION - 1})
    store.record_event({"kind": "recent", "time": now[0] - 60})
    now[0] += 11
    assert store.purge() == 2
    assert store.keys("tokens") == [] and store.keys("clients") == ["c"]
    assert [event["kind"] for event in store.events()] == ["recent"]
    assert store._connection().execute("SELECT COUNT(*) FROM tags").fetchone()[0] == 0
