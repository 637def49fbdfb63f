"""The event half of :class:`~wsgisec.store.redis.RedisStore`: a stream of security
events, their aggregated repeat counts, retention, and the persistence warning.

Stream entries cannot change, so the first event of a group is added with an
``aggregate`` token and later ones only count ``evcount:{token}``; ``events_counted()``
adds the counts back. ``evagg:{key}`` holds the group's token (or "capped") for the
window; ``SET NX`` picks exactly one writer per group. On a Cluster the counters share
one hash slot (``evcount:{events}:...``) so that one ``MGET`` reads them.
"""

from __future__ import annotations

import json
import secrets

from .redis_connect import ERRORS

# Enough history for the report collector; older events are trimmed by Redis.
EVENTS_MAXLEN = 100_000
#: How long the repeat count of an aggregated event is kept (as long as events are).
EVENT_COUNT_TTL = 90 * 86400


def _ms(ttl: float) -> int:
    return max(1, int(ttl * 1000))


class RedisEvents:
    """Mixed into RedisStore (which provides client, prefix, hash_tags, _call, _run, incr)."""

    def _evcount(self, token):
        return f"{self.prefix}evcount:{'{events}:' if self.hash_tags else ''}{token}"

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
        except (*ERRORS, AttributeError) as error:  # managed services often refuse CONFIG
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

    def record_event_aggregated(self, event, key, window, cap):
        token = secrets.token_hex(8)
        if key is not None:
            group = f"{self.prefix}evagg:{key}"
            if not self._call(self.client.set, group, token, px=_ms(window), nx=True):
                current = self._call(self.client.get, group)
                if current == b"capped":
                    return "capped"
                if current is not None:
                    self._run("COUNT_REPEAT", [self._evcount(current.decode())], [_ms(EVENT_COUNT_TTL)])
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
        names = [self._evcount(token) for token in tokens if token]
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
