"""The CSRF token of one request: cookies read, token masked per response, form field found.

* :func:`mask` / :func:`unmask`: the token XORed with a fresh random pad, so the page
  never carries the same bytes twice (Django's defence against BREACH-style compression
  attacks).
* :class:`TokenState`: ``environ["wsgisec.csrf"]``, the token decided once and lazily.
* :func:`form_token`: the submitted field of an urlencoded or multipart body, read once
  and bounded through :func:`wsgisec.wsgi.read_body` (the app reads the same bytes);
  multipart through the one strict reader, :func:`wsgisec.multipart.field`.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from urllib.parse import unquote_plus

from ... import multipart
from ...wsgi import read_body

__all__ = ["TokenState", "mask", "unmask", "form_token", "request_cookies"]


def request_cookies(header: str, names) -> dict:
    """The first value of each cookie in ``names`` (raw, as the browser sent it)."""
    found = {}
    for part in header.split(";"):
        name, sep, value = part.partition("=")
        name = name.strip()
        if sep and name in names and name not in found:
            found[name] = value.strip()
    return found


def mask(token: str) -> str:
    """The token XORed with a fresh random pad, pad first (a new string every response)."""
    raw = token.encode("ascii")
    pad = secrets.token_bytes(len(raw))
    mixed = (int.from_bytes(pad, "big") ^ int.from_bytes(raw, "big")).to_bytes(len(raw), "big")
    return base64.urlsafe_b64encode(pad + mixed).rstrip(b"=").decode("ascii")


def unmask(text: str) -> bytes | None:
    if not text or len(text) > 1024:
        return None
    try:
        data = base64.urlsafe_b64decode(text.encode("ascii") + b"=" * (-len(text) % 4))
    except (ValueError, binascii.Error):
        return None
    if not data or len(data) % 2:
        return None
    half = len(data) // 2
    return (int.from_bytes(data[:half], "big") ^ int.from_bytes(data[half:], "big")).to_bytes(half, "big")


def form_token(environ, field: bytes, limit: int) -> str | None:
    """The token field of an urlencoded or multipart body, read with a size limit.

    ``read_body`` puts the bytes back, so the app reads the same body afterwards.
    """
    content_type = environ.get("CONTENT_TYPE", "")
    mime = content_type.partition(";")[0].strip().lower()
    if mime == "application/x-www-form-urlencoded":
        body = read_body(environ, limit)
        if field not in body:
            return None
        prefix = field + b"="
        for pair in body.split(b"&"):
            if pair.startswith(prefix):
                return unquote_plus(pair[len(prefix):].decode("latin-1"))
        return None
    if mime == "multipart/form-data":
        # The one strict reader (wsgisec.multipart): a body it would have to guess about
        # has no token for us either, so a filter and the app never read different fields.
        body = read_body(environ, limit)
        value = multipart.field(body, content_type, field.decode("ascii"))
        return value.decode("latin-1").strip() if value is not None else None
    return None


class TokenState:
    """The token of one request's response, decided once and lazily.

    ``environ["wsgisec.csrf"]``: an app that renders its own forms (``csrf_inject = false``)
    calls :meth:`masked_token`, and reads ``field_name`` / ``header_name``.
    """

    __slots__ = ("layer", "cookie_name", "cookie_header", "cookie_token", "session", "secure", "token",
                 "set_cookie", "verified", "loaded")

    def __init__(self, layer, cookie_name, cookie_header, secure):
        self.layer = layer
        self.cookie_name = cookie_name
        self.cookie_header = cookie_header
        self.secure = secure
        self.cookie_token = self.session = self.token = self.verified = None
        self.set_cookie = self.loaded = False

    def load(self):
        """Read the CSRF and session cookies of the request (once, and only when needed)."""
        if not self.loaded:
            self.loaded = True
            if self.cookie_header:
                layer = self.layer
                cookies = request_cookies(self.cookie_header, (self.cookie_name, layer.session_cookie))
                self.cookie_token = cookies.get(self.cookie_name)
                if layer.session_cookie is not None:
                    self.session = cookies.get(layer.session_cookie)

    @property
    def field_name(self):
        return self.layer.field_name

    @property
    def header_name(self):
        return self.layer.header_name

    def rebind(self, session):
        """The app set a new session cookie (a login): bind the token to the new session."""
        self.load()
        if session != self.session:
            self.session = session
            self.token = None

    def current(self) -> str:
        if self.token is None:
            self.load()
            self.token, self.set_cookie = self.layer.signer.token_for(self.cookie_token, self.session, self.verified)
        return self.token

    def masked_token(self) -> str:
        return mask(self.current())

    def set_cookie_header(self) -> str:
        parts = [f"{self.cookie_name}={self.current()}", "Path=/", f"Max-Age={self.layer.max_age}",
                 "SameSite=Lax", "HttpOnly"]
        # __Host- cookies must be Secure with Path=/ and no Domain, or the browser drops them.
        if self.secure or self.cookie_name.startswith(("__Host-", "__Secure-")):
            parts.append("Secure")
        return "; ".join(parts)
