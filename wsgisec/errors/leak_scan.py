"""error_masker's leak scan: does a text body hold a traceback, a debug page or an SQL error?

:func:`find_leak` names the kind of leak (``"sqlite-error"``) or returns None; the
``error_masker`` layer (:mod:`wsgisec.errors`, practice 6, OWASP "Improper Error
Handling") masks a leaking response. :data:`_LEAK_PATTERNS` is the definition of a leak;
everything else here is how to look for it in one cheap pass.

Why not one alternation of the patterns: Python's regex engine tries every branch at
every position, and even an alternation of literals costs ~2 ns a byte, because the engine
checks each byte against the set of first bytes in a loop that does not use ``memchr``
(measured: 100 µs on a 50 KB page for a pattern that never matches). A pattern with a
*single* literal first byte is scanned ~8x faster (issue 13).

So each signature (one alternative of :data:`_LEAK_PATTERNS`) has an *anchor*: a literal
that every match of it contains, starting with a byte from :data:`_LEADS` (capitals, a few
rare lowercase letters and punctuation; not ``m`` or ``b``, which ordinary pages are full
of; ``q`` is one, though every ``&quot;`` holds it: a hit that is no anchor costs a few
branch tests in C, nothing in Python). The body is translated once (``bytes.translate``, C speed) so that every
lead byte becomes NUL (and a real NUL something else); the anchors, translated the same
way, then all start with NUL and form one trie-shaped pattern with that single literal
first byte. A hit is confirmed by the signatures of every anchor that translates to it,
searched in a window around it (every signature is bounded, so the window holds any
match). An anchor without a rare byte to start from (``no such table``) gets a pass of its
own. Cost: linear in the body whatever it holds; two C-speed passes plus one per such
anchor; hits cost a bounded window each.
"""

from __future__ import annotations

import re

__all__ = ["find_leak"]

# The definition: each branch names the kind of leak. Bounded repetitions only, so a
# hostile body cannot make a scan slow.
_LEAK_PATTERNS = {
    # Also inside a JSON string (escaped quotes) or re-quoted with ' by a legacy app.
    "python-traceback": rb"Traceback \(most recent call last\)"
                        rb"|File \\?[\"'][^\"'\n]{1,300}\\?[\"'], line \d{1,7}, in ",
    "werkzeug-debugger": rb"Werkzeug Debugger|The debugger caught an exception in your WSGI application|\?__debugger__=",
    "django-debug": rb"You(?:'|&#x27;|&#39;)re seeing this error because you have <code>DEBUG = True</code>"
                    rb"|<th>Exception Value:</th>",
    "pyramid-debug": rb"pyramid_debugtoolbar|Pyramid Debug Toolbar",
    "bottle-debug": rb"<h2>Traceback:</h2>",
    "sqlite-error": rb"sqlite3\.(?:Operational|Integrity|Programming|Database)Error"
                    rb'|near "[^"\n]{0,100}": syntax error|no such (?:table|column): |unrecognized token: "',
    "postgresql-error": rb"psycopg2?\.(?:errors|extensions)\.\w{1,60}|psycopg2?\.\w{0,40}Error|syntax error at or near \"|PG::\w{0,60}Error"
                        rb"|unterminated quoted string at or near|relation \"[^\"\n]{1,100}\" does not exist",
    "mysql-error": rb"You have an error in your SQL syntax|MySQLdb\._exceptions|pymysql\.err\."
                   rb"|Warning: mysql_|SQLSTATE\[[0-9A-Z]{5}\]|MariaDB server version for the right syntax",
    "oracle-error": rb"ORA-\d{5}:|cx_Oracle\.|quoted string not properly terminated",
    "mssql-error": rb"Unclosed quotation mark after the character string|Microsoft OLE DB Provider for SQL Server"
                   rb"|System\.Data\.SqlClient\.SqlException",
    "sqlalchemy-error": rb"sqlalchemy\.exc\.\w{1,60}",
    "java-trace": rb"\tat (?:java|javax|org\.springframework|org\.apache)\.[\w.$]{1,200}\(|Exception in thread \"",
    "php-error": rb"<b>(?:Fatal error|Parse error|Warning)</b>: .{0,300}? on line <b>\d+</b>",
    "server-path": rb"/(?:site|dist)-packages/|/usr/(?:local/)?lib/python3",
}

