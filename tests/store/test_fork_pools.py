"""Pre-forking servers (gunicorn, uWSGI): a store opened in the master before the fork
must not hand its connections to the workers. One store, one pool, per URL per process,
opened at first use; parent and child use the store at the same time and each gets its
own answers (two processes on one socket would read each other's replies)."""

from __future__ import annotations

import os

from racing import race, shared_url  # noqa: F401 - a fixture
from store_servers import redis_cluster  # noqa: F401 - a fixture
from wsgisec.store import LazyStore, open_store


def _exercise(url, name):
    store = open_store(url)
    for number in range(200):
        store.put("fork", f"{name}-{number}", {"by": name, "n": number})
        assert store.get("fork", f"{name}-{number}") == {"by": name, "n": number}
    return os.getpid(), id(store)


def test_a_store_used_before_fork_gets_a_pool_of_its_own_in_each_child(shared_url):
    master = open_store(shared_url)
    master.put("fork", "master", {"by": "master"})  # the master's pool holds a connection now
    lazy = LazyStore(shared_url)  # what a layer built before the fork (gunicorn --preload) keeps

    def worker(name):
        def run():
            pid, store_id = _exercise(shared_url, name)
            assert lazy.get("fork", "master") == {"by": "master"}
            pool = getattr(open_store(shared_url).backend, "client", None)
            return pid, store_id, getattr(getattr(pool, "connection_pool", None), "pid", pid)
        return run

    outcomes = race(worker("one"), worker("two"))
    pids = {pid for pid, _, _ in outcomes}
    assert len(pids) == 2 and os.getpid() not in pids
    assert all(pool_pid == pid for pid, _, pool_pid in outcomes)  # the pool was made in the worker
    assert open_store(shared_url) is master  # the master still has its own, and it works
    _exercise(shared_url, "master-after")
    assert master.get("fork", "two-199") == {"by": "two", "n": 199}
