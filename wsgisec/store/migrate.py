"""``wsgisec store migrate --from URL --to URL``: move a deployment's state between stores.

    wsgisec store migrate --from sqlite:////srv/api/var/wsgisec.sqlite --to redis://cache:6379/0

Copies every live key of every namespace (clients, signing keys, access and refresh
tokens, request-token records, revocations and floors, spent refresh tokens, used nonces,
learned shapes...) with its remaining lifetime and its tags, so that disabling a client or
revoking a refresh-token family on the new store still finds every token it must. Expired
keys, rate-limit counters and security events are not copied (counters restart their
window; events stay readable in the old store).

Idempotent and never destructive: a key the target already has is kept as it is, and a key
copied once is never copied again (a marker in ``store.migrated`` remembers it), so a token
revoked or a client disabled on the new store after a first run is not brought back, and
running it twice copies only what is new in the source. Stop the servers, or at least the writers,
while it runs, then point the ini's store at the target. The source is only read; a
missing SQLite source is an error (never an empty store created), a missing SQLite target
is created.

Prints one line per namespace (``tokens: 12 copied, 0 already there``) and a total;
exit status 0, or 2 if either store cannot be used.
"""

from __future__ import annotations

import json
from typing import Iterator

from . import Store, _create_missing, open_backend, redact_url

__all__ = ["export", "migrate"]

#: Keys copied once (``"ns key"``): never copied again, even if since deleted on the target.
MIGRATED = "store.migrated"

Entry = tuple[str, str, dict, "float | None", list]  # ns, key, value, ttl seconds, tags


def _export_sqlite(store) -> Iterator[Entry]:
    now = store.clock()
    with store._errors():
        connection = store._connection()
        rows = connection.execute("SELECT ns, key, value, expires FROM kv WHERE expires IS NULL OR expires > ? "
                                  "ORDER BY ns, key", (now,)).fetchall()
        tags: dict[tuple[str, str], list] = {}
        for ns, tag, key in connection.execute("SELECT ns, tag, key FROM tags ORDER BY ns, tag"):
            tags.setdefault((ns, key), []).append(tag)
    for ns, key, value, expires in rows:
        yield ns, key, json.loads(value), None if expires is None else expires - now, tags.get((ns, key), [])


def _redis_ns(store, name: str, kind: str) -> tuple[str, str]:
    """``(ns, rest)`` of a ``{prefix}{kind}:NS:rest`` name (``{NS}`` on a Cluster)."""
    body = name[len(store.prefix) + len(kind) + 1:]
    if store.hash_tags:
        ns, _, rest = body[1:].partition("}:")
    else:
        ns, _, rest = body.partition(":")
    return ns, rest


def _export_redis(store) -> Iterator[Entry]:
    client = store.client
    pattern = lambda kind: "".join("\\" + c if c in "*?[]\\" else c for c in f"{store.prefix}{kind}:") + "*"  # noqa: E731
    tags: dict[tuple[str, str], list] = {}
    for name in store._call(lambda: [n.decode() for n in client.scan_iter(match=pattern("tag"), count=1000)]):
        ns, tag = _redis_ns(store, name, "tag")
        for member in store._call(client.smembers, name):
            tags.setdefault((ns, member.decode()), []).append(tag)
    names = store._call(lambda: sorted(n.decode() for n in client.scan_iter(match=pattern("kv"), count=1000)))
    for name in names:
        raw, left = store._call(client.get, name), store._call(client.pttl, name)
        if raw is None or left == -2:
            continue  # expired since the scan
        ns, key = _redis_ns(store, name, "kv")
        yield ns, key, json.loads(raw), None if left < 0 else left / 1000, sorted(tags.get((ns, key), []))


def export(store: Store) -> Iterator[Entry]:
    """Every live key of a bare backend: ``(ns, key, value, ttl or None, tags)``."""
    from .sqlite import SQLiteStore

    if isinstance(store, SQLiteStore):
        return _export_sqlite(store)
    return _export_redis(store)


def migrate(source: Store, target: Store) -> dict[str, list[int]]:
    """Copy what :func:`export` yields into ``target`` where absent: ``{ns: [copied, kept]}``.

    Each copied key leaves a marker in :data:`MIGRATED` (as long-lived as the key), and a
    key with a marker is never copied again: a token revoked on the target after a first
    run stays revoked when the operator runs it again.
    """
    counts: dict[str, list[int]] = {}
    for ns, key, value, ttl, tags in export(source):
        if ns == MIGRATED or (ttl is not None and ttl <= 0):
            continue
        marker = f"{ns} {key}"  # namespaces hold no space
        won = target.get(MIGRATED, marker) is None and target.add(ns, key, value, ttl=ttl, tags=tags)
        target.put(MIGRATED, marker, {}, ttl=ttl)
        counts.setdefault(ns, [0, 0])[0 if won else 1] += 1
    return counts


def run(args) -> int:
    from .. import cli
    from . import StoreUnavailable, resolve_url

    try:
        source_url, target_url = resolve_url(args.source), resolve_url(args.target)
        if source_url == target_url:
            return cli.fail("--from and --to name the same store", cli.EXIT_CONFIG)
        source = open_backend(source_url)  # operator verbs run in no_create: never a new empty source
        token = _create_missing.set(True)
        try:
            target = open_backend(target_url)
        finally:
            _create_missing.reset(token)
        target.check()
        counts = migrate(source, target)
    except (StoreUnavailable, ValueError, cli.ConfigurationError) as error:
        return cli.fail(f"store migrate: {error}", cli.EXIT_CONFIG)
    for ns, (copied, kept) in sorted(counts.items()):
        print(f"{ns}: {copied} copied, {kept} already there")
    copied, kept = sum(c for c, _ in counts.values()), sum(k for _, k in counts.values())
    print(f"{redact_url(source_url)} -> {redact_url(target_url)}: {copied} keys copied, {kept} already there")
    return cli.EXIT_OK
