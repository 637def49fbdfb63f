"""Find where the request values occur in a document, all values in one pass.

The reflection check (:mod:`wsgisec.escaping.reflection`) needs, for every candidate
value, its occurrences in the document. Searching value by value costs one pass of the
page per value: 256 values over a 1 MB page were ~0.2 s, and both numbers are chosen by
the caller (issue 13, "cost grows linearly with every input an attacker controls").

:class:`Matcher` compiles the distinct values into one regular expression shaped as a
trie (values sharing a prefix share its branch; a chain without branches is one
literal), so ``re`` reads each position of the document once and follows at most one
branch of the trie from it, instead of trying every value there. A match is the
*longest* value starting at that position (greedy optional suffixes); the shorter values
starting there are exactly its prefixes that are values too, looked up once per distinct
longest match. A plain alternation is not used: ``re`` tries its branches one by one, which
measured slower than the value-by-value search on HTML whose characters start many values.

What is found (the contract :meth:`Matcher.spans` keeps, and tests/escaping property-test
against the value-by-value search): for each candidate, the *leftmost non-overlapping*
occurrences of its value, i.e. what repeated ``str.find(value, previous_end)`` finds,
starting before ``safe``; as ``(start, -length, candidate)`` tuples, sorted, so at one
position the longest value comes first and candidates with the same value are ordered as
tuples. Values of different candidates may overlap; the caller decides which to replace.
Empty values are never looked for (they occur everywhere and mean nothing).

Cost: compiling is linear in the total length of the values (a few ms for 256 values).
The trie scan is linear in the page when prefixes of values do not repeat inside it, and
at worst the page length times the longest prefix followed from one position; values
longer than :data:`LONG` characters are therefore searched one by one (``str.find`` is
linear for any value), which bounds that factor. A caller who sends many long values
pays one page pass per long value, as before the matcher, never more. With at most
:data:`FEW` distinct values the per-value search is cheaper than the compile, so it is
used instead. Every path gives the same result.
"""

from __future__ import annotations

import re

__all__ = ["Matcher", "FEW", "LONG"]

#: Up to this many distinct values, search value by value (cheaper than compiling).
FEW = 4
#: Longer values are searched one by one (``str.find`` is linear in the page for any
#: value); the trie holds the rest, so one position costs at most this many steps.
LONG = 32
#: ``present`` searches value by value while page length x values stays under this
#: (a few hundred µs of str.find at most), and compiles the trie beyond.
PRESENT_BY_FIND = 1 << 20


class Matcher:
    """The occurrences of a fixed set of candidates' values in any text."""

    def __init__(self, candidates, few: int | None = None):
        self.by_value: dict[str, list] = {}
        for candidate in candidates:
            if candidate.value:
                self.by_value.setdefault(candidate.value, []).append(candidate)
        self.lengths = sorted({len(value) for value in self.by_value})
        self.pattern = None
        self.searched = tuple(self.by_value)  # the values looked for one by one
        self._chains: dict[str, list[str]] = {}
        short = [value for value in self.by_value if len(value) <= LONG]
        # Compiled on first need (most responses reflect nothing, and a compile costs
        # more than a few str.find passes over a small page).
        self._short = short if len(self.by_value) > (FEW if few is None else few) and short else None
        self._long = tuple(value for value in self.by_value if len(value) > LONG)

    def _compile(self) -> None:
        short, self._short = self._short, None
        try:
            self.pattern = re.compile(_trie_pattern(short))
            self.searched = self._long
        except (RecursionError, re.error, OverflowError):
            pass  # too deep a trie for sre: the value-by-value search finds the same

    def present(self, text: str) -> bool:
        """Whether any value occurs in ``text``."""
        if self._short is not None:
            if len(text) * len(self.by_value) <= PRESENT_BY_FIND:
                return any(value in text for value in self.by_value)
            self._compile()
        if self.pattern is not None and self.pattern.search(text) is not None:
            return True
        return any(value in text for value in self.searched)

    def spans(self, text: str, safe: int) -> list:
        """``(start, -length, candidate)`` for each occurrence starting before ``safe``."""
        if self._short is not None:
            self._compile()
        spans = self._spans_by_value(text, safe)
        if self.pattern is None:
            spans.sort()
            return spans
        allowed: dict[str, int] = {}  # a value's next occurrence may not start before this
        search = self.pattern.search
        position = 0
        while True:
            match = search(text, position)
            if match is None:
                break
            start = match.start()
            if start >= safe:
                break
            for value in self._chain(match.group()):
                if start >= allowed.get(value, 0):
                    allowed[value] = start + len(value)
                    spans.extend((start, -len(value), candidate) for candidate in self.by_value[value])
            position = start + 1
        spans.sort()
        return spans

    def _spans_by_value(self, text, safe):
        spans = []
        for value in self.searched:
            candidates = self.by_value[value]
            i = text.find(value)
            while 0 <= i < safe:
                spans.extend((i, -len(value), candidate) for candidate in candidates)
                i = text.find(value, i + len(value))
        return spans

    def _chain(self, longest: str) -> list[str]:
        """The values that are prefixes of ``longest`` (itself included)."""
        chain = self._chains.get(longest)
        if chain is None:
            chain = [longest[:n] for n in self.lengths if n <= len(longest) and longest[:n] in self.by_value]
            self._chains[longest] = chain
        return chain


def _trie_pattern(values) -> str:
    """One regex matching the longest of ``values`` at a position (none of them empty)."""
    root: dict = {}
    for value in values:
        node = root
        for char in value:
            node = node.setdefault(char, {})
        node[""] = {}  # the end of a value (a character key is never empty)
    return _node_pattern(root)


def _node_pattern(node: dict) -> str:
    parts = []
    for char, child in node.items():
        if not char:
            continue
        literal = [char]
        while len(child) == 1 and "" not in child:  # a chain without branches: one literal
            (char, child), = child.items()
            literal.append(char)
        parts.append(re.escape("".join(literal)) + _node_pattern(child))
    if not parts:
        return ""
    body = parts[0] if len(parts) == 1 else "(?:" + "|".join(parts) + ")"
    # A value ends here: a longer one is tried first (greedy), this one otherwise.
    return "(?:" + body + ")?" if "" in node else body
