"""The multi-host store: Redis, with its own expiry and atomic scripts.

URLs (:mod:`wsgisec.store.redis_connect`): ``redis://host:6379/0`` (``rediss://`` for
TLS), ``redis+sentinel://h1:26379,h2:26379/mymaster/0`` and ``redis+cluster://h1:7000,
h2:7001/``; ``?prefix=app1:`` keeps several deployments apart in one database (default
``wsgisec:``); ``?timeout=250ms`` is the connect and read timeout, default
:data:`~wsgisec.store.DEFAULT_TIMEOUT`, with no retry: a frozen server costs one call that
long, and the circuit breaker of :mod:`wsgisec.store.guard` then stops asking it.

Layout, under the prefix (``NS`` is the namespace, written ``{NS}`` on a Cluster so that
a namespace's values and tag sets share one hash slot):

* ``kv:NS:{key}``        the JSON value, with ``PX`` expiry when it has a TTL
* ``tag:NS:{tag}``       a set of keys put with that tag; it expires with its
                         longest-lived member (never, if one member never expires)
* ``ctr:NS:{key}``       a counter whose window starts at its first count
* ``events``             a stream (``XADD ... MAXLEN ~``) of security events

Every step that must hold across hosts is one command or one Lua script
(:mod:`wsgisec.store.redis_scripts`), so no other host's command lands in between:
``add`` (nonces, single-use refresh tokens) is ``SET NX`` with its tags, so exactly one
caller in the whole deployment wins and a concurrent ``delete_tagged`` (revoking a
client's or a family's tokens) sees the key with all its tags or not at all; ``update``
is a compare-and-set that keeps the TTL (a concurrent update is retried, never lost);
``incr`` counts and starts its window in one step. Requires the ``redis`` package
(``pip install wsgisec[redis]``).
"""

from __future__ import annotations

import json

import redis
from redis.commands.core import Script

from . import Store, StoreUnavailable, redact_url
from . import redis_scripts
from .redis_cache import ABSENT_CACHED, CACHED_NAMESPACES, TrackedCache
from .redis_connect import ERRORS, connect, wants_cache
from .redis_events import RedisEvents

# Compare-and-set attempts of one update before it is reported as a failure.
_UPDATE_TRIES = 16


def _ms(ttl: float) -> int:
    return max(1, int(ttl * 1000))


