"""Giving the legacy app's HTML forms their CSRF token, without editing the app.

:func:`inject` inserts the hidden field after the opening tag of each ``<form
method="post">`` and the ``<meta>`` tags after ``<head>``; :class:`_Response` holds an
HTML response (:class:`wsgisec.held.HeldResponse`, up to ``csrf_max_rewrite_size``) and
sends it with the token, a fixed ``Content-Length`` and ``Vary: Cookie``.
"""

from __future__ import annotations

import re

from markupsafe import escape

from ...held import HeldResponse, replaced_headers

__all__ = ["inject"]

_FORM_OPEN = re.compile(rb"<form(?=[\s/>])", re.IGNORECASE)
_HEAD_OPEN = re.compile(rb"<head(?=[\s/>])", re.IGNORECASE)
# The rest of a start tag, quote-aware; matched with an end bound so a broken page costs
# linear time.
_TAG_REST = re.compile(rb"""(?:[^>"']++|"[^"]*+"|'[^']*+')*+>""")
_MAX_TAG = 4096
_ATTRIBUTE = re.compile(rb"""([^\s"'>/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?""")


def _is_post_form(tag: bytes) -> bool:
    """True if the start tag's first ``method`` attribute says post (HTML: first one wins)."""
    for match in _ATTRIBUTE.finditer(tag, 5, len(tag) - 1):
        if match.group(1).lower() == b"method":
            value = next((g for g in match.group(2, 3, 4) if g is not None), b"")
            return value.strip().lower() == b"post"
    return False


def _start_tags(data: bytes, opener, first_only=False):
    """End offsets of each complete start tag found by ``opener``."""
    pos = 0
    size = len(data)
    while True:
        found = opener.search(data, pos)
        if found is None:
            return
        rest = _TAG_REST.match(data, found.end(), min(size, found.end() + _MAX_TAG))
        if rest is None:
            pos = found.end() + _MAX_TAG  # not a tag we can read; skip past it
            continue
        yield found.start(), rest.end()
        if first_only:
            return
        pos = rest.end()


def _meta(masked: str, header_name: str) -> bytes:
    return (f'<meta name="csrf-token" content="{masked}">'
            f'<meta name="csrf-header" content="{escape(header_name)}">').encode("ascii")


def _hidden(masked: str, field_name: str) -> bytes:
    return f'<input type="hidden" name="{escape(field_name)}" value="{masked}">'.encode("ascii")


_OPENER = re.compile(rb"<(?:form|head)(?=[\s/>])", re.IGNORECASE)


class WindowInjector:
    """:func:`inject` over a page of any size, chunk by chunk, in a bounded window.

    A page larger than ``csrf_max_rewrite_size`` must still get its token, or anyone who
    can grow a page (a few dozen posts) switches the defence off for every user of it.
    Each chunk is sent at once except its tail from an opener that is not complete yet
    (``<fo`` cut by the chunk edge, or a ``<form`` whose ``>`` has not arrived, at most
    :data:`_MAX_TAG` bytes): that tail is carried to the next chunk, so memory stays
    bounded and every byte is scanned a bounded number of times (linear).
    """

    __slots__ = ("meta", "hidden", "head_done", "carry")

    def __init__(self, masked: str, field_name: str, header_name: str):
        self.meta = _meta(masked, header_name)
        self.hidden = _hidden(masked, field_name)
        self.head_done = False
        self.carry = b""

    def feed(self, chunk: bytes, final: bool = False) -> bytes:
        data = self.carry + chunk if self.carry else chunk
        size = len(data)
        cut = size
        if not final:
            # An opener cut by the chunk edge ("<fo", "<head" before its delimiter).
            lt = data.rfind(b"<", max(0, size - 5))
            if lt >= 0:
                tail = data[lt:].lower()
                if b"<form".startswith(tail) or b"<head".startswith(tail):
                    cut = lt
        out = []
        pos = 0
        search = 0
        while True:
            found = _OPENER.search(data, search, cut)
            if found is None:
                break
            rest = _TAG_REST.match(data, found.end(), min(size, found.end() + _MAX_TAG))
            if rest is None:
                if not final and size - found.end() < _MAX_TAG:
                    cut = found.start()  # its ">" may be in the next chunk
                    break
                search = found.end()  # not a tag we can read
                continue
            is_head = data[found.start() + 1:found.start() + 5].lower() == b"head"
            text = None
            if is_head and not self.head_done:
                self.head_done = True
                text = self.meta
            elif not is_head and _is_post_form(data[found.start():rest.end()]):
                text = self.hidden
            if text is not None:
                out.append(data[pos:rest.end()])
                out.append(text)
                pos = rest.end()
            search = rest.end()
        out.append(data[pos:cut])
        self.carry = data[cut:]
        return b"".join(out)

    def finish(self) -> bytes:
        return self.feed(b"", final=True) if self.carry else b""