#: The bytes an anchor may start with: rare in ordinary HTML, JSON and prose.
_LEADS = b"TFWDEPSMOU?_\t-xzqy"

_SIGNATURES = (
    # (kind, its pattern (one alternative of _LEAK_PATTERNS[kind]), its anchors)
    ("python-traceback", rb"Traceback \(most recent call last\)", (b"Traceback",)),
    ("python-traceback", rb"File \\?[\"'][^\"'\n]{1,300}\\?[\"'], line \d{1,7}, in ", (b"File ",)),
    ("werkzeug-debugger", rb"Werkzeug Debugger", (b"Werkzeug Debugger",)),
    ("werkzeug-debugger", rb"The debugger caught an exception in your WSGI application", (b"The debugger caught",)),
    ("werkzeug-debugger", rb"\?__debugger__=", (b"?__debugger__=",)),
    ("django-debug", rb"You(?:'|&#x27;|&#39;)re seeing this error because you have <code>DEBUG = True</code>",
     (b"DEBUG = True",)),
    ("django-debug", rb"<th>Exception Value:</th>", (b"Exception Value:",)),
    ("pyramid-debug", rb"pyramid_debugtoolbar", (b"_debugtoolbar",)),
    ("pyramid-debug", rb"Pyramid Debug Toolbar", (b"Pyramid Debug Toolbar",)),
    ("bottle-debug", rb"<h2>Traceback:</h2>", (b"Traceback",)),
    ("sqlite-error", rb"sqlite3\.(?:Operational|Integrity|Programming|Database)Error", (b"Error",)),
    ("sqlite-error", rb'near "[^"\n]{0,100}": syntax error', (b"x error",)),
    ("sqlite-error", rb"no such (?:table|column): ", (b"no such ",)),  # no rare byte: a pass of its own
    ("sqlite-error", rb'unrecognized token: "', (b"zed token",)),
    ("postgresql-error", rb"psycopg2?\.(?:errors|extensions)\.\w{1,60}|psycopg2?\.\w{0,40}Error", (b"ycopg",)),
    ("postgresql-error", rb'syntax error at or near "', (b"x error",)),
    ("postgresql-error", rb"PG::\w{0,60}Error", (b"PG::",)),
    ("postgresql-error", rb"unterminated quoted string at or near", (b"quoted string",)),
    ("postgresql-error", rb'relation "[^"\n]{1,100}" does not exist', (b"xist",)),
    ("mysql-error", rb"You have an error in your SQL syntax", (b"SQL syntax",)),
    ("mysql-error", rb"MySQLdb\._exceptions", (b"MySQLdb",)),
    ("mysql-error", rb"pymysql\.err\.", (b"ymysql",)),
    ("mysql-error", rb"Warning: mysql_", (b"Warning: mysql_",)),
    ("mysql-error", rb"SQLSTATE\[[0-9A-Z]{5}\]", (b"SQLSTATE[",)),
    ("mysql-error", rb"MariaDB server version for the right syntax", (b"MariaDB server",)),
    ("oracle-error", rb"ORA-\d{5}:", (b"ORA-",)),
    ("oracle-error", rb"cx_Oracle\.", (b"_Oracle",)),
    ("oracle-error", rb"quoted string not properly terminated", (b"quoted string",)),
    ("mssql-error", rb"Unclosed quotation mark after the character string", (b"Unclosed quotation",)),
    ("mssql-error", rb"Microsoft OLE DB Provider for SQL Server", (b"Microsoft OLE DB",)),
    ("mssql-error", rb"System\.Data\.SqlClient\.SqlException", (b"SqlClient",)),
    ("sqlalchemy-error", rb"sqlalchemy\.exc\.\w{1,60}", (b"qlalchemy.exc.",)),
    ("java-trace", rb"\tat (?:java|javax|org\.springframework|org\.apache)\.[\w.$]{1,200}\(", (b"\tat ",)),
    ("java-trace", rb'Exception in thread "', (b"Exception in thread",)),
    ("php-error", rb"<b>(?:Fatal error|Parse error|Warning)</b>: .{0,300}? on line <b>\d+</b>",
     (b"Fatal error</b>", b"Parse error</b>", b"Warning</b>")),
    ("server-path", rb"/(?:site|dist)-packages/", (b"-packages/",)),
    ("server-path", rb"/usr/(?:local/)?lib/python3", (b"ython3",)),
)
# A match of any signature lies within this many bytes before / after its anchor.
_BEFORE, _AFTER = 256, 1024

