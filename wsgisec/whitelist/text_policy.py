"""Canonicalise free text, then refuse injection constructs while letting real text pass.

Practice 2 (XSS, SQL injection, path traversal, command injection). The allowlist cannot
say what a free-text field (a name, a search term, a note) may contain character by
character, so such fields go through this default policy instead. It works on the
*canonical* form of a value, because filters that look at the raw form are bypassed by
encoding (OWASP ESAPI ``Encoder.canonicalize``, OWASP Input Validation Cheat Sheet):

1. **percent-decoding until stable** (at most four layers). Query and form values have
   already been decoded once by the URL parser; anything that still decodes was encoded
   twice. A person pasting a URL (``q=hello%20world``) does that honestly, so the rules
   run on the fully decoded form, and a value whose extra layers *hide* an attack
   (``%253Cscript%253E``, ``%2e%2e%2f``) is refused as "double or mixed encoding", as
   ESAPI refuses it; IIS's ``%uXXXX``, which no browser sends, is refused whatever it
   hides. Values from JSON/XML bodies were never percent-encoded, so their first layer
   is not an extra one. (:func:`canonical` itself stays strict: a second layer raises.)
2. **HTML character references** are decoded for the check (``&#106;avascript:`` is what
   a browser turns into ``javascript:`` inside an attribute).
3. **Unicode NFKC**, so full-width ``＜script＞`` and other compatibility forms are
   checked as the characters they fold to.
4. **typographic quotes** (‘ ’ ‚ ‛ “ ” „ ‟ ʼ) are read as ASCII quotes, since some
   databases and charset conversions do the same.
5. **NUL and control characters** (C0 except tab/CR/LF, DEL, C1) and the bidirectional
   override controls (U+202A-202E, U+2066-2069, "Trojan Source") are refused outright.

The canonical form is only used for the decision: the application still receives the
original value (or nothing at all).

Then the value is refused if it contains

* HTML/script markup: a ``<`` that starts a tag, comment, CDATA or processing
  instruction (``<b``, ``</``, ``<!``, ``<?``) — ``3 < 5``, ``a <= b`` and an address
  ``Jane <jane@example.com>`` stay fine;
* an event-handler attribute (``onerror=``, ``" onmouseover="``) or a script URL
  (``javascript:``, ``vbscript:``, ``data:text/html``; tabs and newlines inside the
  scheme are ignored, as browsers do), CSS ``expression(``;
* SQL-injection constructs: a quote followed by a comment (``'--``, ``'#``, ``'/*``),
  inline comments ``/*...*/``, tautologies (``' or '1'='1``, ``or 1=1``), stacked
  queries (``; drop table``), ``UNION [ALL] SELECT``, ``SELECT ... FROM ... WHERE``,
  time/out-of-band functions (``sleep(``, ``benchmark(``, ``waitfor delay``,
  ``load_file(``, ``into outfile``), catalog names (``information_schema``);
* an SQL string-literal breakout: a quote followed by SQL grammar, or a bare value that
  reads as an SQL expression, decided by the tokeniser in :mod:`wsgisec.whitelist.sqli`
  (``x' IS NOT NULL --``, ``x'||randomblob (1e9)||'``, ``select"col"from"t"``);
* path traversal: ``../`` and ``..\\`` (after decoding), and well-known system files
  (``/etc/passwd``, ``c:\\windows\\``, ``/proc/self/``);
* command-injection sequences: a shell metacharacter (``;``, ``|``, ``||``, ``&&``,
  ``&`` before a Windows command) followed by a command name, a command with an option
  or absolute path after a line break (at the very start of a value only with an
  absolute path: ``grep -r "TODO" src/`` quoted in a ticket passes), a command alone on
  a new line, ``$(``, ``${``, ``<(``, command substitution in backticks (a markdown code
  span inside prose, ``run `git status` first``, passes), paths to shells, shellshock;
  Windows ``%VAR%``, ``FOR /F``/``IF EXIST`` batch syntax and PowerShell download cradles;
* NoSQL operators (``$where``, ``$ne``, ``$or``...), server-side JavaScript
  (``'; return true; var x='``, ``this.password.match(``, ``db.users.drop()``), LDAP
  filter syntax (``*)(uid=*``, ``)(|(``, RFC 4515), a CR or LF followed by a header line
  (``Set-Cookie:``, ``Location: //``; response splitting, RFC 9112 §2.2), and
  session-fixation strings (``document.cookie=``, ``; expires=``, ``jsessionid``);
* code: JavaScript calls and sinks (``alert(``, ``document.cookie``, ``__proto__``),
  template expressions (``{{...}}``, ``#{...}``, ``*{...}``, ``@(...)``, ``{$x}``,
  ``<#assign``, ``#set(``, ``__class__``), PHP calls and superglobals
  (``system(``, ``$_GET``, serialized objects), Java gadget/class names
  (``java.lang.Runtime``, ``jndi:``) — the word alone is fine, the call is not.

It lets through names such as ``O'Brien``, ``AT&T``, ``Tom & Jerry``, ``3 < 5``,
``50% off``, multilingual text and emoji: the rules look for *constructs*, not for single
characters. Where a rule could touch ordinary prose, it needs the construct's context
(a quote before ``or``, an argument after a command name), which is why ``black or
white`` or ``salt; pepper`` pass.

Cost (``benchmarks/text_policy_corpus.py``): a value made only of ASCII letters,
digits, ``-`` and ``,`` takes the fast path (~0.1 µs); otherwise each rule's regex runs
only if the value contains one of its trigger strings, and the SQL tokeniser reads a few
tokens per quote context: ~10-18 µs for a short phrase, ~23 µs mean over the corpora.
Every pattern is bounded (no unbounded lazy scan per occurrence) and the tokeniser reads
at most 48 tokens per context, so the cost stays linear in the length of the value.

The rules are in :mod:`wsgisec.whitelist.text_rules`; the SQL tokeniser is
:mod:`wsgisec.whitelist.sqli`.

``check(value, decoded=True)`` returns ``None`` or the :class:`Violation` (its ``rule``
is a short fixed phrase, safe to show: it never contains the value). ``decoded`` says
whether the transport already percent-decoded the value once (query, form, path).
"""

