"""Per-class detection and false-positive rates of the whitelist's text policy on tests/data/.

    python benchmarks/text_policy_corpus.py [--misses] [--json]

Every line of ``tests/data/<class>.txt`` is one value as the application receives it
from a query string or form (URL-decoded once, so ``decoded=True``); ``benign.txt`` is
ordinary text that must pass. Lines starting with ``## `` are comments; ``\\x0d``,
``\\x0a``, ``\\x09`` and ``\\x00`` stand for CR, LF, TAB and NUL (see tests/data/README.md).
Prints a table (class, values, refused, rate, target) and the cost per value; ``--misses``
lists the values the policy got wrong, ``--json`` prints the result as JSON.
"""

from __future__ import annotations

import json
import os
import sys
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

from wsgisec.whitelist.text_policy import check  # noqa: E402

DATA = os.path.join(ROOT, "tests", "data")
# class file -> (label, target detection rate); benign is a ceiling on refusals.
CLASSES = {
    "sqli": ("SQL injection", 0.99),
    "xss": ("XSS", 0.99),
    "cmdi": ("command injection", 0.95),
    "ssti": ("template injection (SSTI)", 0.95),
    "nosql": ("NoSQL injection", 0.95),
    "ldap": ("LDAP injection", 0.95),
    "crlf": ("header / CRLF injection", 0.95),
    "traversal": ("path traversal / file inclusion", 0.95),
}
BENIGN = ("benign", "ordinary text (refused)", 0.01)
_ESCAPES = {"\\x0d": "\r", "\\x0a": "\n", "\\x09": "\t", "\\x00": "\x00"}


def load(name: str, data: str = DATA) -> list[str]:
    """The values of tests/data/<name>.txt."""
    values = []
    with open(os.path.join(data, name + ".txt"), encoding="utf-8") as handle:
        for line in handle:
            line = line.rstrip("\n")
            if not line or line.startswith("## "):
                continue
            for escape, char in _ESCAPES.items():
                line = line.replace(escape, char)
            values.append(line)
    return values


def evaluate(data: str = DATA) -> dict:
    """{class: {"label", "n", "refused", "rate", "target", "misses"}} plus "cost_us" (mean µs per value)."""
    result = {}
    every = []
    for name, (label, target) in [*CLASSES.items(), (BENIGN[0], BENIGN[1:])]:
        values = load(name, data)
        verdicts = [check(value) is not None for value in values]
        every += values
        refused = sum(verdicts)
        wrong = [v for v, hit in zip(values, verdicts) if hit == (name == "benign")]
        result[name] = {"label": label, "n": len(values), "refused": refused,
                        "rate": refused / len(values), "target": target, "misses": wrong}
    result["cost_us"] = _cost(every)
    return result


def _cost(values, rounds=5) -> float:
    """Mean µs per value, best of ``rounds`` passes (the machine is shared: take the quietest)."""
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for value in values:
            check(value)
        best = min(best, time.perf_counter() - started)
    return best / len(values) * 1e6


def meets(name: str, row: dict) -> bool:
    return row["rate"] <= row["target"] if name == "benign" else row["rate"] >= row["target"]


def report(result, out=sys.stdout, misses=False) -> None:
    print(f"| {'class':34} | values | refused | rate    | target  |", file=out)
    print(f"|{'-' * 36}|-------:|--------:|--------:|--------:|", file=out)
    for name, row in result.items():
        if name == "cost_us":
            continue
        sign = "<=" if name == "benign" else ">="
        mark = "" if meets(name, row) else "  MISSED"
        print(f"| {row['label']:34} | {row['n']:6} | {row['refused']:7} | {row['rate']:7.1%} | "
              f"{sign}{row['target']:5.0%} |{mark}", file=out)
    print(f"\nmean cost per value (all {sum(r['n'] for r in result.values() if isinstance(r, dict))} values): "
          f"{result['cost_us']:.1f} µs", file=out)
    if misses:
        for name, row in result.items():
            if name != "cost_us" and row["misses"]:
                print(f"\n{name}: " + ("refused" if name == "benign" else "passed"), file=out)
                for value in row["misses"]:
                    print("   ", repr(value), file=out)


if __name__ == "__main__":
    outcome = evaluate()
    if "--json" in sys.argv:
        print(json.dumps({k: ({**v, "misses": len(v["misses"])} if isinstance(v, dict) else v)
                          for k, v in outcome.items()}, indent=2))
    else:
        report(outcome, misses="--misses" in sys.argv)
