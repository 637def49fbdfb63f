"""Is this value an SQL string-literal breakout? A tokeniser and a tiny SQL grammar decide.

Practice 2 (SQL injection; OWASP SQL Injection Prevention Cheat Sheet, "Defense Option
3: allow-list input validation"). Keyword lists miss the class: blind injection needs no
``UNION`` or comment, only a quote that ends the literal and then SQL grammar —
``x' IS NOT NULL --``, ``x'=='x``, ``x'||randomblob (1e9)||'``, ``select"col"from"t"``.
So, as libinjection does (Nick Galbreath, "libinjection: SQLi detection by lexical
analysis", Black Hat USA 2012), the value is tokenised once per *quote context* it could
be pasted into — inside ``'...'``, ``"..."``, `` `...` `` or bare (a number) — and refused
when the tokens after the breakout read as SQL:

* in a quote context ``q``: the value must contain ``q`` (else it cannot leave the
  literal). The text up to the first ``q`` is the literal; the token right after it must
  be SQL grammar (an operator, a keyword such as ``or``/``is``/``union``/``order by``, a
  comment, ``)``, ``,`` or ``;``) — ``O'Brien``, ``don't`` and ``'quoted' words`` put a
  word there and pass at once. Then the rest must parse as the tail of an SQL expression
  (operand, operator, operand...; ``not`` only before ``like``/``in``/``between``...;
  one alias word at most) and either *end as SQL ends* (a comment, an open ``q`` string
  the app's own closing quote completes, or ``;``) or carry a strong SQL sign (a
  comparison or arithmetic operator, ``is``, ``like``, ``union``, ``select``, a known SQL
  function, ``@@var``, a stacked statement).
* bare (numeric) context: the value itself must parse as SQL from its first token and
  carry a sign no prose has: a tautology on literals (``1 or 1=1``, ``1) or (1=1``),
  ``union select``, a ``select`` whose list holds a quoted name, ``*``, a number or a
  call (``select"col"from"t"``), a known SQL-only function, a stacked statement.

Where the literal ends is read twice: as standard SQL (``''`` is an escaped quote, a
backslash is a character) and, if the value has a backslash, as MySQL (``\\'`` is an
escaped quote too), so neither reading hides a breakout. Prose that follows a quoted
word or operator (``The word "or" is a conjunction``, ``Jones' = 10 points``) passes
where the SQL could not be true; a comparison stays refused (``x' is not ' a b`` is).

Tokens: strings, numbers (``0x..``, ``1e9``),
``@var``, words (keyword, function when ``(`` follows, even after blanks or ``/**/``:
SQL allows both), operators (``||``, ``==``, ``<=>``, ``::``...), comments (``--``,
``#``, ``/*``; a closed ``/*...*/`` is a blank, ``/*!`` MySQL's executable comment is
read as SQL), parentheses, ``,`` ``.`` ``;``. One regex scan, at most
:data:`MAX_TOKENS` tokens per context: linear in the value, a few µs for short values.
"""

from __future__ import annotations

import re

from .sqli_words import (_AFTER_NOT, _BINARY, _COMPARE, _INFIX, _LOGIC, _PREFIX, _SPACED_BARE, _SQL_FUNCTIONS,
                         _SQL_NAMES, _STATEMENTS, _STRONG_INFIX, _UNARY, _VALUES)

__all__ = ["breakout", "MAX_TOKENS"]

# An attack shows its grammar in its first tokens (libinjection reads five); prose that
# is still "grammatical" after this many tokens is judged on what was read.
MAX_TOKENS = 48

_TOKEN = re.compile(r"""
 (?P<ws>(?:\s|/\*!(?:\d{5,6})?|\*/|/\*(?!!)(?:(?!\*/).){0,2000}?\*/)++)
|(?P<comment>--|\#|/\*)
|(?P<str>'(?:[^']|'')*+'?|"(?:[^"]|"")*+"?|`(?:[^`]|``)*+`?)
|(?P<num>0x[0-9a-f]++|0b[01]++|(?:\d++(?:\.\d*+)?|\.\d++)(?:e[+-]?\d++)?)
|(?P<var>@@?[\w.$]*+)
|(?P<word>[^\W\d][\w$]*+|\[[^\]]{0,128}\])
|(?P<op><=>|->>|->|::|==|!=|<>|<=|>=|\|\||&&|<<|>>|[=<>+\-*/%&|^~!])
|(?P<punct>[(),.;])
|(?P<other>.)
""", re.VERBOSE | re.DOTALL)


