"""The Redis store URLs of several hosts: Sentinel, Cluster, TLS settings, and the
mistakes in them, which are configuration errors at start-up, not 503s at the first
request; and a Cluster keeps each multi-key step in one hash slot."""

from __future__ import annotations

import pytest

from conftest import REDIS_URL, redis_available
from store_servers import every_store as store, redis_cluster, redis_sentinel  # noqa: F401 - fixtures
from wsgisec.settings import ConfigurationError
from wsgisec.store import resolve_url

redis = pytest.importorskip("redis")


@pytest.mark.parametrize("url, message", [
    pytest.param("redis+sentinel://127.0.0.1:26379/", "name the Sentinel service", id="sentinel-no-service"),
    pytest.param("redis+sentinel://127.0.0.1:26379/mymaster/zero", "database 'zero' is not a number",
                 id="sentinel-bad-db"),
    pytest.param("redis+cluster://127.0.0.1:7000/3", "database 0 only", id="cluster-db"),
    pytest.param("redis+cluster://127.0.0.1:x/", "port 'x' is not a number", id="cluster-bad-port"),
    pytest.param("redis+cluster:///", "no host:port given", id="cluster-no-host"),
    pytest.param("rediss://cache:6380/0?ssl_cert_reqs=maybe", "ssl_cert_reqs=maybe", id="tls-cert-reqs"),
    pytest.param("rediss://cache:6380/0?ssl_check_hostname=perhaps", "ssl_check_hostname=perhaps",
                 id="tls-check-hostname"),
])
def test_a_malformed_redis_url_is_a_configuration_error(url, message):
    with pytest.raises(ConfigurationError) as info:
        resolve_url(url)
    assert message in str(info.value)


def test_tls_settings_reach_the_connection():
    from wsgisec.store.redis import RedisStore

    store = RedisStore.from_url("rediss://:pw@cache.internal:6380/2?ssl_ca_certs=/etc/ssl/redis-ca.pem"
                                "&ssl_cert_reqs=required&ssl_check_hostname=true&timeout=300ms&prefix=app:")
    settings = store.client.connection_pool.connection_kwargs
    assert settings["ssl_ca_certs"] == "/etc/ssl/redis-ca.pem" and settings["ssl_cert_reqs"] == "required"
    assert settings["ssl_check_hostname"] is True and settings["socket_timeout"] == 0.3
    assert settings["db"] == 2 and settings["password"] == "pw" and store.prefix == "app:"
    assert "pw" not in repr(store)


def test_rediss_to_a_server_without_tls_is_store_unavailable_not_a_crash():
    """rediss:// once passed ssl=True to a client that knows TLS from the scheme: every
    call raised TypeError (a 500). Against the plain test server the handshake fails."""
    from wsgisec.store import StoreUnavailable
    from wsgisec.store.redis import RedisStore

    reason = redis_available()
    if reason:
        pytest.skip(reason)
    plain = REDIS_URL.split("://", 1)[1].split("?", 1)[0]
    store = RedisStore.from_url(f"rediss://{plain}?timeout=300ms&ssl_cert_reqs=none")
    with pytest.raises(StoreUnavailable):
        store.get("clients", "c")
    store.close()


def test_a_cluster_that_is_down_is_store_unavailable_not_a_crash():
    from wsgisec.store import StoreUnavailable
    from wsgisec.store.redis import RedisStore

    store = RedisStore.from_url("redis+cluster://127.0.0.1:1/?timeout=100ms")  # made lazily: no error yet
    with pytest.raises(StoreUnavailable) as info:
        store.get("clients", "c1")
    assert "redis+cluster://127.0.0.1:1/" in str(info.value)


@pytest.mark.parametrize("store", ["redis-cluster"], indirect=True)
def test_a_cluster_keeps_a_namespace_in_one_slot_and_spreads_namespaces(store):
    slot = store.client.keyslot
    assert slot(store._k("tokens", "a")) == slot(store._k("tokens", "b")) == slot(store._t("tokens", "client:c"))
    spread = {slot(store._k(ns, "x")) for ns in ("tokens", "clients", "nonces", "token_auth.spent")}
    assert len(spread) > 1
    # The nodes really are several: the namespaces' keys live on more than one master.
    for ns in ("tokens", "clients", "nonces", "token_auth.spent", "signing_keys", "learn"):
        store.put(ns, "k", {"ns": ns})
    owners = {store.client.get_node_from_key(store._k(ns, "k")).port
              for ns in ("tokens", "clients", "nonces", "token_auth.spent", "signing_keys", "learn")}
    assert len(owners) > 1


@pytest.mark.parametrize("store", ["redis", "redis-cluster"], indirect=True)
def test_a_tag_set_with_a_member_that_never_expires_never_expires(store):
    store.put("clients", "forever", {}, tags=["group"])
    store.put("clients", "brief", {}, ttl=30, tags=["group"])
    assert store.client.pttl(store._t("clients", "group")) == -1
    assert store.delete_tagged("clients", "group") == 2
