"""sqli: a quote then SQL grammar is refused, whatever keywords it uses; prose with quotes passes.

The classes are those of the outside review (issue 11): blind injection through a
free-text query parameter with comparison operators after the breakout, keywords glued to
quoted identifiers, calls with a blank before "(", SQLite's schema and blob functions.
"""

import time

import pytest
from hypothesis import given, settings, strategies as st
from webtest import TestApp

from conftest import validated
from wsgisec.whitelist import Whitelist
from wsgisec.whitelist.sqli import breakout
from wsgisec.whitelist.text_policy import check

BREAKOUTS = [
    # comparison operators after the quote (SQLite and others)
    "x' IS NOT NULL --", "x' is null or 'a'='a", "x' IS NOT 'y", "x'=='x", "x' == 'x' --", "x' > 'a",
    "x'>'", "x'<'z", "x' >= '0", "x'-'", "x'||'", "x' || 'y", "x'+'", "x'*1--", "x' != 'y",
    "x' <> 'y' --", "x'<=>'x", "x' glob '*", "x' like '%", "x' not like 'q%", "x' between 'a' and 'z",
    "x' regexp '^a", "x' in ('a','b') --",
    # logic after the quote
    "' or 1=1", "' or '1'='1", "1'or'1'='1", "'or''='", "admin' and 1=1 --", "x' and 'a'='a",
    "x' or true--", "x' xor 1 --", "') or ('1'='1", "admin')--", "admin'))--",
    # functions, spaced or not; SQLite schema and blob functions
    "x' and randomblob (1000000000) and '", "x'||randomblob(1e9)||'", "'||(select hex(zeroblob(1e8)))||'",
    "x' and (select count(*) from sqlite_master)>0 and 'a'='a", "x' and sqlite_version() like '3%",
    "1' and substr(sqlite_version(),1,1)='3", "x' and length (hex(randomblob(1e8))) > 0 --",
    "x' and unicode(substr((select name from sqlite_schema),1,1))>64 --", "x' and typeof(1)='integer",
    "x' and load_extension('a') --", "x' union select sql from sqlite_master--",
    "x' and 1=(select 1 from sqlite_temp_master) --",
    # time-based and stacked
    "' or sleep(5)#", "x'-sleep(5)-'", "'+(select*from(select(sleep(20)))a)+'", "'; drop table users--",
    "x' waitfor delay '0:0:5'--", "x' and pg_sleep (5) is null --", "1'; select pg_sleep(5)--",
    # clauses
    "1' order by 3--", "1' group by 1 having 1=1 --", "x' union all select null,null--", "x' limit 1 --",
    # double quotes and backticks
    "\" or \"\"=\"", "x\" or 1=1 --", "x\" is not null --", "x\"=\"x", "x` = 1 or `a` = `a",
    # comments and blanks instead of spaces
    "x'/**/or/**/1=1--", "x'\tor\t1=1--", "x'\nor\n'1'='1", "x'/*!or*/1=1--",
]

BARE = [
    "select\"col\"from\"t\"", "select`col`from`t`", "select*from sqlite_master", "select 1", "select(1)",
    "1 or 1=1", "1) or (1=1", "-1 union select 1,2", "1 and sleep (5)", "1 or randomblob (1e9)",
    "1; drop table users", "0 or 1 --", "(select name from sqlite_master)", "1-sleep(5)",
    "x and 1=(select count(*) from sqlite_master)",
]

PROSE = [
    "O'Brien", "O'Brien's sprocket", "don't stop", "the dogs' and cats' toys", "Tom's and Jerry",
    "It's 9 o'clock -- late", "He said \"hi\" -- then left", "rock 'n' roll", "more 'fun' than ever",
    "select the best option from the list, or drop it", "Select one from the list", "black or white",
    "2+2=4", "x < y and y > z", "sleep well (8h)", "sleep (8h)", "Jane <jane@example.com>",
    "use `--force` to overwrite", "join `#general`", "5' 10\"", "Item #3", "a <= b", "Bob's #1 fan",
    "I said 'or else'", "She answered 'not really'", "the boys' from the club", "O'Reilly - the publisher",
    "run `ls -la` first", "it's 50% off (today only)", "we're open; come by", "'Tis the season",
    "Mike's, John's", "James' is here", "we'd like 2 or 3", "union rep said 'ok'",
]


@pytest.mark.parametrize("value", [pytest.param(v, id=v[:40]) for v in BREAKOUTS])
def test_a_quote_then_sql_grammar_is_refused(value):
    assert breakout(value.lower()) == "SQL string breakout"
    assert check(value) is not None


@pytest.mark.parametrize("value", [pytest.param(v, id=v[:40]) for v in BARE])
def test_a_bare_value_that_reads_as_sql_is_refused(value):
    assert check(value) is not None


@pytest.mark.parametrize("value", [pytest.param(v, id=v[:40]) for v in PROSE])
def test_prose_with_quotes_and_sql_words_passes(value):
    assert breakout(value.lower()) is None
    assert check(value) is None


@pytest.mark.parametrize("value", [
    pytest.param("'" + " or" * 20000, id="many-ors"),
    pytest.param("x'" + "(" * 40000, id="many-parens"),
    pytest.param("x'" + "/*" * 20000, id="unclosed-comments"),
    pytest.param("'" * 40000, id="quotes"),
    pytest.param("x' " + "a." * 20000, id="dotted-names"),
    pytest.param("\"" + "''" * 20000, id="escaped-pairs"),
])
def test_the_cost_stays_linear(value):
    started = time.perf_counter()
    breakout(value)
    # ~1-5 ms measured; a quadratic rule takes seconds on 40 000 characters.
    assert time.perf_counter() - started < 0.5


def test_short_values_cost_microseconds():
    values = ["x' IS NOT NULL --", "O'Brien's sprocket", "select the best option from the list, or drop it"]
    started = time.perf_counter()
    for _ in range(1000):
        for value in values:
            breakout(value)
    per_value = (time.perf_counter() - started) / 3000
    assert per_value < 200e-6, per_value  # ~5-15 µs measured; generous for a loaded, shared CI


def test_blind_injection_through_the_lookup_parameter_gets_a_400_problem():
    """The review's finding: /api/lookup?name= took a blind breakout to the legacy app."""
    reached = []

    def legacy(environ, start_response):
        reached.append(environ.get("QUERY_STRING"))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"0"]

    doc = {"openapi": "3.1.0", "paths": {"/api/lookup": {"get": {"parameters": [
        {"name": "name", "in": "query", "schema": {"type": "string", "maxLength": 80}}]}}}}
    app = TestApp(validated(Whitelist(legacy, rules=doc)))
    for value in ("x' IS NOT NULL --", "x'||randomblob (1000000000)||'", "x'=='x"):
        response = app.get("/api/lookup", params={"name": value}, status=400)
        assert response.headers["Content-Type"] == "application/problem+json"
        assert response.json["detail"].startswith('query parameter "name": SQL ')
        assert value not in response.text
    app.get("/api/lookup", params={"name": "O'Brien"}, status=200)
    assert reached == ["name=O%27Brien"]


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.text(alphabet=st.sampled_from(list("'\"`()-;#/*=<>|&!~+.,@$:_ \t\nab1xselctorunion")), max_size=60))
def test_any_mix_of_sql_punctuation_gets_a_verdict_quickly(text):
    # Never an exception (a 500), always a bounded amount of work.
    started = time.perf_counter()
    assert breakout(text) in (None, "SQL string breakout", "SQL grammar")
    assert check(text) is None or check(text).rule
    assert time.perf_counter() - started < 0.5