_E, _A = 0, 1


class _Tokens:
    """Significant tokens of ``text[start:]`` as (kind, text), read only as far as asked.

    Prose usually leaves the grammar within two or three tokens, so most values are
    never tokenised to the end. A word glued to "(" is kind ``call``; the first comment
    ends the stream (the rest of the value is commented out).
    """

    __slots__ = ("_scan", "_text", "_read", "_done")

    def __init__(self, text: str, start: int):
        self._scan = _TOKEN.finditer(text, start)
        self._text = text
        self._read = []
        self._done = False

    def __getitem__(self, index):
        read = self._read
        while len(read) <= index and not self._done:
            match = next(self._scan, None)
            if match is None:
                self._done = True
                break
            kind = match.lastgroup
            if kind == "ws":
                continue
            if kind == "word" and self._text.startswith("(", match.end()):
                kind = "call"
            read.append((kind, match.group()))
            if kind == "comment" or len(read) >= MAX_TOKENS:
                self._done = True
        return read[index] if index < len(read) else (None, None)




class _Walk:
    """One left-to-right pass of the expression grammar; records the SQL signs it met."""

    __slots__ = ("tokens", "quote", "strong", "terminated", "literal", "literal_first", "logic",
                 "compare", "select_sign", "union", "function", "stacked", "sql_call", "tail", "ended_alias")

    def __init__(self, tokens, quote):
        self.tokens = tokens
        self.quote = quote
        self.strong = self.terminated = self.literal = self.literal_first = self.logic = False
        self.compare = self.select_sign = self.union = self.function = self.stacked = False
        self.sql_call = False  # an SQL function called, however spaced
        self.tail = ""  # the text of an open string that ends the value
        self.ended_alias = False  # the last token read was a bare word after an operand

    def _open_string(self, text) -> bool:
        """An open string ends the value; it is SQL's end if the app's own quote closes it."""
        if len(text) > 1 and text[-1] == text[0] and not _open_inside(text):
            return False
        if self.quote is not None and text[0] == self.quote:
            self.terminated = True
            self.tail = text[1:]
        return True

    def _function(self, kind, name) -> None:
        sql = name in _SQL_FUNCTIONS or name.startswith(("pg_", "dbms_", "utl_", "xp_", "sp_", "sqlite_"))
        self.sql_call = self.sql_call or sql
        if sql and (kind == "call" or self.quote is not None or name in _SPACED_BARE):
            self.function = self.literal = True

    def run(self, state) -> bool:  # noqa: C901 - one grammar, read top to bottom
        """True if every token read fits SQL grammar (E: an operand is due, A: one was read)."""
        tokens = self.tokens
        i = 0
        alias = after_select = False
        while True:
            kind, text = tokens[i]
            if kind is None:
                self.ended_alias = alias
                return True
            following = tokens[i + 1]
            if kind == "comment":
                # MySQL (the only backtick-quoting engine) needs a blank after "--" and reads
                # "#" as a comment; in prose `--force` and `#channel` are markdown code.
                if self.quote == "`":
                    return False
                self.terminated = True
                return True
            if state == _E:
                alias = False
                if kind in ("num", "str", "var"):
                    self.literal_first = self.literal_first or i == 0
                    if kind == "str" and self._open_string(text):
                        return True  # the app's quote closes it: an end, not an operand of ours
                    self.literal = True
                    if kind == "var" and text.startswith("@@"):
                        self.strong = True
                    self.select_sign = self.select_sign or after_select
                    state = _A
                elif kind in ("word", "call"):
                    if text in _PREFIX:
                        if text == "select":
                            after_select = True
                            self.strong = self.strong or i > 0
                        i += 1
                        continue
                    if text in _INFIX or text in ("then", "end", "as"):
                        return False
                    if following[1] == "(":
                        self._function(kind, text)
                        self.select_sign = self.select_sign or after_select
                        i += 2
                        continue
                    if text in _SQL_NAMES:
                        self.function = self.literal = True
                    if text in _VALUES:
                        self.literal = True
                    if text.startswith("[") and after_select:
                        self.select_sign = True
                    state = _A
                elif kind == "op" and text in _UNARY:
                    self.literal_first = self.literal_first or i == 0
                elif kind == "op" and text == "*":
                    self.select_sign = self.select_sign or after_select
                    state = _A
                elif text == "(":
                    self.literal_first = self.literal_first or i == 0
                elif text == ")" and i > 0 and tokens[i - 1][1] == "(":
                    state = _A  # f()
                else:
                    return False
                i += 1
                continue
            # state A: an operand was read
            if kind == "op":
                if text == "::":  # PostgreSQL cast: a type name follows
                    if following[0] not in ("word", "call"):
                        return False
                    self.strong = True
                    i += 2
                    continue
                if text not in _BINARY:
                    return False
                self.strong = True
                self.compare = self.compare or text in _COMPARE
                self.logic = self.logic or text in ("||", "&&")
                state = _E
            elif text == ")":
                pass
            elif text == ",":
                state = _E
            elif text == ".":
                if following[0] not in ("word", "call", "str"):
                    return False
                i += 2
                continue
            elif text == ";":
                if following[0] is not None and following[0] != "comment" and following[1] not in _STATEMENTS:
                    return False
                self.terminated = True
                self.stacked = self.strong = following[0] is not None
                return True
            elif kind in ("word", "call"):
                if text == "not":
                    if following[1] not in _AFTER_NOT:
                        return False
                    self.strong = self.compare = True
                    i += 2
                    state = _A if following[1] == "null" else _E
                    alias = False
                    continue
                if text in ("group", "order"):
                    if following[1] != "by":
                        return False
                    self.strong = self.select_sign = True
                    i += 2
                    state = _E
                    alias = False
                    continue
                if text in _INFIX:
                    if text in _LOGIC:
                        self.logic = True
                    elif text in _STRONG_INFIX:
                        self.strong = True
                        self.compare = self.compare or text not in ("union", "intersect", "except")
                    if text in ("union", "intersect", "except"):
                        self.union = True
                    if text in ("where", "limit"):
                        self.select_sign = self.select_sign or after_select
                    if text == "from":
                        after_select = False
                    if text == "in" and following[1] == "(":
                        self.strong = self.compare = True
                    if text in ("from", "where", "having", "limit", "into", "join") and \
                            following[0] == "str" and following[1][:1] == self.quote:
                        return False  # a table or a clause is no string literal
                    state = _E
                elif text in ("asc", "desc", "end"):
                    pass
                elif text == "as":
                    if following[0] not in ("word", "call", "str"):
                        return False
                    i += 2
                    continue
                elif text == "waitfor":
                    self.strong = self.stacked = True
                    return True
                elif not alias and text not in _PREFIX and text not in _VALUES:
                    alias = True  # "expr alias" is SQL once; two words in a row are prose
                    i += 1
                    continue
                else:
                    return False
            elif kind == "str" and i == 0 and self.quote is not None and text[0] == self.quote:
                # 'x' 'y': adjacent literals concatenate (MySQL, PostgreSQL across lines)
                self._open_string(text)
                return self.terminated
            else:
                return False
            alias = False
            i += 1


