"""The tracked client-side cache of the Redis store (issue 13): a change on one host
reaches another host's cache at once; a lost tracking connection empties it."""

import time

import pytest

from conftest import drop_prefix, redis_available, redis_prefix_url


@pytest.fixture
def two_hosts():
    reason = redis_available()
    if reason is not None:
        pytest.skip(reason)
    from wsgisec.store.redis import RedisStore

    url, prefix = redis_prefix_url()
    first, second = RedisStore.from_url(url), RedisStore.from_url(url)
    yield first, second
    first.close()
    second.close()
    drop_prefix(url, prefix)


def test_a_revocation_on_one_host_is_seen_at_once_by_the_other_that_cached_it(two_hosts):
    first, second = two_hosts
    first.put("tokens", "t1", {"type": "access"})
    assert second.get("tokens", "t1") == {"type": "access"}
    assert second.get("tokens", "t1") == {"type": "access"}
    assert second.cache.hits >= 1  # the second read cost no round trip
    first.delete("tokens", "t1")
    time.sleep(0.01)  # the push crosses loopback
    assert second.get("tokens", "t1") is None


def test_a_killed_tracking_connection_empties_the_cache(two_hosts):
    first, second = two_hosts
    first.put("signing_keys", "k1", {"key": "a"})
    assert second.get("signing_keys", "k1") == {"key": "a"}
    tracking = second.cache._connection
    tracking.send_command("CLIENT", "ID")
    client_id = tracking.read_response()
    first.client.execute_command("CLIENT", "KILL", "ID", client_id)
    resets = second.cache.resets
    assert second.get("signing_keys", "k1") == {"key": "a"}
    assert second.cache.resets == resets + 1
