"""The multi-host store: Redis, with its own expiry and atomic commands.

``redis://host:6379/0`` (``rediss://`` for TLS; ``?prefix=app1:`` keeps several
deployments apart in one database; the default prefix is ``wsgisec:``; ``?timeout=250ms``
is the connect and read timeout, default :data:`~wsgisec.store.DEFAULT_TIMEOUT`, with no
retry: a frozen server costs one call that long, and the circuit breaker of
:mod:`wsgisec.store.guard` then stops asking it).

Layout, under the prefix:

* ``kv:{ns}:{key}``      the JSON value, with ``PX`` expiry when it has a TTL
* ``tag:{ns}:{tag}``     a set of keys put with that tag; it expires with its
                         longest-lived member
* ``ctr:{ns}:{key}``     a counter: ``INCR`` then ``PEXPIRE ... NX`` in one transaction
* ``events``             a stream (``XADD ... MAXLEN ~``) of security events

``add`` is ``SET NX PX`` (nonces, single-use refresh tokens): exactly one caller in the
whole cluster wins. Requires the ``redis`` package (``pip install wsgisec[redis]``).
"""

from __future__ import annotations

import json
import urllib.parse

import redis

from redis.backoff import NoBackoff
from redis.retry import Retry

from . import DEFAULT_TIMEOUT, Store, StoreUnavailable, parse_timeout, redact_url

# Enough history for the report collector; older events are trimmed by Redis.
EVENTS_MAXLEN = 100_000
#: How long the repeat count of an aggregated event is kept (as long as events are).
EVENT_COUNT_TTL = 90 * 86400


def _ms(ttl: float) -> int:
    return max(1, int(ttl * 1000))