from __future__ import annotations

import html
import re
import unicodedata
from urllib.parse import unquote

from . import sqli
from .text_rules import _RULES, _call_violation

__all__ = ["Violation", "check", "canonical", "SAFE"]


class Violation(Exception):
    """A value broke a rule of the text policy; ``rule`` says which (never the value)."""

    def __init__(self, rule: str):
        super().__init__(rule)
        self.rule = rule


# Values made only of these characters (no space, quote, dot, underscore, slash, bracket,
# colon, @...) cannot carry any construct below: the fast path for ids, numbers, words.
SAFE = re.compile(r"[A-Za-z0-9\-,]*")

_PERCENT = re.compile(r"%(?:[0-9a-fA-F]{2}|u[0-9a-fA-F]{4})")
_IIS_UNICODE = re.compile(r"%u([0-9a-fA-F]{4})")
# C0 controls except TAB, LF, CR; DEL; C1 controls; bidi embedding/override/isolate.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u02bc": "'",
                         "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"'})
_WHITESPACE = re.compile(r"[\s\x00-\x1f]+")

# At the start of a value only a command given an absolute path ("cat /etc/x") is refused.
_ABSOLUTE_ARGUMENT = re.compile(r"[\w./-]+\s+(?:-\S+\s+)*/[a-z]")


def _preceded(text: str, start: int, allowed: str) -> bool:
    if allowed == "new-line":
        # A command line at the very start of a value is a support ticket quoting it;
        # after a line break it is how a payload reaches the next line of a shell.
        before = text[:start]
        line = before.rsplit("\n", 1)[-1].rsplit("\r", 1)[-1]
        if len(line) < len(before):
            return not line.strip()
        return start == 0 and _ABSOLUTE_ARGUMENT.match(text, start) is not None
    if start == 0:
        return True
    return text[start - 1] in allowed


def _compile(rule):
    name, triggers, pattern = rule[:3]
    return name, triggers, re.compile(pattern, re.DOTALL), rule[3] if len(rule) > 3 else None


# Patterns are written in lower case and run on the lower-cased canonical form.
_COMPILED = [_compile(rule) for rule in _RULES]
# Each distinct trigger once, with the rules it gates: one scan per trigger per value.
_BY_TRIGGER: dict[str, list[int]] = {}
for _index, (_name, _triggers, _pattern, _before) in enumerate(_COMPILED):
    for _trigger in _triggers:
        _BY_TRIGGER.setdefault(_trigger, []).append(_index)