def _open_inside(text: str) -> bool:
    """For a string token that ends in its quote: is that quote half of an escaped pair?"""
    body = text[1:-1]
    run = len(body) - len(body.rstrip(text[0]))
    return run % 2 == 1


def _literal_end(text: str, quote: str, backslash: bool) -> int:
    """Where the literal ``text`` is pasted into ends: its first unescaped ``quote``, or -1."""
    end = text.find(quote)
    while end != -1:
        if backslash and (end - len(text[:end].rstrip("\\"))) % 2:
            end = text.find(quote, end + 1)  # MySQL: \' is an escaped quote too
        elif text.startswith(quote, end + 1):
            end = text.find(quote, end + 2)  # '' inside a literal is an escaped quote
        else:
            return end
    return -1


def _quoted(text: str, quote: str) -> bool:
    """Does ``text``, pasted inside ``quote...quote``, break out into SQL?

    Read both as standard SQL and, if it has a backslash, as MySQL (where ``\\'`` does not
    end the literal, so ``foo\\''or'x`` breaks out only there).
    """
    if _breaks_out(text, quote, _literal_end(text, quote, False)):
        return True
    return "\\" in text and _breaks_out(text, quote, _literal_end(text, quote, True))


def _breaks_out(text: str, quote: str, end: int) -> bool:
    if end == -1:
        return False
    tokens = _Tokens(text, end + 1)
    kind, first = tokens[0]
    if kind is None:
        return False
    if not (kind in ("op", "comment") or first in (")", ",", ";") or (kind == "str" and first[0] == quote) or
            (kind in ("word", "call") and (first in _INFIX or first in ("not", "group", "order", "waitfor")))):
        return False  # a word glued to the quote: O'Brien, don't, 'quoted' text
    walk = _Walk(tokens, quote)
    if not walk.run(_A):
        return False
    if walk.stacked or walk.function:
        return True
    # "Jones' = 10 points": prose goes on in words where SQL would have to end.
    if walk.strong and walk.literal and not walk.ended_alias:
        return True
    # 'the word "or" is a conjunction', "Ctrl+'-' zooms out": the quote the app adds would
    # close prose, not SQL. A comparison stays refused even so: "x' is not ' a b" is true.
    return walk.terminated and (walk.compare or not _PROSE_TAIL.match(walk.tail))


