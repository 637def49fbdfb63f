"""The OWASP CRS regression corpus through the whitelist's text policy: detection floors.

The rates below were measured with ``python benchmarks/crs_detection.py`` (see the
whitelist notes); the test keeps them from silently getting worse: detection may not drop
more than 2 points per rule file, false positives may not rise more than 2 points, and
CRS's "no rule may fire" set (rule 999999) must pass.
"""

import importlib.util
import os
import pathlib

import pytest
from webtest import TestApp

from conftest import ROOT, validated
from wsgisec.whitelist import Whitelist

DATA = os.environ.get("WSGISEC_CRS_DATA", "/work/shared/data/crs_regression.jsonl")

pytestmark = pytest.mark.skipif(not pathlib.Path(DATA).exists(),
                                reason=f"the CRS regression corpus is not at {DATA} (set WSGISEC_CRS_DATA)")

# Measured detection on `match` rows (query/form/body/uri), per CRS rule file.
MEASURED_DETECTION = {
    "REQUEST-930-APPLICATION-ATTACK-LFI": 0.471,
    "REQUEST-931-APPLICATION-ATTACK-RFI": 0.25,
    "REQUEST-932-APPLICATION-ATTACK-RCE": 0.435,
    "REQUEST-933-APPLICATION-ATTACK-PHP": 0.516,
    "REQUEST-934-APPLICATION-ATTACK-GENERIC": 0.401,
    "REQUEST-941-APPLICATION-ATTACK-XSS": 0.799,
    "REQUEST-942-APPLICATION-ATTACK-SQLI": 0.612,
    "REQUEST-944-APPLICATION-ATTACK-JAVA": 0.536,
}
MEASURED_TOTAL_DETECTION = 0.520
MEASURED_TOTAL_FALSE_POSITIVES = 0.130  # of `no_match` rows, many of them attacks for another rule


@pytest.fixture(scope="module")
def crs():
    spec = importlib.util.spec_from_file_location("crs_detection", ROOT / "benchmarks" / "crs_detection.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def rows(crs):
    return crs.load(DATA)


@pytest.fixture(scope="module")
def result(crs, rows):
    return crs.evaluate(rows)


@pytest.mark.parametrize("rule_file, floor", [pytest.param(k, v, id=k[8:11]) for k, v in MEASURED_DETECTION.items()])
def test_detection_per_rule_file_does_not_regress(result, rule_file, floor):
    hit, n, _, _ = result["files"][rule_file]
    assert hit / n >= floor - 0.02, f"{rule_file}: {hit}/{n}"


def test_total_detection_and_false_positive_rates(result):
    hit, n, fp, m = result["total"]
    assert hit / n >= MEASURED_TOTAL_DETECTION - 0.02
    assert fp / m <= MEASURED_TOTAL_FALSE_POSITIVES + 0.02


def test_the_no_rule_may_fire_set_passes(result):
    refused, total = result["999999"]
    assert total >= 10
    assert (total - refused) / total >= 0.9


def test_the_layer_agrees_with_the_policy_on_every_query_row(crs, rows):
    """The same verdicts through the middleware (parse_qsl, limits, problem response)."""
    doc = {"openapi": "3.1.0", "paths": {"/t": {"get": {"parameters": [
        {"name": "q", "in": "query", "schema": {"type": "string"}}]}}}}

    def ok(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    app = TestApp(validated(Whitelist(ok, rules=doc, max_string_length=100000)))
    disagree = []
    query_rows = [row for row in rows if row["location"] == "query"]
    for row in query_rows:
        response = app.get("/t", params={"q": row["value"]}, expect_errors=True)
        if (response.status_int == 400) != crs.refused(row):
            disagree.append(row["value"])
    assert len(query_rows) > 1000
    assert not disagree, disagree[:5]