_TRIGGER_LIST = tuple(_BY_TRIGGER.items())
# The same, grouped by first character: one "in" per distinct first character skips
# every trigger whose first character the value lacks (most of them, for prose).
_BY_FIRST: dict[str, list] = {}
for _trigger, _indexes in _TRIGGER_LIST:
    _BY_FIRST.setdefault(_trigger[0], []).append((_trigger, _indexes))
_TRIGGER_GROUPS = tuple((first, tuple(group)) for first, group in _BY_FIRST.items())
_SCRIPT_URL = re.compile(r"(?:java|vb|live|ecma|j)script:")


def _matches(pattern, text: str, preceded_by) -> bool:
    if preceded_by is None:
        return pattern.search(text) is not None
    position = 0
    while True:
        found = pattern.search(text, position)
        if found is None:
            return False
        if _preceded(text, found.start(), preceded_by):
            return True
        position = found.start() + 1


def _percent_decode(text: str) -> str:
    text = _IIS_UNICODE.sub(lambda m: chr(int(m.group(1), 16)), text)
    return unquote(text, errors="strict")


def canonical(value: str, decoded: bool = True) -> str:
    """The form of ``value`` the rules look at; raises :class:`Violation` on bad encoding.

    Strict: a second layer of percent-encoding is refused outright (ESAPI's rule).
    :func:`check` is gentler: it decodes every layer and refuses a value only if what
    the layers hide is an attack (a URL pasted as text, ``q=hello%20world``, is fine).
    """
    text, extra = _canonical(value, decoded)
    if extra:
        raise Violation("double or mixed encoding")
    return text


# More layers than this is no pasted URL: refused whatever it decodes to.
_MAX_LAYERS = 4


def _canonical(value: str, decoded: bool) -> tuple[str, int]:
    """(canonical text, layers of percent-encoding beyond what the transport decodes)."""
    text = value
    layers = 0
    while "%" in text and _PERCENT.search(text):
        try:
            decoded_text = _percent_decode(text)
        except UnicodeDecodeError:
            raise Violation("invalid percent-encoding") from None
        if decoded_text == text:
            break
        text = decoded_text
        layers += 1
        # IIS's %uXXXX is no standard encoding: no browser sends it, so it is never a pasted URL.
        if layers > _MAX_LAYERS or (layers > (0 if decoded else 1) and _IIS_UNICODE.search(value)):
            raise Violation("double or mixed encoding")
    extra = max(0, layers - (0 if decoded else 1))
    if "&" in text:
        text = html.unescape(text)
    if not text.isascii() and not unicodedata.is_normalized("NFKC", text):
        text = unicodedata.normalize("NFKC", text)
        if "&" in text:
            text = html.unescape(text)
    if not text.isascii():
        text = text.translate(_QUOTES)
    if _CONTROL.search(text):
        raise Violation("control characters are not allowed")
    return text, extra


def check(value: str, decoded: bool = True) -> Violation | None:
    """None if ``value`` is acceptable free text, else the :class:`Violation` it commits."""
    if SAFE.fullmatch(value):
        return None
    try:
        text, extra = _canonical(value, decoded)
    except Violation as violation:
        return violation
    rule = _rule(text.lower())
    if rule is None:
        return None
    # ESAPI: an encoding inside an encoding that hides an attack is the attack's disguise.
    return Violation("double or mixed encoding" if extra else rule)


def _rule(text: str) -> str | None:
    """The first rule the lower-cased canonical ``text`` breaks, or None."""
    candidates = set()
    for first, group in _TRIGGER_GROUPS:
        if first in text:
            for trigger, indexes in group:
                if trigger in text:
                    candidates.update(indexes)
    for index in sorted(candidates):  # in rule order, so the reported rule is stable
        name, _, pattern, preceded_by = _COMPILED[index]
        if _matches(pattern, text, preceded_by):
            return name
    if "(" in text:
        rule = _call_violation(text)
        if rule is not None:
            return rule
    # A quote (or a bare value) followed by SQL grammar: the class keyword rules miss.
    rule = sqli.breakout(text)
    if rule is not None:
        return rule
    if "\t" in text or "\n" in text or "\r" in text:
        # Browsers drop tabs/newlines inside a URL scheme: "java\tscript:".
        if _SCRIPT_URL.search(_WHITESPACE.sub("", text)):
            return "script URL"
    return None
