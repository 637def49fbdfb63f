"""Small pieces of the WSGI contract (PEP 3333) that every layer needs to get right.

* :class:`ClosingIterator` wraps an app's iterable so that ``close()`` always reaches the
  inner one (even when the client disconnects mid-body) and then runs our own cleanup.
* :func:`close_iterable` closes an iterable we consumed ourselves.
* :func:`has_body` is the one rule for "does this request carry a body" (RFC 9112 §6.3).
* :func:`read_body` reads ``wsgi.input`` once per request with a hard limit and puts the
  bytes back, so the app still sees a readable ``wsgi.input`` and a correct
  ``CONTENT_LENGTH``; every later layer gets the same bytes from the environ, not a copy.
* :func:`header` / :func:`set_header` / :func:`remove_headers` edit a copy of a
  response header list case-insensitively.
* :func:`keep_on_every_response` / :func:`safe_headers`: headers a layer promises on every
  response of this request (HSTS from ``https``), so a layer outside it that builds its own
  response (the masked 500 of ``error_masker``) still sends them.
"""

from __future__ import annotations

import io
from typing import Callable, Iterable

__all__ = ["ClosingIterator", "close_iterable", "has_body", "has_content", "read_body", "BodyTooLarge",
           "replace_body", "keep_on_every_response", "safe_headers", "header", "set_header", "remove_headers", "is_secure"]


class ClosingIterator:
    """Iterate over ``iterable`` (or ``chunks``, a transformed view of it) and close it.

    ``close()`` closes the app's iterable in a ``try`` and then runs each callback in the
    ``finally``, so our cleanup happens even if the app's ``close()`` raises.
    """

    __slots__ = ("_inner", "_chunks", "_callbacks")

    def __init__(self, iterable: Iterable[bytes], *callbacks: Callable[[], None],
                 chunks: Iterable[bytes] | None = None):
        self._inner = iterable
        self._chunks = iter(chunks if chunks is not None else iterable)
        self._callbacks = callbacks

    def __iter__(self):
        return self

    def __next__(self) -> bytes:
        return next(self._chunks)

    def close(self) -> None:
        try:
            close_iterable(self._inner)
        finally:
            for callback in self._callbacks:
                callback()


def close_iterable(iterable) -> None:
    close = getattr(iterable, "close", None)
    if close is not None:
        close()


class BodyTooLarge(Exception):
    """The request body is longer than the limit (answer 413)."""


#: environ key of the cached body: ``(bytes, the BytesIO we put back as wsgi.input)``.
BODY_CACHE = "wsgisec.body"


def content_length(environ: dict) -> int | None:
    """The request's ``Content-Length``, or ``None`` when it has none.

    RFC 9110 §8.6: ``1*DIGIT``. Anything else (a sign, a space or ``_`` inside, a
    non-ASCII digit, all of which ``int()`` would take) raises ``ValueError``: a length
    two parsers could read differently is refused, never guessed.
    """
    text = (environ.get("CONTENT_LENGTH") or "").strip()
    if not text:
        return None
    if not (text.isascii() and text.isdigit()):
        raise ValueError("invalid Content-Length")
    return int(text)


def has_body(environ: dict) -> bool:
    """Whether the request may carry a body (RFC 9112 §6.3), without reading it.

    A ``Content-Length`` above zero, chunked transfer coding, or a server that promises a
    terminated ``wsgi.input`` (``wsgi.input_terminated``) all mean there may be one. A
    malformed length counts as a body, so the layer that reads it answers 400 instead of
    skipping its checks. waitress sets ``wsgi.input_terminated`` on every request, a GET
    too, so "may" is the most the headers can say: :func:`has_content` reads to be sure.
    """
    length = (environ.get("CONTENT_LENGTH") or "").strip()
    if length:
        return length != "0"
    return (environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked"
            or bool(environ.get("wsgi.input_terminated")))


def has_content(environ: dict, limit: int) -> bool:
    """Whether the request has at least one byte of body; reads it (bounded, cached) only
    when nothing but ``wsgi.input_terminated`` says there may be one.

    Raises :class:`BodyTooLarge` past ``limit`` and ``ValueError`` for a bad length, like
    :func:`read_body`.
    """
    if not has_body(environ):
        return False
    if (environ.get("CONTENT_LENGTH") or "").strip() or environ.get("HTTP_TRANSFER_ENCODING"):
        return True
    return bool(read_body(environ, limit))


def read_body(environ: dict, limit: int) -> bytes:
    """Read the request body, refusing more than ``limit`` bytes, and make it re-readable.

    Decides from ``Content-Length`` first, then enforces the limit while reading (a
    chunked body has no length). Afterwards ``environ["wsgi.input"]`` is a fresh
    ``BytesIO`` over the same bytes and ``CONTENT_LENGTH`` is right.

    The bytes are cached in the environ: a later layer (or the same one) gets them back
    without reading or copying again, as long as nobody replaced ``wsgi.input`` since. A
    layer that rewrites the body calls :func:`replace_body`, which updates the cache.
    """
    cached = environ.get(BODY_CACHE)
    if cached is not None and cached[1] is environ.get("wsgi.input"):
        body = cached[0]
        if len(body) > limit:
            raise BodyTooLarge(len(body))
        cached[1].seek(0)
        return body
    length = content_length(environ)
    stream = environ["wsgi.input"]
    if length is not None:
        if length > limit:
            raise BodyTooLarge(length)
        body = stream.read(length) if length else b""
    elif has_body(environ):
        body = stream.read(limit + 1)
        if len(body) > limit:
            raise BodyTooLarge(len(body))
    else:
        body = b""  # no length and not chunked: there is no body (RFC 9112 §6.3)
    return replace_body(environ, body)


def replace_body(environ: dict, body: bytes) -> bytes:
    """Make ``body`` the request body that the app and every later layer read."""
    stream = io.BytesIO(body)
    environ["wsgi.input"] = stream
    environ["CONTENT_LENGTH"] = str(len(body))
    environ[BODY_CACHE] = (body, stream)
    return body


def header(headers, name: str, default=None):
    """The first value of header ``name`` (case-insensitive) in a WSGI header list."""
    lowered = name.lower()
    for key, value in headers:
        if key.lower() == lowered:
            return value
    return default


def set_header(headers: list, name: str, value: str) -> list:
    """Replace every ``name`` header with one ``name: value``; returns the same list."""
    lowered = name.lower()
    headers[:] = [(key, val) for key, val in headers if key.lower() != lowered]
    headers.append((name, value))
    return headers


def remove_headers(headers: list, names) -> list:
    lowered = {name.lower() for name in names}
    headers[:] = [(key, val) for key, val in headers if key.lower() not in lowered]
    return headers


#: environ key: the ``(name, value)`` headers promised on every response of the request.
SAFE_HEADERS = "wsgisec.safe_headers"


def keep_on_every_response(environ: dict, name: str, value: str) -> None:
    """Promise header ``name: value`` on every response to this request, ours included."""
    kept = environ.setdefault(SAFE_HEADERS, [])
    if not any(key.lower() == name.lower() for key, _ in kept):
        kept.append((name, value))


def safe_headers(environ: dict) -> list[tuple[str, str]]:
    """The headers promised by :func:`keep_on_every_response` (empty if none)."""
    return list(environ.get(SAFE_HEADERS, ()))


def is_secure(environ: dict) -> bool:
    """True if the request arrived over TLS (as far as the https layer has decided)."""
    return environ.get("wsgi.url_scheme") == "https"
