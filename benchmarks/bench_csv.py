"""CSV formula neutralisation grows linearly with the record (python benchmarks/bench_csv.py).

Issue 13 asks that cost grow linearly with every input an attacker controls; the old
neutraliser re-scanned its carried record on every chunk (quadratic in the record
length). This prints, for one single record (no line break at all) of growing size, fed
in 64 KB chunks as a server would send it, and for the same size as a whole body:

* ``bare``: ordinary cells (words and numbers), nothing to change;
* ``formulas``: every cell a formula (``=1+1``), each neutralised;
* ``quoted``: quoted cells with doubled quotes, commas and line breaks inside, and a
  stray ``"`` in unquoted cells.

Columns: total ms and ns per byte; a linear cost keeps ns/byte flat as the size grows.
"""

from __future__ import annotations

import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

from wsgisec.escaping.csv_formulas import CSVNeutralizer  # noqa: E402

CHUNK = 64 * 1024
SIZES = (64 * 1024, 256 * 1024, 1024 * 1024, 4 * 1024 * 1024)
CELLS = {
    "bare": b"widget,42,-5,plain text,",
    "formulas": b"=1+1,@SUM(A1),",
    "quoted": b'"say ""hi"", =x","a\r\nb",5" screen,',
}


def record(kind: str, size: int) -> bytes:
    cell = CELLS[kind]
    return (cell * (size // len(cell) + 1))[:size]


def best(fn, rounds=3) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def streamed(neutralizer, data):
    stream = neutralizer.stream()
    for i in range(0, len(data), CHUNK):
        stream.feed(data[i:i + CHUNK])
    stream.finish()


def main():
    neutralizer = CSVNeutralizer("=+-@\t\r")
    results = []
    print(f"{'cells':<9} {'size':>6} {'streamed ms':>12} {'ns/byte':>8} {'whole ms':>9} {'ns/byte':>8}")
    for kind in CELLS:
        for size in SIZES:
            data = record(kind, size)
            s = best(lambda: streamed(neutralizer, data))
            w = best(lambda: neutralizer(data))
            results.append({"cells": kind, "bytes": size, "streamed_s": s, "whole_s": w})
            print(f"{kind:<9} {size // 1024:>5}K {s * 1e3:>12.1f} {s / size * 1e9:>8.1f} "
                  f"{w * 1e3:>9.1f} {w / size * 1e9:>8.1f}")
    if "--json" in sys.argv:
        print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
