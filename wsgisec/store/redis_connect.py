"""Store URLs to redis-py clients: one server, Sentinel, Cluster; TLS settings passed through.

==================================================  =====================================
``redis://[user:pw@]host:6379/0``                   one server (``unix:///path.sock``)
``rediss://...``                                    the same over TLS
``redis+sentinel://[user:pw@]h1:26379,h2:26379/``   the master Sentinel names ``service``
``    service[/db]``                                (:class:`redis.sentinel.Sentinel`)
``redis+cluster://[user:pw@]h1:7000,h2:7001/``      a Redis Cluster
                                                    (:class:`redis.cluster.RedisCluster`)
``rediss+sentinel://``, ``rediss+cluster://``       those two over TLS
==================================================  =====================================

Options, in the query: ``prefix=`` (default ``wsgisec:``), ``timeout=`` (the connect and
read timeout, default :data:`~wsgisec.store.DEFAULT_TIMEOUT`), ``cache=`` (``on``, the
default, or ``off``: the tracked client-side cache of :mod:`wsgisec.store.redis_cache`,
one server only; Sentinel and Cluster stores never cache), and for TLS
``ssl_ca_certs=``, ``ssl_certfile=``, ``ssl_keyfile=``, ``ssl_cert_reqs=`` (``required``,
the default, ``optional`` or ``none``) and ``ssl_check_hostname=`` (``true``/``false``).
Sentinel also takes ``sentinel_password=`` (and ``sentinel_username=``) when the Sentinels
themselves require a password; the URL's own credentials are the master's. Anything else
in a ``redis://`` query goes to redis-py's ``from_url`` as it always has.

No client retries a timed-out call (a retried timeout doubles every request's wait on a
frozen server; the circuit breaker of :mod:`wsgisec.store.guard` stops asking instead).
Connections are opened lazily, at the first command, and redis-py's pools notice a
``fork()`` and open fresh connections in the child; :func:`wsgisec.store.open_store`
keeps one store (one pool) per URL per process on top of that.
"""

from __future__ import annotations

import threading
import urllib.parse

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from . import DEFAULT_TIMEOUT, REDIS_SCHEMES, parse_timeout

__all__ = ["SCHEMES", "ERRORS", "connect", "wants_cache"]

SCHEMES = REDIS_SCHEMES
#: What a call to any of these clients raises when the store cannot answer.
ERRORS = (redis.RedisError, redis.exceptions.RedisClusterException)

_TLS_OPTIONS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs", "ssl_check_hostname")
_CERT_REQS = {"required", "optional", "none"}
_BOOLEAN = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def _tls(options: dict) -> dict:
    settings = {}
    for name in _TLS_OPTIONS:
        if name not in options:
            continue
        value = options.pop(name)
        if name == "ssl_cert_reqs" and value not in _CERT_REQS:
            raise ValueError(f"ssl_cert_reqs={value} is not one of {', '.join(sorted(_CERT_REQS))}")
        if name == "ssl_check_hostname":
            if value.lower() not in _BOOLEAN:
                raise ValueError(f"ssl_check_hostname={value} is not true or false")
            value = _BOOLEAN[value.lower()]
        settings[name] = value
    return settings


def _hosts(netloc: str, default_port: int) -> tuple[dict, list[tuple[str, int]]]:
    """``({username, password}, [(host, port), ...])`` from ``user:pw@h1:1,h2:2``."""
    credentials, _, hosts = netloc.rpartition("@")
    auth = {}
    if credentials:
        user, sep, password = credentials.partition(":")
        if user:
            auth["username"] = urllib.parse.unquote(user)
        if sep:
            auth["password"] = urllib.parse.unquote(password)
    found = []
    for item in filter(None, hosts.split(",")):
        host, sep, port = item.rpartition(":") if not item.endswith("]") else (item, "", "")
        if not sep:
            host, port = item, str(default_port)
        if not port.isdigit():
            raise ValueError(f"port {port!r} is not a number")
        found.append((host.strip("[]"), int(port)))
    if not found:
        raise ValueError("no host:port given")
    return auth, found


