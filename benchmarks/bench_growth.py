"""Cost grows linearly with what an attacker controls (python benchmarks/bench_growth.py).

Issue 13 asks for a small table (input size -> µs) per attacker-controlled input, and for
bounded memory on a large download. Measured in one run, one process:

1. **request body size** through the six-layer flagship stack (examples/partner_api.ini,
   SQLite store): a signed JSON POST whose ``name`` grows from 1 KB to 1 MB, with its
   Content-Digest. The allowlist refuses the long names (400, ``maxLength``) after the
   digest was checked, so every byte is read, hashed and parsed once;
2. **request values reflected into a page** (escaping): ``k`` query values with markup,
   each reflected once near the end of a page of ``S`` bytes;
3. **page size** (escaping's sliding window and the CSRF form-token window): a page of
   ``S`` bytes streamed in 64 KB chunks with a form and a reflected value at its end;
4. **memory**: a 100 MB ``application/octet-stream`` download streamed through the flagship
   layers (the legacy app replaced by a generator behind them): RSS growth.

Columns: the best-of-rounds time and ns per input byte (or per byte x value); a linear
cost keeps the per-unit column flat as the input grows. CSV record length is measured by
``bench_csv.py``.
"""

from __future__ import annotations

import io
import logging
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.join(HERE, "..", "examples")
sys.path[:0] = [HERE, EXAMPLES]

from bench_stack import PROXY, flagship, signed_pool  # noqa: E402
from harness import _call, environ_for  # noqa: E402

from wsgisec.escaping import Escaping  # noqa: E402
from wsgisec.signed_requests.csrf import BrowserCSRF  # noqa: E402

KB = 1024
CHUNK = 64 * KB


def best_of(call, rounds: int = 5, number: int = 1) -> float:
    """Seconds per call, the least disturbed of ``rounds``."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(number):
            call()
        best = min(best, (time.perf_counter() - start) / number)
    return best


def body_size(stack, credentials):
    print("## 1. request body size: signed JSON POST through the six-layer flagship stack")
    print(f"{'body':>9} {'status':>7} {'µs/request':>12} {'ns/byte':>9}")
    for size in (1 * KB, 16 * KB, 128 * KB, 1000 * KB):
        body = ('{"name": "' + "w" * (size - 25) + '", "price": 1}').encode()
        rounds = 5
        pool = iter(signed_pool(credentials, "POST", "/api/items", body, size=rounds + 1))
        template = environ_for("/api/items", method="POST", body=body, https=False,
                               headers={"Content-Type": "application/json"},
                               HTTP_X_FORWARDED_PROTO="https", **PROXY)

        def call():
            environ = dict(template, **next(pool))
            return _call(stack, environ)

        status = call()
        seconds = best_of(call, rounds=rounds)
        print(f"{len(body) // KB:>6} KB {status[:3]:>7} {seconds * 1e6:12.0f} {seconds * 1e9 / len(body):9.1f}")


def serving(chunks, content_type="text/html; charset=utf-8"):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", content_type)])
        return iter(chunks)
    return app


def page(size, tail):
    """``size`` bytes of ordinary markup, then ``tail``, in 64 KB chunks."""
    row = b'<tr><td><a href="/items/1">Item number 1</a></td><td class="price">1.50</td></tr>\n'
    body = row * ((size - len(tail)) // len(row)) + tail
    return [body[i:i + CHUNK] for i in range(0, len(body), CHUNK)]


def reflected_values():
    print("\n## 2. request values reflected into a page (escaping, rewritten)")
    print(f"{'values':>7} {'page':>8} {'ms/request':>11} {'ns/(byte x value)':>18} {'ns/byte':>8}")
    for size in (64 * KB, 1000 * KB):
        for count in (1, 16, 64, 256):
            values = [f"<i>v{n:04d}</i>" for n in range(count)]
            query = "&".join(f"q{n}={value.replace('<', '%3C').replace('>', '%3E')}"
                             for n, value in enumerate(values))
            tail = ("<p>" + " ".join(values) + "</p></body></html>").encode()
            layer = Escaping(serving(page(size, tail)), store=None)
            environ = environ_for("/search?" + query)
            status = _call(layer, environ)
            seconds = best_of(lambda: _call(layer, environ), rounds=3)
            print(f"{count:>7} {size // KB:>5} KB {seconds * 1e3:11.2f} "
                  f"{seconds * 1e9 / (size * count):18.3f} {seconds * 1e9 / size:8.1f}  {status[:3]}")


def page_size():
    print("\n## 3. page size: streamed in 64 KB chunks, form and reflected value at the end")
    print(f"{'page':>9} {'escaping ms':>12} {'ns/byte':>8} {'csrf ms':>8} {'ns/byte':>8}")
    tail = (b'<form method="post" action="/notes"><input name="text"></form>'
            b"<p><i>needle</i></p></body></html>")
    for size in (64 * KB, 1000 * KB, 4000 * KB, 16000 * KB):
        chunks = page(size, tail)
        escaping = Escaping(serving(chunks), store=None)
        csrf = BrowserCSRF(serving(chunks), secret_keys=["bench-key-" + "x" * 32], store=None)
        environ = environ_for("/search?q=%3Ci%3Eneedle%3C/i%3E", HTTP_SEC_FETCH_SITE="same-origin")
        rounds = 3 if size < 4000 * KB else 1
        escaping_seconds = best_of(lambda: _call(escaping, environ), rounds=rounds)
        csrf_seconds = best_of(lambda: _call(csrf, environ), rounds=rounds)
        print(f"{size // KB:>6} KB {escaping_seconds * 1e3:12.2f} {escaping_seconds * 1e9 / size:8.1f} "
              f"{csrf_seconds * 1e3:8.2f} {csrf_seconds * 1e9 / size:8.1f}")


def rss_kb():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // KB


def download_memory(stack, credentials):
    print("\n## 4. memory: a 100 MB download streamed through the flagship stack")
    innermost = stack
    while hasattr(getattr(innermost, "app", None), "__call__") and not hasattr(innermost, "url_map"):
        parent, innermost = innermost, innermost.app
    chunk = b"\0" * CHUNK

    def download(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(1600 * CHUNK))])
        return (chunk for _ in range(1600))

    parent.app = download  # the legacy app's place, behind every layer
    environ = dict(environ_for("/api/items", https=False, HTTP_X_FORWARDED_PROTO="https", **PROXY),
                   **signed_pool(credentials, "GET", "/api/items", b"", size=1)[0])
    environ["wsgi.input"] = io.BytesIO(b"")
    before, peak, received = rss_kb(), 0, 0
    statuses = []
    body = stack(environ, lambda status, headers, exc_info=None: statuses.append(status))
    try:
        for block in body:
            received += len(block)
            peak = max(peak, rss_kb())
    finally:
        getattr(body, "close", lambda: None)()
    print(f"status {statuses[0]}, {received / KB / KB:.0f} MB received, RSS {before / KB:.1f} MB before, "
          f"peak {peak / KB:.1f} MB: grew {(peak - before) / KB:.1f} MB (target < 20 MB)")


def main():
    logging.disable(logging.CRITICAL)  # refusals and rewrites log events; not what is measured
    stack, credentials = flagship(tempfile.mkdtemp(prefix="wsgisec-bench-"))
    body_size(stack, credentials)
    reflected_values()
    page_size()
    download_memory(stack, credentials)


if __name__ == "__main__":
    main()
