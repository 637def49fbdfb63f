"""Per-class detection and false-positive rates of the whitelist's text policy on tests/data/.

    python benchmarks/text_policy_corpus.py [--misses] [--json]

Every line of ``tests/data/<class>.txt`` is one value as the application receives it
from a query string or form (URL-decoded once, so ``decoded=True``); ``benign.txt`` is
ordinary text that must pass. Lines starting with ``## `` are comments; ``\\x0d``,
``\\x0a``, ``\\x09`` and ``\\x00`` stand for CR, LF, TAB and NUL (see tests/data/README.md).
Prints a table (per class: values, refused, detection rate, target, and how much ordinary
text that class's rules refuse) and the cost per value; ``--misses``
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
# Which class a refusal's rule belongs to, for the false positives per class.
RULE_CLASS = {
    "sqli": ("SQL ",), "xss": ("HTML or script markup", "event-handler attribute", "script URL", "script code",
                               "session fixation"),
    "cmdi": ("command injection", "Windows command injection"), "ssti": ("template injection", "PHP code", "Java code"),
    "nosql": ("NoSQL",), "ldap": ("LDAP",), "crlf": ("header injection",), "traversal": ("path traversal",),
}
ENCODING = "encoding or control characters"


def rule_class(rule: str) -> str:
    for name, prefixes in RULE_CLASS.items():
        if rule.startswith(prefixes):
            return name
    return ENCODING
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
    """{class: {"label", "n", "refused", "rate", "target", "misses"}} plus "cost_us" (mean µs per value);
    the benign row also has "by_class": how many ordinary values each class's rules refused."""
    result = {}
    every = []
    for name, (label, target) in [*CLASSES.items(), (BENIGN[0], BENIGN[1:])]:
        values = load(name, data)
        violations = [check(value) for value in values]
        verdicts = [violation is not None for violation in violations]
        every += values
        refused = sum(verdicts)
        wrong = [v for v, hit in zip(values, verdicts) if hit == (name == "benign")]
        result[name] = {"label": label, "n": len(values), "refused": refused,
                        "rate": refused / len(values), "target": target, "misses": wrong}
        if name == "benign":
            by_class = {}
            for violation in violations:
                if violation is not None:
                    key = rule_class(violation.rule)
                    by_class[key] = by_class.get(key, 0) + 1
            result[name]["by_class"] = by_class
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
    benign = result["benign"]
    print(f"| {'class':34} | values | refused | detected | target  | ordinary text refused by its rules |",
          file=out)
    print(f"|{'-' * 36}|-------:|--------:|---------:|--------:|-----------------------------------:|", file=out)
    for name, row in result.items():
        if name in ("cost_us", "benign"):
            continue
        mark = "" if meets(name, row) else "  MISSED"
        fp = benign["by_class"].get(name, 0)
        print(f"| {row['label']:34} | {row['n']:6} | {row['refused']:7} | {row['rate']:8.1%} | "
              f">={row['target']:5.0%} | {fp:4} of {benign['n']} ({fp / benign['n']:5.1%}) |{mark}", file=out)
    fp = benign["by_class"].get(ENCODING, 0)
    print(f"| {'(encoding, control characters)':34} |        |         |          |         | "
          f"{fp:4} of {benign['n']} ({fp / benign['n']:5.1%}) |", file=out)
    mark = "" if meets("benign", benign) else "  MISSED"
    print(f"| {'ordinary text, all rules':34} | {benign['n']:6} | {benign['refused']:7} |          | "
          f"<={benign['target']:5.0%} | {benign['refused']:4} of {benign['n']} ({benign['rate']:5.1%}) |{mark}",
          file=out)
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
