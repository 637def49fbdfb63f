"""The text policy over the corpora in tests/data/: the detection and false-positive targets.

Issue 11: detection of SQL injection and XSS at least 99 %, of every injection class at
least 95 %, refusal of ordinary text at most 1 %. ``benchmarks/text_policy_corpus.py``
prints the same table (and, with ``--misses``, the values it gets wrong).
"""

import importlib.util

import pytest

from conftest import ROOT


@pytest.fixture(scope="module")
def corpus():
    spec = importlib.util.spec_from_file_location("text_policy_corpus",
                                                  ROOT / "benchmarks" / "text_policy_corpus.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def result(corpus):
    return corpus.evaluate()


@pytest.mark.parametrize("name, floor", [
    pytest.param("sqli", 0.99, id="sqli"), pytest.param("xss", 0.99, id="xss"),
    pytest.param("cmdi", 0.95, id="cmdi"), pytest.param("ssti", 0.95, id="ssti"),
    pytest.param("nosql", 0.95, id="nosql"), pytest.param("ldap", 0.95, id="ldap"),
    pytest.param("crlf", 0.95, id="crlf"), pytest.param("traversal", 0.95, id="traversal"),
])
def test_each_injection_class_is_detected(result, name, floor):
    row = result[name]
    assert row["n"] >= 30, "a class needs enough payloads to mean anything"
    assert row["rate"] >= floor, (row["refused"], row["n"], row["misses"][:10])


def test_ordinary_text_is_let_through(result):
    row = result["benign"]
    assert row["n"] >= 400
    assert row["rate"] <= 0.01, row["misses"]


def test_the_corpus_format(corpus):
    # Comments and escapes: "## " lines are skipped, \x0d\x0a stands for CRLF.
    crlf = corpus.load("crlf")
    assert all("\\x0" not in value for value in crlf)
    assert any("\r\n" in value for value in crlf)
    assert "# Heading" in corpus.load("benign")  # a markdown heading is text, not a comment