_CHECKS: dict = {}
for _kind, _pattern, _anchors in _SIGNATURES:
    for _anchor in _anchors:
        _CHECKS.setdefault(_anchor, []).append((_kind, re.compile(_pattern)))
#: Every anchor (a leak contains at least one; tests/errors/test_errors.py checks the samples).
_NEEDLES = tuple(_CHECKS)

# Lead bytes become NUL, a real NUL becomes \x01 (so it never looks like a lead).
_TABLE = bytes.maketrans(_LEADS + b"\x00", b"\x00" * len(_LEADS) + b"\x01")
_LED = tuple(anchor for anchor in _NEEDLES if anchor[:1] in _LEADS)
#: Anchors without a rare first byte: one literal scan each.
_OWN_PASS = tuple(re.compile(re.escape(anchor)) for anchor in _NEEDLES if anchor[:1] not in _LEADS)


def _translated_checks():
    """``{translated anchor: checks}``: every anchor translating to it or to a prefix of it
    (the trie reports the longest anchor at a position; the shorter ones are its prefixes)."""
    by_form: dict = {}
    for anchor in _LED:
        by_form.setdefault(anchor.translate(_TABLE), []).extend(_CHECKS[anchor])
    return {form: [check for other, checks in by_form.items() if form.startswith(other) for check in checks]
            for form in by_form}


def _trie(forms) -> bytes:
    """One pattern matching the longest of ``forms`` at a position, shaped as a trie."""
    root: dict = {}
    for form in forms:
        node = root
        for i in range(len(form)):
            node = node.setdefault(form[i:i + 1], {})
        node[b""] = {}
    return _node(root)


def _node(node: dict) -> bytes:
    parts = []
    for byte, child in node.items():
        if not byte:
            continue
        literal = [byte]
        while len(child) == 1 and b"" not in child:  # a chain without branches: one literal
            (byte, child), = child.items()
            literal.append(byte)
        parts.append(re.escape(b"".join(literal)) + _node(child))
    if not parts:
        return b""
    body = parts[0] if len(parts) == 1 else b"(?:" + b"|".join(parts) + b")"
    return b"(?:" + body + b")?" if b"" in node else body


_TRANSLATED_CHECKS = _translated_checks()
#: Starts with the single literal NUL: the engine's fast scan for one byte.
_ANCHORS = re.compile(_trie(_TRANSLATED_CHECKS))


def _compile(patterns: dict) -> re.Pattern:
    return re.compile(b"|".join(b"(?P<%s>%s)" % (name.replace("-", "_").encode(), pattern)
                                for name, pattern in patterns.items()))


def _confirmed(body: bytes, start: int, end: int, checks) -> str | None:
    for kind, check in checks:
        if check.search(body, max(0, start - _BEFORE), end + _AFTER):
            return kind
    return None


def find_leak(body: bytes, extra: re.Pattern | None = None) -> str | None:
    """The kind of leak in ``body`` (e.g. ``"sqlite-error"``), or None.

    One translation and one scan for the anchors (plus one scan per anchor without a rare
    first byte); each anchor found is confirmed by its own signatures in a bounded
    window, so the cost is linear in the body whatever it holds.
    """
    translated = body.translate(_TABLE)
    search = _ANCHORS.search
    position = 0
    while True:
        # search from the next byte, not after the hit: a hit may hold another anchor's start
        found = search(translated, position)
        if found is None:
            break
        kind = _confirmed(body, found.start(), found.end(), _TRANSLATED_CHECKS[found.group()])
        if kind is not None:
            return kind
        position = found.start() + 1
    for anchor in _OWN_PASS:
        for found in anchor.finditer(body):
            kind = _confirmed(body, found.start(), found.end(), _CHECKS[found.group()])
            if kind is not None:
                return kind
    if extra is not None:
        match = extra.search(body)
        if match:
            return match.lastgroup.replace("_", "-")
    return None
