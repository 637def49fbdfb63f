"""Giving the legacy app's HTML forms their CSRF token, without editing the app.

:func:`inject` inserts the hidden field after the opening tag of each ``<form
method="post">`` and the ``<meta>`` tags after ``<head>``; :class:`_Response` holds an
HTML response (:class:`wsgisec.held.HeldResponse`, up to ``csrf_max_rewrite_size``) and
sends it with the token, a fixed ``Content-Length`` and ``Vary: Cookie``.
"""

from __future__ import annotations

import logging
import re

from markupsafe import escape

from ...held import HeldResponse, replaced_headers

__all__ = ["inject"]

_ops_log = logging.getLogger("wsgisec.csrf")

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


_PASS, _BUFFER = "pass", "buffer"
_NO_BODY = ("1", "204", "304")


def _set_cookie_value(value: str):
    """(name, value, deleted) of a Set-Cookie header value."""
    first, _, attributes = value.partition(";")
    name, _, cookie_value = first.partition("=")
    attributes = attributes.lower()
    deleted = (not cookie_value.strip() or "max-age=0" in attributes.replace(" ", "")
               or "1970" in attributes)
    return name.strip(), cookie_value.strip(), deleted


class _Response:
    """start_response and body of one response: pass through, or hold and inject
    (:class:`wsgisec.held.HeldResponse` keeps the PEP 3333 rules)."""

    __slots__ = ("layer", "environ", "held", "state", "head", "mode")

    def __init__(self, layer, environ, start_response, state, head):
        self.layer = layer
        self.environ = environ
        self.held = HeldResponse(start_response)
        self.state = state
        self.head = head
        self.mode = None

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
            self._log_skipped(length)
            return self._forward()
        self.mode = _BUFFER
        return held.write

    def _forward(self):
        self.mode = _PASS
        self.held.drop()
        return self.held.send()

    def _log_skipped(self, size):
        _ops_log.warning("csrf: HTML response of %s bytes for %s is larger than csrf_max_rewrite_size "
                         "(%d); its forms get no token", size, self.environ.get("PATH_INFO", ""),
                         self.layer.max_rewrite_size)

    def body(self, app_iter):
        held = self.held
        for chunk in app_iter:
            if self.mode != _BUFFER:
                yield chunk
                continue
            held.write(chunk)
            if held.size > self.layer.max_rewrite_size:
                # Too large to hold: send what we have untouched and stream the rest.
                self._log_skipped(f"more than {self.layer.max_rewrite_size}")
                data = b"".join(held.take())
                self.mode = _PASS
                held.send()
                yield data
        if self.mode == _BUFFER:
            original = b"".join(held.take())
            data = original
            if b"<" in original:
                data = inject(original, self.state.masked_token(), self.layer.field_name,
                              self.layer.header_name)
            headers = held.headers
            if data is not original:
                headers = replaced_headers(headers, data)
                vary = [value for key, value in headers if key.lower() == "vary"]
                if not any("cookie" in value.lower() or "*" in value for value in vary):
                    headers.append(("Vary", "Cookie"))
            self.mode = _PASS
            held.send(headers)
            yield data
