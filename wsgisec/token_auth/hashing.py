"""Bounded, low-priority password hashing for the token endpoints (issue 14).

An argon2id check of a client secret costs ~64 MiB and tens of milliseconds of every
core. A flood of bad credentials from many addresses, which the per-address lock-out of
:class:`~wsgisec.token_auth.clients.ClientAuthenticator` cannot stop, would otherwise take
the CPU, memory and server threads the API needs (measured: signed calls went from 2 ms
to 0.7 s p50 under 8 flooding connections; benchmarks/README.md). :class:`HashSlots`
admits at most ``max_concurrent_hashes`` checks at once per process, waits ``hash_wait``
for a slot and otherwise raises :class:`HashingBusy` (the endpoint answers 503 with
``Retry-After``; never a pass), and runs the admitted checks on threads of lowered CPU
priority.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import os
import sys
import threading

__all__ = ["HashSlots", "HashingBusy", "HASH_NICENESS"]


class HashingBusy(Exception):
    """No hashing slot freed within the wait: the caller answers 503, nobody passes."""


class HashSlots:
    """At most ``limit`` password-hash checks at once in this process (None: no bound).

    :meth:`run` waits up to ``wait`` seconds for a slot (a
    :class:`threading.BoundedSemaphore`), else raises :class:`HashingBusy`; the check
    then runs on one of ``limit`` hashing threads whose CPU priority is lowered (Linux:
    nice +:data:`HASH_NICENESS`; argon2's own threads inherit it), so a flood of checks
    yields the cores to API requests instead of sharing them. The limit is per process:
    under a pre-fork server with W workers at most W x ``limit`` checks run on the host.
    ``active`` and ``peak`` count the checks in progress and the most seen at once.
    """

    def __init__(self, limit: int | None = None, wait: float = 0.01):
        if limit is not None and limit < 1:
            raise ValueError("max_concurrent_hashes must be at least 1")
        self.limit = limit
        self.wait = float(wait)
        self._semaphore = threading.BoundedSemaphore(limit) if limit else None
        self._lock = threading.Lock()
        self._executor = None  # created at the first check: after a pre-fork server forked
        self._executor_pid = None
        self.active = 0
        self.peak = 0

    def run(self, function, *args):
        """``function(*args)`` within a slot, on a low-priority hashing thread."""
        if self._semaphore is None:
            return self._counted(function, *args)
        if not self._semaphore.acquire(timeout=self.wait):
            raise HashingBusy(f"no hashing slot within {self.wait:g}s")
        try:
            call = contextvars.copy_context().run
            return self._pool().submit(call, self._counted, function, *args).result()
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