def inject(data: bytes, masked: str, field_name: str, header_name: str) -> bytes:
    """``data`` with the token after ``<head>`` and in each post form (unchanged if none)."""
    insertions = []
    for start, end in _start_tags(data, _HEAD_OPEN, first_only=True):
        insertions.append((end, (f'<meta name="csrf-token" content="{masked}">'
                                 f'<meta name="csrf-header" content="{escape(header_name)}">').encode("ascii")))
    hidden = None
    for start, end in _start_tags(data, _FORM_OPEN):
        if _is_post_form(data[start:end]):
            if hidden is None:
                hidden = (f'<input type="hidden" name="{escape(field_name)}" '
                          f'value="{masked}">').encode("ascii")
            insertions.append((end, hidden))
    if not insertions:
        return data
    insertions.sort(key=lambda item: item[0])
    out = []
    pos = 0
    for at, text in insertions:
        out.append(data[pos:at])
        out.append(text)
        pos = at
    out.append(data[pos:])
    return b"".join(out)


_PASS, _BUFFER, _STREAM = "pass", "buffer", "stream"
_NO_BODY = ("1", "204", "304")


def _set_cookie_value(value: str):
    """(name, value, deleted) of a Set-Cookie header value."""
    first, _, attributes = value.partition(";")
    name, _, cookie_value = first.partition("=")
    attributes = attributes.lower()
    deleted = (not cookie_value.strip() or "max-age=0" in attributes.replace(" ", "")
               or "1970" in attributes)
    return name.strip(), cookie_value.strip(), deleted


def _varied(headers: list) -> list:
    """The page now depends on the CSRF cookie: ``Vary: Cookie`` (unless already)."""
    vary = [value for key, value in headers if key.lower() == "vary"]
    if not any("cookie" in value.lower() or "*" in value for value in vary):
        headers.append(("Vary", "Cookie"))
    return headers


class _Response:
    """start_response and body of one response: pass through, or hold and inject
    (:class:`wsgisec.held.HeldResponse` keeps the PEP 3333 rules)."""

    __slots__ = ("layer", "environ", "held", "state", "head", "mode", "injector")

    def __init__(self, layer, environ, start_response, state, head):
        self.layer = layer
        self.environ = environ
        self.held = HeldResponse(start_response)
        self.state = state
        self.head = head
        self.mode = None
        self.injector = None

    def start_response(self, status, headers, exc_info=None):
        held = self.held
        if held.sent:  # with exc_info: the server re-raises (PEP 3333)
            return held.hold(status, headers, exc_info)
        held.hold(status, headers, exc_info)  # a call with exc_info replaces a held one
        content_type = ""
        encoded = False
        length = None
        for key, value in headers:
            lowered = key.lower()
            if lowered == "content-type":
                content_type = value.lower()
            elif lowered == "content-encoding":
                encoded = value.strip().lower() not in ("", "identity")
            elif lowered == "content-length":
                length = value
        if content_type.partition(";")[0].strip() != "text/html":
            return self._forward()  # not ours: untouched

        headers = held.headers
        layer = self.layer
        if layer.session_cookie is not None:
            for key, value in headers:
                if key.lower() == "set-cookie":
                    name, cookie_value, deleted = _set_cookie_value(value)
                    if name == layer.session_cookie:
                        self.state.rebind(None if deleted else cookie_value)
        self.state.current()
        if self.state.set_cookie:
            headers.append(("Set-Cookie", self.state.set_cookie_header()))

        charset = content_type.partition("charset=")[2].strip(" \"'")
        too_large = False
        if length is not None:
            try:
                too_large = int(length) > layer.max_rewrite_size
            except ValueError:
                too_large = True
        if (not layer.inject or self.head or encoded or status.startswith(_NO_BODY)
                or charset.startswith(("utf-16", "utf16", "utf-32", "utf32"))):
            return self._forward()
        if too_large:
            return self._stream()
        self.mode = _BUFFER
        return held.write

    def _forward(self):
        self.mode = _PASS
        self.held.drop()
        return self.held.send()

    def _stream(self):
        """A page over csrf_max_rewrite_size: injected in a sliding window, sent at once
        without Content-Length (the length is not known in advance)."""
        self.mode = _STREAM
        self.injector = WindowInjector(self.state.masked_token(), self.layer.field_name,
                                       self.layer.header_name)
        server_write = self.held.send(_varied(replaced_headers(self.held.headers, None)))

        def write(data):  # the legacy write(): through the window too
            out = self.injector.feed(data)
            if out:
                server_write(out)

        return write

    def _window(self, chunks):
        injector = self.injector
        for chunk in chunks:
            out = injector.feed(chunk)
            if out:
                yield out
        tail = injector.finish()
        if tail:
            yield tail

    def body(self, app_iter):
        held = self.held
        chunks = iter(app_iter)
        if self.mode == _STREAM:
            yield from self._window(chunks)
            return
        for chunk in chunks:
            if self.mode != _BUFFER:
                yield chunk
                continue
            held.write(chunk)
            if held.size > self.layer.max_rewrite_size:
                # Too large to hold: what we have and the rest go through the window.
                data = b"".join(held.take())
                self._stream()
                yield self.injector.feed(data)
                yield from self._window(chunks)
                return
        if self.mode == _BUFFER:
            original = b"".join(held.take())
            data = original
            if b"<" in original:
                data = inject(original, self.state.masked_token(), self.layer.field_name,
                              self.layer.header_name)
            headers = held.headers
            if data is not original:
                headers = _varied(replaced_headers(headers, data))
            self.mode = _PASS
            held.send(headers)
            yield data
