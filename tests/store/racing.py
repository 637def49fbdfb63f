"""What the multi-process store tests share: store URLs over every backend (a fixture to
import) and ``race(*steps)``, which runs each step in a forked process of its own, all
released at once, as several hosts or pre-forked workers would run them."""

from __future__ import annotations

import multiprocessing
import traceback
import uuid

import pytest

from conftest import REDIS_URL, drop_prefix, redis_available, redis_prefix_url  # noqa: F401 - re-exported


def race(*steps, timeout: float = 60):
    """Each step's return value, in order; the steps ran in forked processes at once."""
    context = multiprocessing.get_context("fork")
    results, barrier = context.Queue(), context.Barrier(len(steps))

    def run(number, step):
        barrier.wait(timeout)
        try:
            results.put((number, True, step()))
        except BaseException:  # noqa: B902 - reported to the parent, which fails the test
            results.put((number, False, traceback.format_exc()))

    processes = [context.Process(target=run, args=(number, step)) for number, step in enumerate(steps)]
    for process in processes:
        process.start()
    outcomes = dict((number, (ok, value)) for number, ok, value in (results.get(timeout=timeout) for _ in steps))
    for process in processes:
        process.join(timeout)
    failures = [value for ok, value in outcomes.values() if not ok]
    assert not failures, "a raced step failed:\n" + "\n".join(failures)
    return [outcomes[number][1] for number in range(len(steps))]


@pytest.fixture(params=["sqlite", "redis", "redis-cluster"])
def shared_url(request, tmp_path):
    """A store URL that several processes open (each its own pool): an SQLite file, or
    the test Redis or the local Cluster (``store_servers.redis_cluster``, which the test
    module imports) under a prefix of this test's own (deleted afterwards)."""
    if request.param == "sqlite":
        url = "sqlite:///" + str(tmp_path / "shared.sqlite")
        from wsgisec.store import open_backend

        open_backend(url).close()  # create the schema once, as `wsgisec store init` does
        yield url
        return
    if request.param == "redis-cluster":
        url, prefix = redis_prefix_url(request.getfixturevalue("redis_cluster"))
    else:
        reason = redis_available()
        if reason:
            pytest.skip(f"needs a real Redis server: {reason}")
        url, prefix = redis_prefix_url()
    yield url
    drop_prefix(url, prefix)