class RedisStore(RedisEvents, Store):
    def __init__(self, client: "redis.Redis", *, url: str, prefix: str = "wsgisec:", hash_tags: bool = False,
                 cache: bool = False):
        self.client = client
        self.url = url
        self.prefix = prefix
        self.hash_tags = hash_tags
        # Texts as bytes: a Script then needs nothing of the client (no connection, no
        # Cluster slot map) until it is first run, inside a store call.
        self._scripts = {name: Script(client, getattr(redis_scripts, name).encode())
                         for name in ("PUT", "COMPARE_AND_SET", "DELETE_TAGGED", "INCR", "COUNT_REPEAT",
                                      "ADD_SINCE")}
        #: The tracked client-side cache (:mod:`wsgisec.store.redis_cache`), or None.
        self.cache = TrackedCache(self._tracking_connection) if cache and not hash_tags else None

    @classmethod
    def from_url(cls, url: str) -> "RedisStore":
        try:
            client, prefix, hash_tags = connect(url)
        except ValueError as error:
            raise ValueError(f"store {redact_url(url)}: {error}") from None
        return cls(client, url=url, prefix=prefix, hash_tags=hash_tags, cache=wants_cache(url))

    def _tracking_connection(self):
        """A new connection like the pool's, speaking RESP3 (for the cache's pushes)."""
        pool = self.client.connection_pool
        return pool.connection_class(**dict(pool.connection_kwargs, protocol=3, health_check_interval=0))

    def _forget(self, ns, key=None):
        """This process changed ``ns``/``key`` (None: some keys of ``ns``): drop its copy
        now, before Redis' invalidation can arrive."""
        if self.cache is not None and ns in CACHED_NAMESPACES:
            self.cache.invalidate(None if key is None else self._k(ns, key))

    def _ns(self, ns):
        return "{" + ns + "}" if self.hash_tags else ns

    def _k(self, ns, key):
        return f"{self.prefix}kv:{self._ns(ns)}:{key}"

    def _t(self, ns, tag):
        return f"{self.prefix}tag:{self._ns(ns)}:{tag}"

    def _call(self, function, *args, **kwargs):
        try:
            return function(*args, **kwargs)
        except ERRORS as error:
            raise StoreUnavailable(f"redis store {redact_url(self.url)}: {type(error).__name__}") from error

    def _run(self, script, keys, args):
        return self._call(self._scripts[script], keys=keys, args=args)

    @staticmethod
    def _dump(value):
        return json.dumps(value, separators=(",", ":"))

    def get(self, ns, key):
        if self.cache is not None and ns in CACHED_NAMESPACES:
            raw = self._call(self.cache.get, self._k(ns, key), ns in ABSENT_CACHED)
        else:
            raw = self._call(self.client.get, self._k(ns, key))
        return None if raw is None else json.loads(raw)

    def get_many(self, pairs):
        pairs = list(pairs)
        results = [None] * len(pairs)
        # Cached namespaces answer from the tracked cache (no round trip when warm); the
        # rest are read together.
        remote = [index for index, (ns, _key) in enumerate(pairs)
                  if self.cache is None or ns not in CACHED_NAMESPACES]
        for index, (ns, key) in enumerate(pairs):
            if self.cache is not None and ns in CACHED_NAMESPACES:
                results[index] = self.get(ns, key)
        if len(remote) == 1:
            results[remote[0]] = self.get(*pairs[remote[0]])
        elif remote:
            def read():
                # One round trip (per Cluster node): GETs pipelined, not a transaction.
                pipe = self.client.pipeline(transaction=False)
                for index in remote:
                    pipe.get(self._k(*pairs[index]))
                return pipe.execute()

            for index, raw in zip(remote, self._call(read)):
                results[index] = None if raw is None else json.loads(raw)
        return results

    def _put(self, mode, ns, key, value, ttl, tags):
        keys = [self._k(ns, key)] + [self._t(ns, tag) for tag in tags]
        try:
            return self._run("PUT", keys, [self._dump(value), "" if ttl is None else _ms(ttl), key, mode])
        finally:
            self._forget(ns, key)

    def put(self, ns, key, value, ttl=None, tags=()):
        self._put("put", ns, key, value, ttl, tuple(tags))

    def add(self, ns, key, value, ttl=None, tags=()):
        return bool(self._put("add", ns, key, value, ttl, tuple(tags)))

    def update(self, ns, key, fields):
        name = self._k(ns, key)
        for _ in range(_UPDATE_TRIES):
            raw = self._call(self.client.get, name)
            if raw is None:
                return False
            value = json.loads(raw)
            value.update(fields)
            done = self._run("COMPARE_AND_SET", [name], [raw, self._dump(value)])
            self._forget(ns, key)
            if done >= 0:
                return bool(done)
        raise StoreUnavailable(f"redis store {redact_url(self.url)}: {ns} {key!r} changed "
                               f"{_UPDATE_TRIES} times while being updated")

    def delete(self, ns, key):
        try:
            return bool(self._call(self.client.delete, self._k(ns, key)))
        finally:
            self._forget(ns, key)

    def delete_tagged(self, ns, tag):
        try:
            return int(self._run("DELETE_TAGGED", [self._t(ns, tag)], [self._k(ns, "")]))
        finally:
            self._forget(ns)

    def add_since(self, ns, key, value, ttl=None, *, marker, created=None):
        if self.hash_tags:  # the marker lives in another hash slot: two steps (Store's)
            return super().add_since(ns, key, value, ttl, marker=marker, created=created)
        done = int(self._run("ADD_SINCE", [self._k(ns, key), self._k(*marker)],
                             [self._dump(value), "" if ttl is None else _ms(ttl),
                              "" if created is None else repr(created)]))
        self._forget(ns, key)
        return None if done < 0 else bool(done)

    def keys(self, ns):
        start = len(self._k(ns, ""))
        # A pattern of the literal name: a namespace or prefix may hold glob characters.
        pattern = "".join("\\" + c if c in "*?[]\\" else c for c in self._k(ns, "")) + "*"
        names = self._call(lambda: list(self.client.scan_iter(match=pattern, count=500)))
        return sorted(name.decode()[start:] for name in names)

    def incr(self, ns, key, window):
        return int(self._run("INCR", [f"{self.prefix}ctr:{self._ns(ns)}:{key}"], [_ms(window)]))

    def check(self) -> str:
        """The URL (password hidden), once a probe key was written and deleted."""
        probe = f"{self.prefix}check:probe"
        try:
            self.client.set(probe, b"1", px=10_000)
            self.client.delete(probe)
        except ERRORS as error:
            # The client's message names host and port (never the password): what an
            # operator needs to fix the URL or start the server.
            raise StoreUnavailable(f"redis store {redact_url(self.url)}: {type(error).__name__}: "
                                   f"{redact_url(str(error))}") from error
        return redact_url(self.url)

    def close(self):
        if self.cache is not None:
            self.cache.close()
        self.client.close()
