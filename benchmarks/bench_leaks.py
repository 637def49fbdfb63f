"""What error_masker's leak scan costs per body (python benchmarks/bench_leaks.py).

Issue 13: ``find_leak`` cost ~330 µs on a 50 KB HTML page. Bodies: the 50 KB HTML page
of ``bench_escaping.py`` (ordinary markup with ``&quot;`` and the word "error"), a
2 KB JSON list, a 50 KB page that leaks a traceback at its end, and a 1 MB page.
Prints the median µs per call over several rounds.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import timeit

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)

from wsgisec.errors import find_leak  # noqa: E402

try:  # the W3 page of issue 13 (bench_escaping.py), when run from the repository
    from bench_escaping import html_page  # noqa: E402
    W3 = html_page().encode() if isinstance(html_page(), str) else html_page()
except ImportError:  # pragma: no cover
    W3 = None

ROWS = "".join(f'<tr><td><a href="/items/{i}" title="Item &quot;{i}&quot;">Item number {i}</a></td>'
               f'<td class="price">{i * 1.5:.2f}</td><td>In stock (no errors)</td></tr>\n' for i in range(420))
PAGE = ("<!DOCTYPE html><html><head><title>Items</title></head><body><h1>Items</h1><table>" + ROWS
        + "</table><p>Debug: off. Error reports go to the team.</p></body></html>").encode()
JSON = json.dumps([{"id": i, "name": f"Widget {i}", "price": 9.5 + i} for i in range(45)]).encode()
LEAK = PAGE + b'<pre>Traceback (most recent call last):\n  File "/srv/app.py", line 3, in <module></pre>'
BIG = PAGE * 20

CASES = [("W3 50 KB page (bench_escaping)", W3)] if W3 else []
CASES += [("50 KB HTML page with &quot; and 'error'", PAGE), ("2 KB JSON, no leak", JSON),
         ("50 KB HTML page, traceback at the end", LEAK), ("1 MB HTML page, no leak", BIG)]


def main():
    print(f"{'body':<40} {'bytes':>8} {'µs':>9}  leak")
    results = []
    for name, body in CASES:
        number = 20 if len(body) > 100_000 else 200
        runs = timeit.repeat(lambda: find_leak(body), number=number, repeat=7)
        micro = statistics.median(runs) / number * 1e6
        results.append({"body": name, "bytes": len(body), "us": round(micro, 1), "leak": find_leak(body)})
        print(f"{name:<40} {len(body):>8} {micro:>9.1f}  {find_leak(body)}")
    if "--json" in sys.argv:
        print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
