"""escaping: the one-pass matcher finds exactly what the value-by-value search found.

The contract (wsgisec/escaping/matching.py): for each candidate, the leftmost
non-overlapping occurrences of its value (repeated ``str.find`` from the previous end)
that start before ``safe``, as ``(start, -length, candidate)`` sorted: at one position the
longest value first, ties (the same value from several candidates) in tuple order. The
reference below is the search the reflection check used before the matcher.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from wsgisec.escaping import matching
from wsgisec.escaping.matching import Matcher
from wsgisec.escaping.reflection import Candidate, Neutraliser, neutralise


def reference(text, candidates, safe):
    spans = []
    for candidate in candidates:
        value = candidate.value
        i = text.find(value)
        while 0 <= i < safe:
            spans.append((i, -len(value), candidate))
            i = text.find(value, i + len(value))
    spans.sort()
    return spans


# A small alphabet makes shared prefixes, values inside values and self-overlaps
# ("aa" in "aaa") common; markup characters keep it close to what is looked for.
ALPHABET = "aab<\"'>"
values = st.text(ALPHABET, min_size=1, max_size=6)
candidate_lists = st.lists(st.builds(Candidate, st.sampled_from(["query", "form", "path"]),
                                     st.sampled_from(["q", "r"]), values), max_size=14)


@pytest.mark.parametrize("few, long", [(0, matching.LONG), (0, 3), (1000, matching.LONG)],
                         ids=["one-regex", "regex-and-long-values-by-value", "value-by-value"])
@hsettings(max_examples=400, deadline=None)
@given(candidates=candidate_lists, data=st.data())
def test_matcher_finds_what_the_value_by_value_search_found(few, long, candidates, data):
    # The text is made of the values themselves and single characters, so occurrences,
    # overlaps and near misses are the rule rather than luck.
    pieces = st.sampled_from([c.value for c in candidates] + list(ALPHABET))
    text = data.draw(st.lists(pieces, max_size=24).map("".join), label="text")
    safe = data.draw(st.integers(0, len(text) + 1), label="safe")
    saved, matching.LONG = matching.LONG, long  # values longer than this bypass the trie
    try:
        matcher = Matcher(candidates, few=few)
    finally:
        matching.LONG = saved
    assert matcher.spans(text, safe) == reference(text, candidates, safe)
    assert matcher.present(text) == any(c.value in text for c in candidates)


def test_self_overlapping_value_is_found_non_overlapping_and_longest_first():
    candidates = [Candidate("query", "q", v) for v in ("<a", "<a<a", "a<", "<b", "<c", "<d")]
    spans = Matcher(candidates, few=0).spans("<a<a<a", 6)
    assert [(start, -negative) for start, negative, _ in spans] == [
        (0, 4), (0, 2), (1, 2), (2, 2), (3, 2), (4, 2)]  # "<a<a" once: the next would overlap it


def test_long_and_deep_values_are_all_found():
    # 256 values, each the previous one's prefix plus a branch; most longer than LONG.
    candidates = [Candidate("query", f"q{n}", "<" * n + "x") for n in range(1, 257)]
    text = "<p>" + "<" * 200 + "x</p>"
    assert Matcher(candidates, few=0).spans(text, len(text)) == reference(text, candidates, len(text))


@hsettings(max_examples=150, deadline=None)
@given(page=st.lists(st.sampled_from(["<p>", "</p>", " ", "a", "<i>x</i>", '"', "<script>", "x"]),
                     max_size=40).map("".join),
       chunk=st.integers(1, 9))
def test_streamed_page_is_neutralised_as_one_document(page, chunk):
    # Many values (the one-regex path), fed in small pieces: same output, same findings.
    candidates = [Candidate("query", f"q{n}", v) for n, v in
                  enumerate(["<i>x</i>", "<i>", "x</i>", "\"x", "<script>", "a<i>", "</p> a"])]
    whole, findings = neutralise(page, candidates)
    streamed = Neutraliser(candidates)
    out = "".join(streamed.feed(page[i:i + chunk]) for i in range(0, len(page), chunk)) + streamed.finish()
    assert out == whole
    assert sorted(streamed.findings) == sorted(findings)
