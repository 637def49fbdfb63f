"""Holding back a response that a layer may rewrite: one mechanism for every layer.

DESIGN.md "shared mechanisms, written once". A layer that may change a response (the
error masker, escaping, the CSRF injector) gives the app :meth:`HeldResponse.hold` as
its ``start_response``, decides from the status and headers, and then either sends the
response on at once (:meth:`~HeldResponse.send`: the app's bytes pass untouched) or
holds the body (bounded, :meth:`~HeldResponse.fill`) and sends a replacement
(:meth:`~HeldResponse.send_body`). The PEP 3333 rules are kept here, once:

* the server's ``start_response`` is called once, with the app's ``exc_info`` passed
  on; a later call *with* ``exc_info`` while nothing was sent replaces the held
  response (and drops any body written for it), and after the headers went out it goes
  to the server, which re-raises (PEP 3333 "Error Handling");
* a second call without ``exc_info`` is a programming error (``AssertionError``, as
  ``wsgiref.validate`` says);
* ``write()`` (the legacy imperative API) is held while the response is, and goes
  straight to the server once it was sent;
* a body is never held beyond the layer's limit: :meth:`fill` stops after the first
  chunk past it and says so, and the layer streams the rest;
* one rule for a replaced body (:func:`replaced_headers`): ``Content-Length`` is set to
  the new length, and headers that describe the old bytes (``ETag``, ``Content-MD5``,
  digests) are dropped; an unchanged body keeps its headers.
"""

from __future__ import annotations

__all__ = ["HeldResponse", "replaced_headers", "DROP_WHEN_CHANGED"]

#: Headers that describe the exact bytes of a body: wrong once it was rewritten.
DROP_WHEN_CHANGED = ("Content-Length", "ETag", "Content-MD5", "Digest", "Content-Digest",
                     "Repr-Digest")


def replaced_headers(headers, body: bytes | None, drop=DROP_WHEN_CHANGED) -> list:
    """A copy of ``headers`` for a rewritten body: ``drop`` removed, and the new
    ``Content-Length`` when the whole ``body`` is known (None: it streams, no length)."""
    lowered = {name.lower() for name in drop} | {"content-length"}
    out = [(name, value) for name, value in headers if name.lower() not in lowered]
    if body is not None:
        out.append(("Content-Length", str(len(body))))
    return out


class HeldResponse:
    """The app's ``start_response`` and body, held back until the layer decides.

    ``status``, ``headers`` (a copy the layer may edit) and ``exc_info`` are what the app
    passed; ``chunks``/``size`` the body held so far; ``sent`` once the server's
    ``start_response`` was called.
    """

    __slots__ = ("server_start_response", "status", "headers", "exc_info", "chunks", "size",
                 "server_write")

    def __init__(self, start_response):
        self.server_start_response = start_response
        self.status = self.headers = self.exc_info = None
        self.chunks: list[bytes] = []
        self.size = 0
        self.server_write = None

    @property
    def started(self) -> bool:
        return self.status is not None

    @property
    def sent(self) -> bool:
        return self.server_write is not None

    def hold(self, status, headers, exc_info=None):
        """The ``start_response`` to give the app (see the module docstring)."""
        if self.server_write is not None:
            if exc_info is None:
                raise AssertionError("start_response called a second time without exc_info")
            # Headers already went out: the server re-raises (PEP 3333).
            return self.server_start_response(status, headers, exc_info)
        if self.status is not None:
            if exc_info is None:
                raise AssertionError("start_response called a second time without exc_info")
            self.drop()  # the error response replaces the one we were holding
        self.status, self.headers, self.exc_info = status, list(headers), exc_info
        return self.write

    __call__ = hold

    def write(self, data: bytes) -> None:
        if self.server_write is not None:
            self.server_write(data)
        elif data:
            self.chunks.append(data)
            self.size += len(data)

    def fill(self, iterator, limit: int) -> bool:
        """Hold chunks from ``iterator`` until it ends (True) or more than ``limit`` bytes
        are held (False: the rest is still in ``iterator``). Exceptions propagate."""
        chunks = self.chunks
        while self.size <= limit:
            for chunk in iterator:
                if chunk:
                    chunks.append(chunk)
                    self.size += len(chunk)
                break
            else:
                return True
        return False

    def take(self) -> list[bytes]:
        """The held chunks, handed over (the holder forgets them)."""
        chunks, self.chunks, self.size = self.chunks, [], 0
        return chunks

    def drop(self) -> None:
        self.chunks, self.size = [], 0

    def send(self, headers=None, status=None):
        """Call the server's ``start_response`` (once), passing ``exc_info`` on."""
        self.server_write = self.server_start_response(
            self.status if status is None else status,
            self.headers if headers is None else headers, self.exc_info)
        return self.server_write

    def send_body(self, original: bytes, body: bytes, headers=None, drop=DROP_WHEN_CHANGED):
        """Send the headers for ``body``, which replaces ``original`` (the same object:
        unchanged, headers kept; else :func:`replaced_headers`)."""
        headers = self.headers if headers is None else headers
        if body is not original:
            headers = replaced_headers(headers, body, drop)
        return self.send(headers)
