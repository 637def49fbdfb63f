"""Bounded, low-priority password hashing for the token endpoints (issue 14).

An argon2id check of a client secret costs ~64 MiB and ~190 ms of CPU spread over four
threads. A flood of bad credentials from many addresses, which the per-address lock-out
of :class:`~wsgisec.token_auth.clients.ClientAuthenticator` cannot stop, would otherwise
take the CPU, memory and server threads the API needs (measured: signed calls went from
2 ms to 0.7 s p50 under 8 flooding connections; benchmarks/README.md). Two bounds, per
process, each answered with :class:`HashingBusy` (the endpoint answers 503 with
``Retry-After``; never a pass, never a check skipped for a secret that then succeeds):

* ``max_concurrent_hashes``: at most this many checks at once; a request waits
  ``hash_wait`` for a slot;
* ``failed_hash_budget``: at most this many checks that *fail* per window (a token
  bucket: a check takes a token when it starts and gives it back when the secret was
  right). Bad credentials are what a flood sends, so this bounds the CPU a flood can
  spend on argon2 to the budget times one check, however many addresses it comes from,
  while partners with the right secret are not counted.

The admitted checks run on threads of lowered CPU priority, so they yield the cores to
API requests.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import math
import os
import sys
import threading
import time

__all__ = ["HashSlots", "HashingBusy", "FailureBudget", "HASH_NICENESS"]


class HashingBusy(Exception):
    """No check now (no slot within the wait, or the failure budget is spent): the caller
    answers 503 with ``Retry-After: retry_after``, nobody passes."""

    def __init__(self, message: str, retry_after: int = 1, why: str = "no slot"):
        super().__init__(message)
        self.retry_after, self.why = retry_after, why


class FailureBudget:
    """A token bucket of ``count`` failed checks per ``window`` seconds (burst: ``count``).

    :meth:`take` before a check (False: the budget is spent), :meth:`give_back` after a
    check that succeeded, so that only failures are counted. Thread-safe; monotonic clock.
    """

    def __init__(self, count: int, window: float, clock=time.monotonic):
        if count < 1 or window <= 0:
            raise ValueError("failed_hash_budget must allow at least one failure per window")
        self.capacity, self.rate, self.clock = float(count), count / window, clock
        self.spent = 0  # how many checks found it empty (for tests and operators)
        self._tokens, self._updated = self.capacity, clock()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            self._refill()
            if self._tokens < 1:
                self.spent += 1
                return False
            self._tokens -= 1
            return True

    def give_back(self) -> None:
        with self._lock:
            self._refill()
            self._tokens = min(self.capacity, self._tokens + 1)

    def retry_after(self) -> int:
        """Whole seconds until one more check may start (at least 1; RFC 9110 §10.2.3)."""
        with self._lock:
            self._refill()
            return max(1, math.ceil((1 - self._tokens) / self.rate))

    def _refill(self) -> None:
        now = self.clock()
        # max(0, ...): a wall clock stepped back must not drain the bucket.
        self._tokens = min(self.capacity, self._tokens + max(0.0, now - self._updated) * self.rate)
        self._updated = now


class HashSlots:
    """At most ``limit`` password-hash checks at once in this process (None: no bound),
    and, with ``failures`` (a :class:`FailureBudget`), at most so many failed ones.

    :meth:`run` takes a token of the failure budget (none left: :class:`HashingBusy` at
    once, nothing waits), then waits up to ``wait`` seconds for a slot (a
    :class:`threading.BoundedSemaphore`), else raises :class:`HashingBusy`; the check
    then runs on one of ``limit`` hashing threads whose CPU priority is lowered (Linux:
    nice +:data:`HASH_NICENESS`; argon2's own threads inherit it), so a flood of checks
    yields the cores to API requests instead of sharing them. Only a check that ran and
    returned a false value (a wrong secret) keeps its budget token. The bounds are per process:
    under a pre-fork server with W workers the host allows W times as much.
    ``active`` and ``peak`` count the checks in progress and the most seen at once.
    """

    def __init__(self, limit: int | None = None, wait: float = 0.01, failures: FailureBudget | None = None):
        if limit is not None and limit < 1:
            raise ValueError("max_concurrent_hashes must be at least 1")
        self.limit = limit
        self.wait = float(wait)
        self.failures = failures
        self._semaphore = threading.BoundedSemaphore(limit) if limit else None
        self._lock = threading.Lock()
        self._executor = None  # created at the first check: after a pre-fork server forked
        self._executor_pid = None
        self.active = 0
        self.peak = 0

    def run(self, check, *args, budgeted: bool = True):
        """``check(*args)`` within the bounds, on a low-priority hashing thread;
        ``budgeted=False`` (a known caller): not counted against the failure budget."""
        budget = self.failures if budgeted else None
        if budget is not None and not budget.take():
            raise HashingBusy("the failed-check budget is spent", budget.retry_after(), "failure budget")
        failed = False
        try:
            result = self._in_slot(check, *args)
            failed = not result
            return result
        finally:
            # Only a check that ran and said no spends the budget (not a right secret,
            # not a request that found no slot).
            if budget is not None and not failed:
                budget.give_back()

    def _in_slot(self, check, *args):
        if self._semaphore is None:
            return self._counted(check, *args)
        if not self._semaphore.acquire(timeout=self.wait):
            raise HashingBusy(f"no hashing slot within {self.wait:g}s", max(1, math.ceil(self.wait)))
        try:
            call = contextvars.copy_context().run
            return self._pool().submit(call, self._counted, check, *args).result()
        finally:
            self._semaphore.release()

    def _counted(self, function, *args):
        with self._lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
        try:
            return function(*args)
        finally:
            with self._lock:
                self.active -= 1

    def _pool(self) -> concurrent.futures.ThreadPoolExecutor:
        with self._lock:
            if self._executor is None or self._executor_pid != os.getpid():
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    self.limit, thread_name_prefix="wsgisec-hash", initializer=_lower_priority)
                self._executor_pid = os.getpid()
            return self._executor


#: How much a hashing thread's niceness is raised (Linux, where niceness is per thread).
HASH_NICENESS = 10


def _lower_priority() -> None:
    if sys.platform.startswith("linux") and hasattr(os, "setpriority"):
        tid = threading.get_native_id()
        try:
            os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + HASH_NICENESS))
        except OSError:  # pragma: no cover - a sandbox that forbids it: normal priority
            pass
