"""Forwarded headers (``X-Forwarded-*``, RFC 7239 ``Forwarded``) believed from trusted proxies only.

Behind a TLS-terminating load balancer a request reaches the app as plain HTTP with
``X-Forwarded-Proto: https`` (or ``Forwarded: proto=https``), and the client's address in
``X-Forwarded-For``. Anyone can send those headers, so :class:`ForwardedHeaders` believes
them only when the connection comes from an address in ``trusted_proxies``; from anyone
else they are removed before the app sees them. Hops are counted from the right, skipping
trusted proxies: the leftmost ``X-Forwarded-For`` entry is whatever the client wrote
(STYLE.md §4; werkzeug's ProxyFix and waitress do the same).

Shared (wsgisec/ level): the https layer applies it; any layer that must judge a client
address the same way can build one from the same ``trusted_proxies`` list.

Python::

    forwarded = ForwardedHeaders(cidrs("10.0.0.0/8"), namespace="wsgisec.https")
    forwarded.apply(environ)   # before anything reads wsgi.url_scheme, HTTP_HOST or REMOTE_ADDR

What it overwrites is kept under ``environ["<namespace>.orig"]`` (as werkzeug's
``werkzeug.proxy_fix.orig``); the names of headers it removed from an untrusted peer under
``environ["<namespace>.untrusted_forwarded"]``.
"""

from __future__ import annotations

import functools
import ipaddress

__all__ = ["ForwardedHeaders", "FORWARDED_KEYS", "TRUST_CACHE_SIZE", "parse_forwarded"]

#: Every environ key a client could use to claim another scheme, host or address.
FORWARDED_KEYS = ("HTTP_FORWARDED", "HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO",
                  "HTTP_X_FORWARDED_HOST", "HTTP_X_FORWARDED_PORT", "HTTP_X_FORWARDED_SSL",
                  "HTTP_X_FORWARDED_SCHEME", "HTTP_X_REAL_IP")

#: How many distinct proxy/client addresses keep their trusted-or-not answer (issue 13:
#: parsing the same address with ipaddress cost ~15 µs a request). Bounded, so addresses
#: an attacker writes into X-Forwarded-For can only churn it, not grow it.
TRUST_CACHE_SIZE = 1024


class ForwardedHeaders:
    """Believe forwarded headers from ``trusted_proxies``; remove them from anyone else."""

    def __init__(self, trusted_proxies=(), *, namespace="wsgisec.https"):
        self.trusted_proxies = tuple(ipaddress.ip_network(net) if isinstance(net, str) else net
                                     for net in trusted_proxies)
        self.namespace = namespace
        # Per process, per layer: one parse per address, not one per request.
        self._trusted = functools.lru_cache(maxsize=TRUST_CACHE_SIZE)(self._parse_trusted)

    def warnings(self) -> list[str]:
        return [f"trusted_proxies contains {net}: anyone can forge X-Forwarded-Proto"
                for net in self.trusted_proxies if net.prefixlen == 0]

    def is_trusted(self, address) -> bool:
        """Whether ``address`` (a textual IP, maybe bracketed) is one of our proxies."""
        if not self.trusted_proxies or not address:
            return False
        return self._trusted(address)

    def _parse_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.strip().strip("[]"))
        except ValueError:
            return False
        return any(ip in net for net in self.trusted_proxies)

    def apply(self, environ) -> None:
        """Rewrite scheme, host and client address from a trusted proxy's headers.

        The hot path (no forwarded header at all) costs one membership test per key.
        """
        for key in FORWARDED_KEYS:
            if key in environ:
                break
        else:
            return
        original = {key: environ[key] for key in FORWARDED_KEYS if key in environ}
        if not self.is_trusted(environ.get("REMOTE_ADDR")):
            for key in original:
                del environ[key]
            environ[self.namespace + ".untrusted_forwarded"] = sorted(original)
            return
        environ[self.namespace + ".orig"] = dict(original, **{
            "wsgi.url_scheme": environ.get("wsgi.url_scheme"), "HTTP_HOST": environ.get("HTTP_HOST"),
            "REMOTE_ADDR": environ.get("REMOTE_ADDR")})
        if "HTTP_FORWARDED" in original:
            proto, host, chain = parse_forwarded(original["HTTP_FORWARDED"])
        else:
            proto = _last(original.get("HTTP_X_FORWARDED_PROTO"))
            host = _last(original.get("HTTP_X_FORWARDED_HOST"))
            chain = [part.strip() for part in original.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        if proto and proto.lower() in ("http", "https"):
            environ["wsgi.url_scheme"] = proto.lower()
        if host:
            environ["HTTP_HOST"] = host
        # Walk from the right: the first address that is not one of our proxies is the client.
        for address in reversed(chain):
            if not self.is_trusted(address):
                environ["REMOTE_ADDR"] = address.strip("[]")
                break


def _last(value: str | None) -> str | None:
    """The rightmost entry of a comma-separated forwarded header (set by our own proxy)."""
    if not value:
        return None
    return value.rsplit(",", 1)[-1].strip() or None


def _strip_port(node: str) -> str:
    """RFC 7239 §6 node: ``192.0.2.60``, ``192.0.2.60:4711``, ``[2001:db8::1]:4711``."""
    if node.startswith("["):
        return node[1:node.find("]")] if "]" in node else node
    return node.rsplit(":", 1)[0] if node.count(":") == 1 else node


def parse_forwarded(value: str):
    """RFC 7239: ``for=1.2.3.4;proto=https;host=api.example.com, for=...``.

    Returns ``(proto, host, chain)``: the rightmost element that names a proto or host
    wins; ``chain`` lists the ``for`` nodes, left to right, without ports.
    """
    proto = host = None
    chain = []
    for element in value.split(","):
        pairs = {}
        for pair in element.split(";"):
            key, sep, val = pair.partition("=")
            if sep:
                pairs[key.strip().lower()] = val.strip().strip('"')
        if "for" in pairs:
            chain.append(_strip_port(pairs["for"]))
        proto = pairs.get("proto", proto)  # the rightmost element that says wins
        host = pairs.get("host", host)
    return proto, host, chain
