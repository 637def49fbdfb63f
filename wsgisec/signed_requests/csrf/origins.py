"""Where an unsafe browser request comes from: Fetch Metadata, then ``Origin`` (or ``Referer``).

OWASP CSRF Prevention Cheat Sheet, "Fetch Metadata headers" and "Verifying Origin With
Standard Headers". :func:`check_origin` raises :class:`~.refusals.Refuse` for an unsafe
request that another site (or a sibling subdomain) makes the browser send, unless its
origin is one of the configured trusted origins; :func:`normal_origin` is the one
spelling of an origin (``scheme://host[:port]``, lower case, no default port) that every
comparison uses.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from ... import settings
from .refusals import (CROSS_SITE, FETCH_SITE_INVALID, ORIGIN_MISMATCH, ORIGIN_NULL, REFERER_MISMATCH,
                       SAME_SITE, Refuse)

__all__ = ["check_origin", "normal_origin", "own_origin", "origins"]

_ORIGIN = re.compile(r"^(https?)://([a-z0-9.\-]+|\[[0-9a-f:.]+\])(?::([0-9]{1,5}))?/?$")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def normal_origin(text: str):
    """``scheme://host[:port]`` in lower case without a default port, or None."""
    match = _ORIGIN.match(text.strip().lower())
    if not match:
        return None
    scheme, host, port = match.groups()
    if port is not None:
        port = int(port)
        if port == _DEFAULT_PORTS[scheme]:
            port = None
        elif not 0 < port < 65536:
            return None
    return f"{scheme}://{host}" + (f":{port}" if port else "")


def origins(text: str) -> tuple[str, ...]:
    """The ``csrf_trusted_origins`` parser: whitespace-separated origins, each normalised."""
    found = []
    for word in settings.words(text):
        origin = normal_origin(word)
        if origin is None:
            raise ValueError(f"origins such as https://www.example.com ({word!r} is not one: "
                             "scheme and host, optional port, no path)")
        found.append(origin)
    return tuple(found)


def own_origin(environ) -> str | None:
    """This service's origin as the request names it (the https layer made it trustworthy)."""
    scheme = environ.get("wsgi.url_scheme", "http")
    host = environ.get("HTTP_HOST")
    if not host:
        host = environ.get("SERVER_NAME", "") + ":" + environ.get("SERVER_PORT", "")
    return normal_origin(f"{scheme}://{host.rstrip(':')}")


def check_origin(environ, trusted_origins) -> None:
    """OWASP CSRF Prevention Cheat Sheet: Fetch Metadata, then Origin (or Referer)."""
    site = environ.get("HTTP_SEC_FETCH_SITE")
    origin_header = environ.get("HTTP_ORIGIN")
    origin = normal_origin(origin_header) if origin_header else None
    if site is not None:
        site = site.strip().lower()
        if site in ("cross-site", "same-site"):
            # Only a browser sets Sec-Fetch-Site (a forbidden header name), so this is a
            # page of another site (or a sibling subdomain, which may be hostile: subdomain
            # takeover) making the browser post here. Only trusted origins may.
            if origin is None or origin not in trusted_origins:
                raise Refuse(CROSS_SITE if site == "cross-site" else SAME_SITE,
                             fetch_site=site, origin=origin_header)
        elif site not in ("same-origin", "none"):
            raise Refuse(FETCH_SITE_INVALID, fetch_site=site[:20])
    if origin_header is not None:
        # Sandboxed iframes, data: URLs and some redirects send "null": never ours.
        if origin_header.strip().lower() == "null":
            raise Refuse(ORIGIN_NULL, origin="null")
        if origin is None or (origin != own_origin(environ) and origin not in trusted_origins):
            raise Refuse(ORIGIN_MISMATCH, origin=origin_header)
        return
    # No Origin (old browsers, some privacy tools): the Referer's origin, when sent,
    # must be ours. Neither header: the token is the defence (OWASP allows accepting
    # when a token is verified).
    referer = environ.get("HTTP_REFERER")
    if referer:
        try:
            parts = urlsplit(referer.strip())
        except ValueError:
            parts = None
        referer_origin = (normal_origin(f"{parts.scheme}://{parts.netloc}")
                          if parts is not None and "@" not in parts.netloc else None)
        if referer_origin is None or (referer_origin != own_origin(environ)
                                      and referer_origin not in trusted_origins):
            raise Refuse(REFERER_MISMATCH, referer_origin=referer_origin)
