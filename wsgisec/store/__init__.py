"""Shared state for every worker process, behind one small interface chosen by URL.

What the middlewares keep here: partner clients, access and refresh tokens (by SHA-256
digest, never in plain text), used nonces, rate-limit counters, security events, and
whatever else a layer needs to share between processes (signing keys, learned input
shapes). Everything is a JSON object in a *namespace* under a *key*:

===========================  ===========================================================
``get(ns, key)``             the value, or None if absent or expired
``get_many(pairs)``          ``[get(ns, key) for ns, key in pairs]`` in one statement or
                             round trip (a request's lookups together; issue 13)
``put(ns, key, value, ...)`` create or replace; optional ``ttl`` (seconds) and ``tags``
``add(ns, key, value, ttl)`` insert only if absent (or expired); True if this call won.
                             Atomic across processes: used for nonces and single-use
                             refresh tokens.
``add_since(ns, key, ...)``  ``add`` only after reading a marker record whose ``since``
                             is not after ``created``: one step on Redis (nonce + epoch)
``update(ns, key, fields)``  merge fields into an existing value; False if absent
``delete(ns, key)``          True if something was deleted
``delete_tagged(ns, tag)``   delete every key put with that tag (e.g. every token of one
                             client or one refresh-token family); returns the count
``keys(ns)`` / ``items(ns)`` every live key / (key, value): for operators, never per request
``incr(ns, key, window)``    add one to a counter that starts afresh every ``window``
                             seconds; returns the new count (rate limits)
``record_event(event)``      append a security event (a JSON object with ``time``)
``events(...)``              read events back, oldest first
``record_event_aggregated``  keep an event, or raise the ``count`` of a recent identical
                             one, within a cap of new rows per window (bounded growth)
``events_counted(...)``      ``events(...)`` with aggregated counts filled in
``purge_events(before)``     drop events older than ``before`` (retention)
``purge()``                  drop expired rows (Redis expires on its own)
===========================  ===========================================================

Backends, selected by :func:`open_store`:

* ``sqlite:////absolute/path.sqlite`` (or ``sqlite:///relative``): the embedded default.
  WAL journal and a busy timeout make it safe for several worker processes on one host.
  A relative path in an ini file is resolved against the ini file's directory
  (:func:`resolve_url`), so the CLI and every server open the same file whatever their
  current directory.
* ``redis://host:6379/0`` (``rediss://`` for TLS, ``?prefix=name:`` to share a database),
  ``redis+sentinel://h1:26379,h2:26379/mymaster`` and ``redis+cluster://h1:7000,h2:7001/``
  (:mod:`wsgisec.store.redis_connect`): for several hosts. Uses Redis' own expiry and
  atomic commands and scripts (SET NX PX, Lua for the multi-key steps).
  Without the ``redis`` package such a URL is a ConfigurationError when the pipeline is
  loaded, naming ``wsgisec[redis]``, not a failure at the first request.

Both take ``?timeout=`` (``250ms``, ``0.5s``, ``2``; default :data:`DEFAULT_TIMEOUT`,
0.25 s): the Redis connect and read timeout, the SQLite busy timeout. A layer's
``store_timeout`` setting lands here (:func:`with_timeout`). A frozen store thus costs a
request at most that long, never the server's thread for seconds.

Failures to reach the backend raise :class:`StoreUnavailable`, opening it included (a
missing or unwritable directory, a file that is not a database); callers that make a
security decision treat it as a refusal (503), never as a pass. :meth:`Store.check`
(used by ``wsgisec check``) says whether the store is reachable, writable and has the
current schema.

:func:`open_store` keeps one store object per URL per process, opened lazily, so several
layers naming the same URL share one connection pool, and a pool is never shared across
a ``fork()``. It hands out the backend inside a :class:`~wsgisec.store.guard.GuardedStore`:
a circuit breaker (after repeated failures every call fails at once, then one probe) and
a bounded spool for security events the store could not take (written when it returns).

Creating a store: the first open of a missing SQLite file creates it, except where
:func:`no_create` is in force (the operator's CLI verbs: ``wsgisec client ...`` must not
answer "no such client" from a fresh empty file that replaced a deleted one; ``wsgisec
store init`` creates it explicitly).
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import re
import threading
import urllib.parse
from typing import Iterable, Iterator

__all__ = ["Store", "StoreUnavailable", "open_store", "resolve_url", "coerce", "DEFAULT_TIMEOUT",
           "parse_timeout", "with_timeout", "no_create", "log_unavailable"]

#: Seconds a store call may wait: Redis connect/read timeout, SQLite busy timeout. Well
#: under a second, so a stalled store turns into prompt 503s, not a stalled server.
DEFAULT_TIMEOUT = 0.25


class StoreUnavailable(Exception):
    """The store could not be reached or answered with an error: fail closed."""


_TIMEOUT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s)?\s*$")


def parse_timeout(text: str) -> float:
    """Seconds, written ``250ms``, ``0.5s`` or ``2`` (more than 0, at most 60)."""
    match = _TIMEOUT.match(str(text))
    if not match:
        raise ValueError("a timeout; write 250ms, 0.5s or 2s")
    seconds = float(match.group(1)) / (1000 if match.group(2) == "ms" else 1)
    if not 0 < seconds <= 60:
        raise ValueError("a timeout above 0 and at most 60s; write 250ms, 0.5s or 2s")
    return seconds


def url_options(url: str) -> tuple[str, dict[str, str]]:
    """``(url without its query, {option: value})`` for ``...?timeout=1s&prefix=x:``."""
    base, sep, query = url.partition("?")
    return base, dict(urllib.parse.parse_qsl(query, keep_blank_values=True)) if sep else {}


def with_timeout(url: str, timeout: float) -> str:
    """``url`` with ``?timeout=`` set (a layer's ``store_timeout``); ValueError if the URL
    already names a different one (two answers to one question)."""
    base, options = url_options(url)
    if "timeout" in options and parse_timeout(options["timeout"]) != timeout:
        raise ValueError(f"store_timeout = {timeout:g}s but the store URL says timeout={options['timeout']}; "
                         "keep one of them")
    options["timeout"] = f"{timeout:g}"
    return base + "?" + urllib.parse.urlencode(options, safe=":/")


_create_missing: contextvars.ContextVar[bool] = contextvars.ContextVar("wsgisec_store_create", default=True)


@contextlib.contextmanager
def no_create():
    """Within this block (in this thread), opening a missing SQLite store fails instead
    of creating an empty one: the operator's verbs run so (see ``wsgisec store init``)."""
    token = _create_missing.set(False)
    try:
        yield
    finally:
        _create_missing.reset(token)


def may_create() -> bool:
    """False inside :func:`no_create`."""
    return _create_missing.get()


class Store:
    """The interface every backend implements (see the module docstring)."""

    url: str

    def get(self, ns: str, key: str) -> dict | None:
        raise NotImplementedError

    def get_many(self, pairs) -> list:
        """``[get(ns, key) for ns, key in pairs]``; backends read them in one go."""
        return [self.get(ns, key) for ns, key in pairs]

    def put(self, ns: str, key: str, value: dict, ttl: float | None = None,
            tags: Iterable[str] = ()) -> None:
        raise NotImplementedError

    def add(self, ns: str, key: str, value: dict, ttl: float | None = None,
            tags: Iterable[str] = ()) -> bool:
        raise NotImplementedError

    def update(self, ns: str, key: str, fields: dict) -> bool:
        raise NotImplementedError

    def add_since(self, ns: str, key: str, value: dict, ttl: float | None = None, *,
                  marker: tuple[str, str], created: float | None = None) -> bool | None:
        """:meth:`add`, after reading the record ``marker`` (namespace, key) names: None
        (nothing added) when that record is missing, has no numeric ``since``, or its
        ``since`` is after ``created``; else whether this call added the key.

        The nonce check in one step: the marker is the nonce epoch
        (:mod:`wsgisec.signed_requests.epoch`), which decides what None means. Here a
        ``get`` then an ``add``; Redis does both in one script (one round trip).
        """
        record = self.get(*marker)
        try:
            since = float(record["since"])
        except (KeyError, TypeError, ValueError):
            return None
        if created is not None and created < since:
            return None
        return self.add(ns, key, value, ttl)

    def delete(self, ns: str, key: str) -> bool:
        raise NotImplementedError

    def delete_tagged(self, ns: str, tag: str) -> int:
        raise NotImplementedError

    def keys(self, ns: str) -> list[str]:
        raise NotImplementedError

    def items(self, ns: str) -> Iterator[tuple[str, dict]]:
        for key in self.keys(ns):
            value = self.get(ns, key)
            if value is not None:
                yield key, value

    def incr(self, ns: str, key: str, window: float) -> int:
        raise NotImplementedError

    def record_event(self, event: dict) -> None:
        raise NotImplementedError

    def events(self, since: float | None = None, until: float | None = None,
               kinds: Iterable[str] | None = None, limit: int = 1000) -> list[dict]:
        raise NotImplementedError

    def purge(self) -> int:
        return 0

    def check(self) -> str:
        """Prove the store is reachable, writable and has the current schema.

        Returns a short description (e.g. the resolved file path); raises
        :class:`StoreUnavailable` with one clear line when it is not usable.
        """
        raise NotImplementedError

    def close(self) -> None:
        pass

    def warnings(self) -> list[str]:
        """Risky choices in the backend's own configuration, for ``wsgisec check``."""
        return []

    def __repr__(self):
        return f"<{type(self).__name__} {redact_url(self.url)}>"

    # -- bounded event growth (used by events.emit and the reports layer) ----------

    def record_event_aggregated(self, event: dict, key: str | None, window: float,
                                cap: int) -> str:
        """Keep ``event`` unless it repeats a recent one or the store is flooded.

        Events with the same ``key`` within ``window`` seconds of the first become one
        row whose ``count`` grows; at most ``cap`` new rows are written per ``window``
        (``key`` None: never merged, still capped). Returns ``"stored"``, ``"counted"``
        or ``"capped"`` (not kept: the log line is the only record). Backends without
        their own version keep every event.
        """
        self.record_event(event)
        return "stored"

    def events_counted(self, since: float | None = None, until: float | None = None,
                       kinds: Iterable[str] | None = None, limit: int = 1000) -> list[dict]:
        """:meth:`events`, with each aggregated row's ``count`` filled in."""
        return self.events(since=since, until=until, kinds=kinds, limit=limit)

    def purge_events(self, before: float) -> int:
        """Drop events older than ``before`` (Unix seconds): retention. Returns a count."""
        return 0


def log_unavailable(environ: dict, layer: str, error: Exception) -> str:
    """Log a 503 the store caused, with the incident id the caller is shown and the cause
    (a StoreUnavailable names a file or a redacted URL, never a secret); returns the id."""
    from ..events import incident_id, ops_log

    incident = incident_id(environ)
    ops_log.error("%s: store unavailable, answered 503 (incident %s): %s", layer, incident, error)
    return incident


def redact_url(url: str) -> str:
    """Hide the passwords in a store URL before it reaches a log: ``user:password@`` and
    any query option whose name says password (``sentinel_password=``)."""
    scheme, sep, rest = url.partition("://")
    rest, mark, query = rest.partition("?")
    if "@" in rest:
        credentials, _, host = rest.rpartition("@")
        user = credentials.split(":", 1)[0]
        rest = f"{user}:***@{host}" if ":" in credentials else f"***@{host}"
    if query:
        query = "&".join(f"{name}=***" if "password" in name.lower() else f"{name}{eq}{value}"
                         for name, eq, value in (option.partition("=") for option in query.split("&")))
    return scheme + sep + rest + mark + query


_stores: dict[tuple[str, int], Store] = {}
_lock = threading.Lock()


def open_store(url: str) -> Store:
    """The process-wide store for ``url``; created on first use in each process."""
    key = (url, os.getpid())
    store = _stores.get(key)
    if store is None:
        with _lock:
            store = _stores.get(key)
            if store is None:
                store = _stores[key] = _create(url)
    return store


#: Store URLs served by :mod:`wsgisec.store.redis` (see :mod:`wsgisec.store.redis_connect`).
REDIS_SCHEMES = ("redis://", "rediss://", "unix://", "redis+sentinel://", "rediss+sentinel://",
                 "redis+cluster://", "rediss+cluster://")


def resolve_url(url: str, here: str | None = None) -> str:
    """The store URL as the ini file meant it; raises ConfigurationError if it cannot work.

    ``sqlite:///var/x.sqlite`` (a relative path) becomes an absolute path under ``here``,
    the ini file's directory: PasteDeploy's ``here``, not the process's current
    directory, which differs between ``wsgisec`` run by hand, a systemd unit and a
    server's workers. A Redis URL needs the ``redis`` package: refusing it here, at
    start-up, beats a 503 on every request.
    """
    from ..settings import ConfigurationError

    base, options = url_options(url)
    if "timeout" in options:
        try:
            parse_timeout(options["timeout"])
        except ValueError as error:
            raise ConfigurationError(f"store {redact_url(url)}: timeout={options['timeout']} is not "
                                     f"valid; expected {error}") from None
    if url.startswith("sqlite:///"):
        unknown = sorted(set(options) - {"timeout"})
        if unknown:
            raise ConfigurationError(f"store {redact_url(url)}: unknown option {', '.join(unknown)}; "
                                     "an sqlite URL takes ?timeout= only")
        path = base[len("sqlite:///"):]
        if path and path != ":memory:" and not os.path.isabs(path) and here:
            query = url[len(base):]
            return "sqlite:///" + os.path.normpath(os.path.join(here, path)) + query
        return url
    if url.startswith(REDIS_SCHEMES):
        try:
            import redis  # noqa: F401
        except ImportError:
            raise ConfigurationError(
                f"store {redact_url(url)} needs the redis package: pip install 'wsgisec[redis]'") from None
        from .redis_connect import connect

        try:
            connect(url)  # parses and builds the client; connects to nothing yet
        except ValueError as error:
            raise ConfigurationError(f"store {redact_url(url)}: {error}") from None
    return url


def _create(url: str) -> Store:
    from .guard import GuardedStore

    return GuardedStore(open_backend(url))


def open_backend(url: str) -> Store:
    """The bare backend for ``url`` (no breaker, no spool, not shared): for tools and tests."""
    if url.startswith("sqlite:///"):
        from .sqlite import SQLiteStore

        return SQLiteStore.from_url(url)
    if url.startswith(REDIS_SCHEMES):
        from .redis import RedisStore  # redis is an optional dependency

        return RedisStore.from_url(url)
    raise ValueError(f"unsupported store URL {redact_url(url)!r}")


class LazyStore:
    """A store named by URL, opened on first use in each process (after any fork).

    Middlewares keep one of these, so building the pipeline never touches the backend
    and a pre-forking server's workers each get their own connection.
    """

    __slots__ = ("url",)

    def __init__(self, url: str):
        self.url = url

    def __getattr__(self, name):
        return getattr(open_store(self.url), name)

    def __repr__(self):
        return f"<LazyStore {redact_url(self.url)}>"


def coerce(store):
    """The store a layer was given: a URL becomes a :class:`LazyStore`; an object is kept.

    Layers accept either, so an ini file names a URL and a test passes a store it made.
    """
    return LazyStore(store) if isinstance(store, str) else store
