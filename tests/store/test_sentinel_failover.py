"""A Sentinel failover under a running store and under the flagship stack (issue 14),
with real servers: a master, its replica and a Sentinel on loopback ports. While the master is gone every call fails
closed (StoreUnavailable, which the layers answer with 503) within the store timeout;
once the Sentinel has promoted the replica the same store object works again, without a
restart, with what was replicated before the crash: a client is still there and a nonce
used before is still a replay."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from store_servers import REDIS_SERVER, _free_port, _stop, _wait
from wsgisec.store import StoreUnavailable, open_backend

pytestmark = pytest.mark.skipif(REDIS_SERVER is None, reason="needs the redis-server binary "
                                "(apt-get install redis-server) to run a master, a replica and a Sentinel")


@pytest.fixture
def failover_set(tmp_path):
    redis = pytest.importorskip("redis")
    master, replica, sentinel = _free_port(), _free_port(), _free_port()
    config = tmp_path / "sentinel.conf"  # Sentinel rewrites its own configuration file
    config.write_text(f"port {sentinel}\nbind 127.0.0.1\nsentinel monitor mymaster 127.0.0.1 {master} 1\n"
                      "sentinel down-after-milliseconds mymaster 500\nsentinel failover-timeout mymaster 3000\n"
                      # known at once, not at the master's next INFO (up to 10 s later)
                      f"sentinel known-replica mymaster 127.0.0.1 {replica}\n")
    common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    processes = []
    for name, argv in (("master", [REDIS_SERVER, "--port", str(master), *common]),
                       ("replica", [REDIS_SERVER, "--port", str(replica), *common,
                                    "--replicaof", "127.0.0.1", str(master)]),
                       ("sentinel", [REDIS_SERVER, str(config), "--sentinel"])):
        home = tmp_path / name
        home.mkdir()
        processes.append(subprocess.Popen(argv, cwd=home, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    try:
        replica_client = redis.Redis(port=replica, decode_responses=True, socket_connect_timeout=0.2)
        _wait(lambda: replica_client.info("replication").get("master_link_status") == "up", "the replica")
        probe = redis.Redis(port=sentinel, socket_connect_timeout=0.2)
        _wait(lambda: probe.execute_command("SENTINEL", "get-master-addr-by-name", "mymaster"), "the Sentinel")
        # The Sentinel learns of the replica from the master's INFO (every 10 s at most).
        _wait(lambda: len(probe.sentinel_slaves("mymaster")) == 1, "the Sentinel knowing the replica")
        yield {"url": f"redis+sentinel://127.0.0.1:{sentinel}/mymaster/0?timeout=0.25s",
               "master": processes[0], "master_client": redis.Redis(port=master), "replica": replica,
               "sentinel": probe}
    finally:
        _stop(processes)


def test_a_failover_fails_closed_then_the_promoted_replica_serves_what_was_replicated(failover_set):
    store = open_backend(failover_set["url"])
    store.put("clients", "c_live", {"name": "Acme", "disabled": False})
    assert store.add("nonces", "n-used", {"keyid": "k"}, ttl=120) is True
    assert failover_set["master_client"].execute_command("WAIT", 1, 2000) == 1  # on the replica too

    failover_set["master"].send_signal(signal.SIGKILL)
    failover_set["master"].wait(10)
    refused, slowest, value = 0, 0.0, None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        started = time.monotonic()
        try:
            value = store.get("clients", "c_live")
            break
        except StoreUnavailable:  # fail closed: the layers answer 503, nobody passes
            refused += 1
            slowest = max(slowest, time.monotonic() - started)
            time.sleep(0.05)
    assert value == {"name": "Acme", "disabled": False}, "the promoted replica never answered"
    assert refused >= 1  # the calls made while the master was gone were refused, not passed
    assert slowest < 2.5  # each bounded by the Sentinel lookups and the 0.25 s timeout, not a hang
    master_now = failover_set["sentinel"].execute_command("SENTINEL", "get-master-addr-by-name", "mymaster")
    assert int(master_now[1]) == failover_set["replica"]
    # What the old master acknowledged and replicated survives: a used nonce is a replay.
    assert store.add("nonces", "n-used", {"keyid": "k"}, ttl=120) is False
    store.put("clients", "c_new", {"name": "Globex"})  # and the new master takes writes
    assert store.get("clients", "c_new") == {"name": "Globex"}


def test_a_signed_partner_call_gets_503_during_the_failover_and_200_after(failover_set, load_example):
    """The flagship (every layer) on the Sentinel store: no signed call passes while the
    master is gone, and the same running stack answers again once the replica is promoted."""
    from store_servers import flagship_partner

    partner = flagship_partner(load_example("partner_api.ini", wsgisec_store=failover_set["url"]))
    assert partner.get("/api/items").status_int == 200
    assert failover_set["master_client"].execute_command("WAIT", 1, 2000) == 1  # client, tokens, keys replicated

    failover_set["master"].send_signal(signal.SIGKILL)
    failover_set["master"].wait(10)
    killed, statuses = time.monotonic(), []
    while time.monotonic() < killed + 30 and 200 not in statuses:
        statuses.append(partner.get("/api/items", expect_errors=True).status_int)
        time.sleep(0.05)
    assert statuses[-1] == 200, "the stack never answered after the failover"
    assert statuses.count(503) >= 1 and set(statuses[:-1]) == {503}  # refused, never passed, no 500
    # the 200 came from the promoted replica, not from a call let through while the master was gone
    master_now = failover_set["sentinel"].execute_command("SENTINEL", "get-master-addr-by-name", "mymaster")
    assert int(master_now[1]) == failover_set["replica"]
    assert partner.get("/healthz").status_int == 200