class RedisStore(Store):
    def __init__(self, client: "redis.Redis", *, url: str, prefix: str = "wsgisec:"):
        self.client = client
        self.url = url
        self.prefix = prefix

    @classmethod
    def from_url(cls, url: str) -> "RedisStore":
        parts = urllib.parse.urlsplit(url)
        query = urllib.parse.parse_qs(parts.query)
        prefix = query.pop("prefix", ["wsgisec:"])[0]
        timeout = parse_timeout(query.pop("timeout")[0]) if "timeout" in query else DEFAULT_TIMEOUT
        clean = urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query, doseq=True)))
        # No retry: a retried timeout doubles the wait of every request on a frozen server.
        client = redis.Redis.from_url(clean, socket_timeout=timeout, socket_connect_timeout=timeout,
                                      health_check_interval=30, retry=Retry(NoBackoff(), 0),
                                      retry_on_timeout=False)
        return cls(client, url=url, prefix=prefix)

    def _k(self, ns, key):
        return f"{self.prefix}kv:{ns}:{key}"

    def _t(self, ns, tag):
        return f"{self.prefix}tag:{ns}:{tag}"

    def _call(self, function, *args, **kwargs):
        try:
            return function(*args, **kwargs)
        except redis.RedisError as error:
            raise StoreUnavailable(f"redis store {redact_url(self.url)}: {type(error).__name__}") from error

    @staticmethod
    def _dump(value):
        return json.dumps(value, separators=(",", ":"))

    def get(self, ns, key):
        raw = self._call(self.client.get, self._k(ns, key))
        return None if raw is None else json.loads(raw)

    def _tag(self, pipe, ns, key, ttl, tags):
        """Add ``key`` to each tag set; a set lives as long as its longest-lived member."""
        for tag in tags:
            name = self._t(ns, tag)
            pipe.sadd(name, key)
            if ttl is None:
                pipe.persist(name)
            else:
                pipe.pexpire(name, _ms(ttl), nx=True)  # a new set: give it this TTL
                pipe.pexpire(name, _ms(ttl), gt=True)  # an older one: extend if ours is longer

    def put(self, ns, key, value, ttl=None, tags=()):
        pipe = self.client.pipeline(transaction=True)
        pipe.set(self._k(ns, key), self._dump(value), px=None if ttl is None else _ms(ttl))
        self._tag(pipe, ns, key, ttl, tuple(tags))
        self._call(pipe.execute)

    def add(self, ns, key, value, ttl=None, tags=()):
        tags = tuple(tags)
        won = self._call(self.client.set, self._k(ns, key), self._dump(value),
                         px=None if ttl is None else _ms(ttl), nx=True)
        if won and tags:
            pipe = self.client.pipeline(transaction=True)
            self._tag(pipe, ns, key, ttl, tags)
            self._call(pipe.execute)
        return bool(won)

    def update(self, ns, key, fields):
        name = self._k(ns, key)

        def merge(pipe):
            raw = pipe.get(name)
            if raw is None:
                return False
            ttl = pipe.pttl(name)
            value = json.loads(raw)
            value.update(fields)
            pipe.multi()
            pipe.set(name, self._dump(value), px=ttl if ttl and ttl > 0 else None)
            return True

        return self._call(self.client.transaction, merge, name, value_from_callable=True)

    def delete(self, ns, key):
        return bool(self._call(self.client.delete, self._k(ns, key)))

    def delete_tagged(self, ns, tag):
        tag_key = self._t(ns, tag)
        members = self._call(self.client.smembers, tag_key)
        if not members:
            return 0
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(*[self._k(ns, member.decode()) for member in members])
        pipe.delete(tag_key)
        deleted, _ = self._call(pipe.execute)
        return deleted

    def keys(self, ns):
        start = len(self._k(ns, ""))
        names = self._call(lambda: list(self.client.scan_iter(match=self._k(ns, "*"), count=500)))
        return sorted(name.decode()[start:] for name in names)

    def incr(self, ns, key, window):
        name = f"{self.prefix}ctr:{ns}:{key}"
        pipe = self.client.pipeline(transaction=True)
        pipe.incr(name)
        pipe.pexpire(name, _ms(window), nx=True)
        count, _ = self._call(pipe.execute)
        return int(count)

    def record_event(self, event):
        self._call(self.client.xadd, f"{self.prefix}events", {"data": self._dump(event)},
                   maxlen=EVENTS_MAXLEN, approximate=True)

    def events(self, since=None, until=None, kinds=None, limit=1000):
        low = "-" if since is None else str(int(since * 1000))
        high = "+" if until is None else str(max(0, int(until * 1000) - 1))
        kinds = set(kinds or ())
        # Newest first, so `limit` keeps the most recent, as the SQLite store does.
        entries = self._call(self.client.xrevrange, f"{self.prefix}events", high, low)
        found = []
        for _id, fields in entries:
            event = json.loads(fields[b"data"])
            if kinds and event.get("kind") not in kinds:
                continue
            found.append(event)
            if len(found) >= limit:
                break
        found.reverse()
        return found

    def check(self) -> str:
        """The URL (password hidden), once a probe key was written and deleted."""
        probe = f"{self.prefix}check:probe"
        try:
            self.client.set(probe, b"1", px=10_000)
            self.client.delete(probe)
        except redis.RedisError as error:
            # The client's message names host and port (never the password): what an
            # operator needs to fix the URL or start the server.
            raise StoreUnavailable(f"redis store {redact_url(self.url)}: {type(error).__name__}: "
                                   f"{redact_url(str(error))}") from error
        return redact_url(self.url)

    def close(self):
        self.client.close()

    def warnings(self) -> list[str]:
        """Warn when Redis would forget what replay protection and revocation rely on.

        Used nonces, revoked tokens and disabled clients live here: a Redis that keeps
        nothing on disk forgets them on restart, and one restored from an older RDB
        snapshot forgets the latest, so a captured signed request could be accepted once
        more. Append-only persistence (``appendonly yes``) keeps every acknowledged write.
        """
        try:
            appendonly = self.client.config_get("appendonly").get("appendonly")
            save = self.client.config_get("save").get("save")
        except redis.RedisError as error:  # managed services often refuse CONFIG
            return [f"could not read its persistence settings (CONFIG GET: {type(error).__name__}); "
                    "make sure it runs with appendonly yes, or a restart can reopen replay windows"]
        if appendonly == "yes":
            return []
        if not save:
            return ["keeps nothing on disk (appendonly no, save \"\"): a restart forgets used nonces, "
                    "revocations and clients, so a replayed signed request could be accepted again; "
                    "set appendonly yes"]
        return [f"keeps only RDB snapshots (save {save!r}, appendonly no): a restore from a snapshot "
                "forgets the nonces and revocations written since; set appendonly yes"]

    # -- bounded event growth (additive; see Store.record_event_aggregated) ---------
    #
    # Stream entries cannot change, so the first event of a group is added with an
    # ``aggregate`` token and later ones only INCR ``evcount:{token}``;
    # events_counted() adds the counts back. ``evagg:{key}`` holds the group's token
    # (or "capped") for the window; SET NX picks exactly one writer per group.

    def record_event_aggregated(self, event, key, window, cap):
        import secrets

        token = secrets.token_hex(8)
        if key is not None:
            group = f"{self.prefix}evagg:{key}"
            if not self._call(self.client.set, group, token, px=_ms(window), nx=True):
                current = self._call(self.client.get, group)
                if current == b"capped":
                    return "capped"
                if current is not None:
                    pipe = self.client.pipeline(transaction=True)
                    pipe.incr(f"{self.prefix}evcount:{current.decode()}")
                    pipe.pexpire(f"{self.prefix}evcount:{current.decode()}", _ms(EVENT_COUNT_TTL))
                    self._call(pipe.execute)
                    return "counted"
        if self.incr("events", "rows", window) > cap:
            if key is not None:
                self._call(self.client.set, f"{self.prefix}evagg:{key}", "capped", px=_ms(window))
            return "capped"
        self.record_event(dict(event, aggregate=token) if key is not None else event)
        return "stored"

    def events_counted(self, since=None, until=None, kinds=None, limit=1000):
        found = self.events(since=since, until=until, kinds=kinds, limit=limit)
        tokens = [event.get("aggregate") for event in found]
        names = [f"{self.prefix}evcount:{token}" for token in tokens if token]
        counts = iter(self._call(self.client.mget, names) if names else ())
        for event, token in zip(found, tokens):
            if token:
                extra = next(counts)
                del event["aggregate"]
                if extra:
                    event["count"] = 1 + int(extra)
        return found

    def purge_events(self, before):
        return int(self._call(self.client.xtrim, f"{self.prefix}events",
                              minid=str(max(0, int(before * 1000)))))