_PROSE_TAIL = re.compile(r"\s+[^\W\d]{2,}(?:\s|$)")


def _bare(text: str) -> bool:
    """Does ``text`` itself, pasted where SQL expects a number or a clause, read as SQL?"""
    walk = _Walk(_Tokens(text, 0), None)
    if not walk.run(_E):
        return False
    if walk.stacked or walk.union or walk.function or walk.select_sign:
        return True
    # "1 or 1=1", "1) and sleep (5)": a number, then logic, then a comparison or a call.
    if not walk.literal_first:
        return False
    return (walk.logic and (walk.compare or walk.terminated or walk.sql_call)) or (walk.strong and walk.sql_call)


# Cheap pre-check: a bare value is refused only for a sign below, so a value with none of
# them is never tokenised. A literal start (number, sign, "(", a quote) is what a
# tautology needs; the words are the other signs _bare accepts; "(" and ";" stand for
# calls and stacked statements. Substring tests, not one regex of alternatives: those
# run at C speed on a long value (an alternation of ~100 names costs ~250 µs per KB).
_LITERAL_START = re.compile(r"(?:\s|/\*!(?:\d{5,6})?|/\*.*?\*/)*[-+~!(\d.@'\"`]", re.DOTALL)
_BARE_WORDS = ("select", "union", "intersect", "except", "waitfor", "@@", "sqlite_", "information_schema",
               "pg_", "dbms_", "utl_", "xp_", "sp_", "sysobjects", "syscolumns", "all_tables", "user_tables", "dual",
               "group", "order")
_CALL = re.compile(r"([a-z_][\w$]*)\s*(?:/\*.*?\*/\s*)*\(", re.DOTALL)
_STACK = re.compile(r";(?:\s|/\*.*?\*/)*(--|#|/\*|$|[a-z]*)", re.DOTALL)


def _maybe_bare(text: str) -> bool:
    if _LITERAL_START.match(text) is not None or any(word in text for word in _BARE_WORDS):
        return True
    if ";" in text and any(m.group(1) in _STATEMENTS or not m.group(1).isalpha() for m in _STACK.finditer(text)):
        return True
    return "(" in text and any(m.group(1) in _SQL_FUNCTIONS for m in _CALL.finditer(text))


def breakout(text: str) -> str | None:
    """The rule ``text`` (lower-cased canonical form) breaks, or None.

    ``"SQL string breakout"`` for a quote followed by SQL grammar, ``"SQL grammar"`` for a
    bare value that reads as an SQL expression or statement.
    """
    for quote in ("'", '"', "`"):
        if quote in text and _quoted(text, quote):
            return "SQL string breakout"
    if _maybe_bare(text) and _bare(text):
        return "SQL grammar"
    return None
