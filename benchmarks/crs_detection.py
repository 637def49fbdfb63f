"""How much of the OWASP CRS regression corpus the whitelist's text policy refuses.

    python benchmarks/crs_detection.py [path/to/crs_regression.jsonl]

Reads ``crs_regression.jsonl`` (see ``/work/shared/data/README.md``: request values from
the Core Rule Set's regression tests) and runs every value through the text policy the
way the whitelist layer would see it:

* ``query``/``form``/``uri`` values were URL-decoded once already (``decoded=True``);
* ``body`` values are raw: JSON is parsed and every string (keys too) checked, XML is
  parsed with defusedxml (a DTD or entity is refused outright, as the layer does) and its
  text and attribute values checked, a multipart body is split into its parts (each
  value and filename checked), anything else is checked as one raw string
  (``decoded=False``);
* ``header`` rows are reported apart: the whitelist only checks headers the OpenAPI
  document declares, so most of them (User-Agent, Referer, cookies) never meet the policy.

Prints, per CRS rule file, the detection rate on ``match`` rows and the false-positive
rate on ``no_match`` rows, then the totals and the benign-only rule 999999 (in this
corpus all ten 999999 rows are real-world ``Cookie`` headers, checked like a header). Detection
here is of the *free-text policy alone*: in a real deployment most of these values would
also meet a declared type, pattern or enum, or be an undeclared parameter (400) first.
"""

from __future__ import annotations

import collections
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from wsgisec.whitelist.text_policy import check  # noqa: E402

DEFAULT_PATH = "/work/shared/data/crs_regression.jsonl"
LOCATIONS = ("query", "form", "body", "uri")


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def refused(row) -> bool:
    """Would the whitelist refuse this value as free text?"""
    value = row["value"]
    location = row["location"]
    if location in ("query", "form", "uri"):
        return check(value, decoded=True) is not None
    if location == "body":
        text = value.strip()
        if text[:1] in "{[":
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = None
            if parsed is not None:
                return any(check(s, decoded=False) is not None for s in _strings(parsed))
        if text.startswith("<"):
            import defusedxml
            from defusedxml import ElementTree
            from xml.etree.ElementTree import ParseError

            try:
                root = ElementTree.fromstring(text.encode("utf-8"), forbid_dtd=True)
            except defusedxml.DefusedXmlException:
                return True  # the layer refuses DTDs and entities before any schema
            except ParseError:
                root = None
            if root is not None:
                values = [t for el in root.iter() for t in [el.text or "", el.tail or "", *el.attrib.values()]]
                return any(check(s, decoded=False) is not None for s in values if s)
        if text.startswith("--") and "\n" in text:
            return any(check(part, decoded=False) is not None for part in _multipart_values(text))
        return check(value, decoded=False) is not None
    return check(value, decoded=False) is not None  # header


def _multipart_values(text):
    """Field values and filenames of a raw multipart body, as the layer checks them."""
    import re

    lines = text.replace("\r\n", "\n")
    boundary = lines.split("\n", 1)[0]
    for part in lines.split(boundary)[1:]:
        head, _, content = part.strip("\n").partition("\n\n")
        yield from re.findall(r'filename="([^"]*)"', head)
        if content and not content.startswith("--"):
            yield content.rstrip("\n")


def load(path=DEFAULT_PATH):
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def evaluate(rows):
    """{"files": {rule_file: [match_hit, match_n, fp, no_match_n]}, "total": ..., "999999": ..., "header": ...}"""
    files = collections.defaultdict(lambda: [0, 0, 0, 0])
    headers = [0, 0, 0, 0]
    benign = [0, 0]
    for row in rows:
        hit = refused(row)
        target = headers if row["location"] == "header" else files[row["rule_file"]]
        if row["expect"] == "match":
            target[0] += hit
            target[1] += 1
        else:
            target[2] += hit
            target[3] += 1
        if row["rule_id"] == 999999:  # all of them are Cookie headers in this corpus
            benign[0] += hit
            benign[1] += 1
    total = [sum(counts[i] for counts in files.values()) for i in range(4)]
    return {"files": dict(files), "total": total, "999999": benign, "header": headers}


def _rate(hit, n):
    return hit / n if n else float("nan")


def report(result, out=sys.stdout):
    print(f"{'rule file (query/form/body/uri rows)':48} {'detected':>14} {'false pos.':>14}", file=out)
    for name, (hit, n, fp, m) in sorted(result["files"].items()):
        print(f"{name:48} {hit:5}/{n:<5}{_rate(hit, n):6.1%}  {fp:4}/{m:<4}{_rate(fp, m):6.1%}", file=out)
    hit, n, fp, m = result["total"]
    print(f"{'TOTAL':48} {hit:5}/{n:<5}{_rate(hit, n):6.1%}  {fp:4}/{m:<4}{_rate(fp, m):6.1%}", file=out)
    fp, m = result["999999"]
    print(f"{'rule 999999 (no rule may fire; cookies): refused':48} {fp:>5}/{m:<5}{_rate(fp, m):6.1%}", file=out)
    hit, n, fp, m = result["header"]
    print(f"{'headers (informational, only declared ones)':48} {hit:5}/{n:<5}{_rate(hit, n):6.1%}  "
          f"{fp:4}/{m:<4}{_rate(fp, m):6.1%}", file=out)


if __name__ == "__main__":
    report(evaluate(load(sys.argv[1] if len(sys.argv) > 1 else DEFAULT_PATH)))