def cache_setting(value: str) -> bool:
    if value.lower() not in _BOOLEAN and value.lower() not in ("on", "off"):
        raise ValueError(f"cache={value} is not on or off")
    return value.lower() in ("on", "true", "yes", "1")


def wants_cache(url: str) -> bool:
    """Whether a store on ``url`` keeps the tracked client-side cache
    (:mod:`wsgisec.store.redis_cache`): ``cache=on`` (the default) on one server; never
    on Sentinel or Cluster, whose keys can move to a server the cache does not track."""
    scheme, _, rest = url.partition("://")
    options = dict(urllib.parse.parse_qsl(rest.partition("?")[2], keep_blank_values=True))
    return "+" not in scheme and cache_setting(options.get("cache", "on"))


def connect(url: str) -> tuple[object, str, bool]:
    """``(client, key prefix, hash_tags)`` for a Redis store URL (no connection yet).

    ``hash_tags`` is True for a Cluster: the store then puts each namespace's keys in one
    hash slot (``{ns}``), so a step touching several keys of one namespace (a key and its
    tag sets) runs as one script on one node.
    """
    scheme, _, rest = url.partition("://")
    location, _, query = rest.partition("?")
    options = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
    prefix = options.pop("prefix", "wsgisec:")
    cache_setting(options.pop("cache", "on"))
    timeout = parse_timeout(options.pop("timeout")) if "timeout" in options else DEFAULT_TIMEOUT
    tls = _tls(options)
    common = dict(socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0))
    common.update(tls)
    if scheme in ("redis", "rediss", "unix"):
        # from_url knows TLS from the rediss scheme (an ssl= argument is a TypeError there).
        clean = f"{scheme}://{location}" + ("?" + urllib.parse.urlencode(options) if options else "")
        client = redis.Redis.from_url(clean, health_check_interval=30, retry_on_timeout=False, **common)
        return client, prefix, False
    if scheme.startswith("rediss"):
        common["ssl"] = True
    netloc, _, path = location.partition("/")
    if scheme.endswith("+cluster"):
        from redis.cluster import ClusterNode, RedisCluster

        auth, hosts = _hosts(netloc, 6379)
        if path.strip("/") not in ("", "0"):
            raise ValueError("a Redis Cluster has database 0 only; drop the /db from the URL")
        nodes = [ClusterNode(host, port) for host, port in hosts]
        return _Lazy(lambda: RedisCluster(startup_nodes=nodes, **auth, **common, **options)), prefix, True
    from redis.sentinel import Sentinel

    auth, hosts = _hosts(netloc, 26379)
    service, _, db = path.strip("/").partition("/")
    if not service:
        raise ValueError("name the Sentinel service: redis+sentinel://host:26379/mymaster")
    if db and not db.isdigit():
        raise ValueError(f"database {db!r} is not a number")
    sentinel_auth = {name[len("sentinel_"):]: options.pop(name)
                     for name in ("sentinel_password", "sentinel_username") if name in options}
    # No retries with backoff when asking the Sentinels either: a call costs at most the timeout.
    sentinel = Sentinel(hosts, sentinel_kwargs=dict(socket_timeout=timeout, socket_connect_timeout=timeout,
                                                    retry=Retry(NoBackoff(), 0), **sentinel_auth, **tls,
                                                    **({"ssl": True} if "ssl" in common else {})))
    client = sentinel.master_for(service, db=int(db or 0), **auth, **common, **options)
    return client, prefix, False


class _Lazy:
    """A client made at its first call: ``RedisCluster()`` asks a node for the slot map as
    it is made, which must happen in the worker that uses it (after any fork) and inside
    a store call (so a cluster that is down is a StoreUnavailable, not a crash). Only its
    methods are reached through it."""

    def __init__(self, make):
        self._make, self._client, self._lock = make, None, threading.Lock()

    def _made(self):
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._make()
        return self._client

    def __getattr__(self, name):
        return lambda *args, **kwargs: getattr(self._made(), name)(*args, **kwargs)

    def close(self):
        if self._client is not None:
            self._client.close()
