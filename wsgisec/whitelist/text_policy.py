"""Canonicalise free text, then refuse injection constructs while letting real text pass.

Practice 2 (XSS, SQL injection, path traversal, command injection). The allowlist cannot
say what a free-text field (a name, a search term, a note) may contain character by
character, so such fields go through this default policy instead. It works on the
*canonical* form of a value, because filters that look at the raw form are bypassed by
encoding (OWASP ESAPI ``Encoder.canonicalize``, OWASP Input Validation Cheat Sheet):

1. **percent-decoding until stable.** Query and form values have already been decoded
   once by the URL parser; anything that still decodes was encoded twice, which no
   honest client does, so double (or mixed: ``%252e``, ``%u002e``) encoding is itself
   refused, as ESAPI does. Values from JSON/XML bodies were never percent-encoded, so one
   layer of ``%XX`` is decoded and checked; a second is refused.
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
* command-injection sequences: a shell metacharacter (``;``, ``|``, ``||``, ``&&``, a
  backtick) followed by a command name, a command with an option or absolute path at the
  start of a line, ``$(``, ``${``, paths to shells, shellshock; Windows ``%VAR%``,
  ``FOR /F``/``IF EXIST`` batch syntax and PowerShell download cradles;
* NoSQL operators (``$where``, ``$ne``...) and session-fixation strings
  (``document.cookie=``, ``; expires=``, ``jsessionid``);
* code: JavaScript calls and sinks (``alert(``, ``document.cookie``, ``__proto__``),
  template expressions (``{{...}}``, ``#{...}``), PHP calls and superglobals
  (``system(``, ``$_GET``, serialized objects), Java gadget/class names
  (``java.lang.Runtime``, ``jndi:``) — the word alone is fine, the call is not.

It lets through names such as ``O'Brien``, ``AT&T``, ``Tom & Jerry``, ``3 < 5``,
``50% off``, multilingual text and emoji: the rules look for *constructs*, not for single
characters. Where a rule could touch ordinary prose, it needs the construct's context
(a quote before ``or``, an argument after a command name), which is why ``black or
white`` or ``salt; pepper`` pass.

Cost: a value made only of ASCII letters, digits, ``-`` and ``,`` takes the fast path (~0.1 µs);
otherwise each rule's regex runs only if the value contains one of its trigger strings,
~5 µs for a short phrase and ~65 µs per KB. Every pattern is bounded (no unbounded lazy
scan per occurrence), so the cost stays linear in the length of the value.

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

_SHELL_COMMANDS = (
    "cat|ls|id|whoami|uname|pwd|echo|printf|wget|curl|nc|ncat|netcat|telnet|ssh|scp|bash|sh|"
    "zsh|ksh|csh|dash|tcsh|python[23]?|perl|ruby|php|node|rm|cp|mv|chmod|chown|kill|killall|"
    "ping|nslookup|dig|host|ifconfig|ip|netstat|ps|env|set|export|sleep|uptime|head|tail|more|"
    "less|grep|find|awk|sed|xargs|base64|touch|mkdir|tftp|ftp|powershell|cmd|certutil|"
    "bitsadmin|wmic|net|type|dir|del|systeminfo|passwd|sudo|su|crontab|nohup|exec|eval|"
    "socat|xterm|openssl|dd|tar|zip|unzip|gzip|vi|vim|nano|reboot|shutdown|halt|useradd|"
    "mail|sendmail|ruby|lua|java|gcc|cc|make|time|timeout|which|whereis|locate|getent|"
    "hostname|history|last|w|who|finger|nmap|tee|od|xxd|strings|rev|tac|nl|diff|sort|uniq"
)

# Rules are (name, triggers, pattern[, preceded_by]). The pattern runs only if the
# lower-cased canonical value contains one of its triggers (a C-speed substring scan),
# and every match contains one of them. Patterns start with a literal where possible,
# which lets the regex engine skip ahead (a leading \b or (?:^|...) costs ~10 µs per KB);
# ``preceded_by`` then names the characters allowed just before the match (the start of
# the value always is). Where a word is also English ("convert", "sleep", "system"), a
# rule needs code syntax right after it: MySQL and PHP call a function only with "("
# directly after its name, which is what _CALLS below looks for.
_Q = ("'", '"', "`")
_SPACE = " \t\n\r"
_RULES = [
    # "Jane <jane@example.com>" is an address: a "tag" of one name with an "@" and no
    # attribute can carry no handler or URL, so it alone is let through.
    ("HTML or script markup", ("<",), r"<(?![\w.+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){0,8}>)[a-z!/?%]"),
    ("HTML or script markup", ("+ad",), r"\+ad[w4]-"),  # UTF-7 "<"
    ("event-handler attribute", ("on",),
     r"on(?:abort|activate|after|animation|auxclick|before|begin|blur|bounce|"
     r"cancel|can|change|click|close|content|context|copy|cue|cut|dbl|deactivate|drag|drop|"
     r"duration|emptied|end|error|finish|focus|formdata|fullscreen|gotpointer|hashchange|input|"
     r"invalid|key|load|lostpointer|message|mouse|move|offline|online|page|paste|pause|play|"
     r"pointer|popstate|progress|propertychange|rate|readystate|repeat|reset|resize|scroll|"
     r"search|seek|select|show|stalled|start|storage|submit|suspend|timeupdate|toggle|touch|"
     r"transition|unload|volume|waiting|webkit|wheel|zoom)[a-z]*\s*=", _SPACE + "\"'`/;+("),
    ("event-handler attribute", ("formaction", "xlink:href"), r"(?:formaction|xlink:href)\s*="),
    ("script URL", ("script:",), r"(?:java|vb|live|ecma|j)script:"),
    ("script URL", ("data:",), r"data:[^,]{0,100}?(?:text/html|script|svg)"),
    ("script URL", ("expression", "-moz-binding", "@import", "srcdoc"),
     r"expression\s*\(|-moz-binding|@import\b|srcdoc\s*="),
    ("script code", ("document",), r"document\s*\.\s*(?:cookie|write|location|domain|body|createelement|getelementby)"),
    ("script code", ("window",), r"window\s*\.\s*(?:location|open|name|eval)"),
    ("script code", ("constructor", "__proto__", "child_process", "process", "fromcharcode", "module"),
     r"\.\s*constructor\b|__proto__|child_process\b|process\s*\.\s*(?:mainmodule|binding|env)\b"
     r"|fromcharcode\b|module\s*\.\s*exports\b"),
    ("script code", ("new",), r"new\s+function\s*\("),
    ("script code", ("[",), r"\[\s*[\"'](?:cookie|alert|eval|constructor|location|document|prototype)[\"']\s*\]"),
    ("script code", ("[]",), r"!\[\]|\[\]\["),
    ("script code", ("\\u00",), r"\\u00[0-9a-f]{2}"),
    ("template injection", ("{{",), r"\{\{.{0,200}?\}\}"),
    ("template injection", ("{%",), r"\{%.{0,200}?%\}"),
    ("template injection", ("#{",), r"#\{[^}]{0,200}\}"),
    ("template injection", ("@{[",), r"@\{\["),
    ("SQL comment after a quote", ("--", "#", "/*"),
     # MySQL, the one engine that quotes with backticks, needs a blank after "--": in
     # prose `--force` and `#channel` are markdown code.
     r"['\"](?:\)*(?:--|#|/\*)|`\)*(?:--(?:\s|$)|/\*)|\s*\)*\s*(?:--|#|/\*)\s*$|[^'\"`]{0,500}(?:--|#)\s*$)"),
    ("SQL comment after a quote", (";",), r";\s*(?:--|#|/\*)"),
    ("SQL inline comment", ("/*",), r"/\*(?:.{0,500}?\*/|!)"),
    ("SQL tautology", _Q + (")",),
     r"['\"`)]\s*(?:or|and|xor|\|\||&&|div|like|rlike|regexp|having)\b\s*(?:['\"`\d(@]|not\b|true\b|"
     r"false\b|null\b|\w+\s*(?:[=<>!]|like\b|is\b|in\b|between\b|regexp\b|rlike\b|sounds\b)"
     r"|\w+\s+not\s+(?:like|similar|in|between|regexp|rlike|glob)\b)"),
    ("SQL tautology", _Q,
     r"['\"`]\s*(?:(?:=|<>|!=|<=>|\|\||\+|\^|\*|/|&|\|)\s*['\"`]"
     r"|(?:order\s+by|group\s+by|having|procedure\s+analyse|limit\s+\d)\b"
     r"|(?:not\s*null|notnull|isnull|is\s+(?:not\s+)?null|alter|div|mod|sounds\s+like)\b"
     r"|(?:not\s+)?(?:regexp|rlike|like|glob|similar\s+to|ilike)\s*['\"`\d])"),
]
# "or 1=1", "and 'a'='a", "|| x=x --": one literal-prefixed pattern per operator.
for _operator, _trigger in ((r"or", "or"), (r"and", "and"), (r"xor", "xor"), (r"\|\|", "||"), (r"&&", "&&")):
    _RULES.append(("SQL tautology", (_trigger,),
                   _operator + r"\s+(?:(?:\d+|'[^']{0,100}'|\"[^\"]{0,100}\"|[a-z_]\w*)\s*(?:=|<>|!=|<=>|>=|<=)\s*"
                   r"(?:\d+\b|['\"]|[a-z_]\w*\s*(?:$|--|#|/\*))|\d+\s*(?:--|#)"
                   r"|(?:not\s+)?(?:exists|isnull|is\s+null)\s*\()", _SPACE + "'\"`()0123456789=,+/"))
_RULES += [
    ("SQL stacked query", (";",),
     r";\s*(?:select|insert|update|delete|drop|create|alter|truncate|exec|execute|declare|"
     r"shutdown|grant|revoke|union|merge|replace|rename|call|set\s+@|waitfor|begin|commit)\b"),
    ("SQL UNION SELECT", ("union",), r"union\b[\s(+]*(?:all|distinct|select)\b"),
    # A select list of names, then a table, then a clause: "select one from the list" is English.
    ("SQL statement", ("select",),
     r"select\s+[\w*,.\s()@`\"\[\]]{1,120}?\s+from\s+[\w.\[\]`\"]+\s+(?:where|limit|order\s+by|group\s+by)\b"
     r"|select\s+(?:\*|@@|0x[0-9a-f]|[\w.]+\(|(?:count|concat|char|version|user|database)\b)"
     r"|select\s*\(", _SPACE + "'\"`();,=|&+-/*"),
    ("SQL statement", ("select",), r"\(\s*select\s+(?:\d|\*|@|null\b|[\w.]+\s*(?:\(|,|from\b))"),
    ("SQL statement", ("insert",), r"insert\s+into\s+\S+", _SPACE + "'\"`();,"),
    ("SQL statement", ("delete",), r"delete\s+from\s+\S+\s*(?:where|;|$)", _SPACE + "'\"`();,"),
    ("SQL statement", ("update",), r"update\s+\S+\s+set\s+\S+\s*=", _SPACE + "'\"`();,"),
    ("SQL statement", ("drop",), r"drop\s+(?:table|database|schema|view|function|procedure|user|index)\b",
     _SPACE + "'\"`();,"),
    ("SQL statement", ("create", "alter"), r"(?:create|alter)\s+(?:table|database|user|function|procedure)\b",
     _SPACE + "'\"`();,"),
    ("SQL statement", ("case",), r"case\s+when\s.{1,100}?\bthen\s.{1,100}?\b(?:else|end)\b", _SPACE + "'\"`();,"),
    ("SQL statement", ("order",), r"order\s+by\s+\d+\s*(?:--|#|$)", _SPACE + "'\"`();,"),
    ("SQL statement", ("group",), r"group\s+by\s+\S+\s+having\b", _SPACE + "'\"`();,"),
    ("SQL statement", ("::",),
     r"::\s*(?:int|integer|bigint|smallint|text|varchar|char|jsonb?|bool|boolean|regclass|oid|numeric|"
     r"float|real|bytea|inet|xml)\b"),
    ("SQL function", ("waitfor",), r"waitfor\s+(?:delay|time)\b"),
    ("SQL function", ("into",), r"into\s+(?:out|dump)file\b"),
    ("SQL function", ("information_schema", "sysobjects", "syscolumns", "mysql.", "pg_catalog", "sqlite_master",
                      "@@", "utl_", "openrowset"),
     r"information_schema\b|sysobjects\b|syscolumns\b|mysql\.(?:user|db)\b|pg_catalog\b|sqlite_master\b|@@\w+|"
     r"utl_(?:http|inaddr|file|tcp|smtp)\b|openrowset\b"),
    ("SQL function", ("exec",), r"exec(?:ute)?\s*(?:\(\s*['\"@]|xp_|sp_|master\.|@)", _SPACE + "'\"`();,"),
    ("SQL function", ("set",), r"set\s+@\w+", _SPACE + "'\"`();,"),
    ("NoSQL operator", ("$",), r"\$(?:where|ne|gt|gte|lt|lte|regex|expr|function|nin|exists|elemmatch|accumulator)\b",
     _SPACE + "\"'{,["),
    ("session fixation", ("cookie", "expires", "sessid", "session"),
     r"\.cookie\s*[;=]|set-cookie\s*:|;\s*expires\s*=|(?:jsessionid|phpsessid|aspsessionid\w*|phpsession)\b"),
    ("path traversal", ("..",), r"\.{2,16}(?:[\\/]|$)", "\\/=:;,'\"" + _SPACE),
    ("path traversal", ("/etc/",), r"/etc/(?:passwd|shadow|hosts|group|issue)"),
    ("path traversal", (":\\",), r"[a-z]:\\+(?:windows|winnt|boot\.ini|inetpub)"),
    ("path traversal", ("/proc/", "/sys/"), r"/(?:proc|sys)/[a-z0-9]"),
    ("path traversal", ("win.ini", "boot.ini"), r"(?:win|boot)\.ini\b"),
    ("path traversal", ("://",), r"(?:file|php|phar|zip|expect|glob|gopher|dict|ldap|jar|netdoc|ssh2\.\w+)://"),
    ("path traversal", ("id_",), r"id_(?:rsa|dsa|ecdsa|ed25519)\b"),
    ("path traversal", (".ssh", ".aws", ".git", ".env", ".ht", ".bash_history", ".docker", ".kube", ".npmrc",
                        ".netrc"),
     r"\.(?:ssh|aws|git|env|htaccess|htpasswd|bash_history|docker|kube|npmrc|netrc)\b", "/"),
    ("command injection", (";", "|"),
     r"[;|]\s*(?:/(?:usr/)?(?:local/)?s?bin/)?(?:" + _SHELL_COMMANDS + r")"
     r"(?:\s+[-/~.$'\"\\]|\s*[;|&`>]|\s*$)"),
    ("command injection", ("&&", "$("),
     r"(?:&&|\$\()\s*(?:/(?:usr/)?(?:local/)?s?bin/)?(?:" + _SHELL_COMMANDS + r")"
     r"(?:\s+[-/~.$'\"\\]|\s*[;|&`>]|\s*$)"),
    ("command injection", ("|",), r"\|\s*(?:" + _SHELL_COMMANDS + r")\b"),
    # At the start of the value or of a line, a command word is also an English word
    # ("more", "time", "head"): only an option or an absolute path makes it a command.
    ("command injection", (" -", " /", "\t-", "\t/", "\n"),
     r"(?:/(?:usr/)?(?:local/)?s?bin/)?(?:" + _SHELL_COMMANDS + r")\s+(?:--?[a-z]|/[a-z])", "line-start"),
    ("command injection", ("$",), r"\$(?:\(|\{|[a-z_]+\s*\)|[a-z_]\w*\s+-c\b)"),
    # Command substitution. A markdown code span inside prose ("run `git status` first")
    # is text; a span at the start of the value, glued to a word or after a
    # shell metacharacter is how a payload reaches a shell ("`id`", "x;`id`", "a=`id`").
    ("command injection", ("`",), r"(?:^|[^\s`]|[;|&=$(<>]\s*)`[^`]{1,500}`"),
    ("command injection", ("sh",), r"sh\s+-c\b"),
    ("command injection", ("bin/",), r"/(?:usr/)?(?:local/)?s?bin/\S", _SPACE + ";|&'\"`("),
    ("command injection", ("cmd", "powershell"), r"cmd(?:\.exe)?\s*/[ck]\b|powershell\b"),
    ("command injection", ("()",), r"\(\s*\)\s*\{\s*:\s*;"),
    ("command injection", (";", "&", "|"), r"[;&|]\s*(?:/[\w.-]+){2,}"),
    ("command injection", (">",), r">\s*/(?:tmp|dev|etc|var)/"),
    ("command injection", ("uname", "ifconfig", "ipconfig", "netstat", "nslookup", "systeminfo", "certutil",
                           "bitsadmin", "wmic", "xp_cmdshell"),
     r"uname\s+-|ifconfig\b|ipconfig\b|netstat\s+-|nslookup\s|systeminfo\b|certutil\b|bitsadmin\b|wmic\b|"
     r"xp_cmdshell\b"),
    ("command injection", ("wget", "curl", "tftp", "lwp-download", "fetch"),
     r"(?:wget|curl|tftp|lwp-download|fetch)\s+(?:-\S+\s+)*(?:https?|ftp|tftp)://"),
    # cmd/PowerShell: %VAR% expansion, FOR/IF batch syntax, download cradles.
    ("Windows command injection", ("%",), r"%(?:[a-z_~][\w~:-]*%|%~?[a-z]\b)"),
    ("Windows command injection", ("for",), r"for\s+(?:/[dflr]\b|%)", _SPACE + "&|(@"),
    ("Windows command injection", ("if",), r"if\s+(?:/i\s+)?(?:not\s+)?(?:exist|errorlevel)\b", _SPACE + "&|(@"),
    ("Windows command injection", ("do",), r"do\s+@?(?:echo|dir|type|del|copy|cmd)\b", _SPACE + ")"),
    ("Windows command injection", ("invoke-", "iex", "iwr"),
     r"invoke-(?:webrequest|expression|restmethod)\b|iex\s*\(|iwr\s+https?:"),
    ("PHP code", ("$$", "$_"), r"\$\$\w|\$_(?:get|post|request|cookie|server|files|env|session)\b"),
    ("PHP code", ("o:",), r"o:\d+:\"[\w\\]+\":\d+:\{"),
    ("Java code", ("java", "processbuilder", "getruntime", "forname", "jndi", "ognl", "org.apache",
                   "transformer"),
     r"java\.(?:lang|io|net|nio|util|beans|rmi)\.[a-z]+|javax\.(?:script|naming|management)\b|"
     r"processbuilder\b|getruntime\s*\(|class\.forname\b|jndi:|ognl\b|"
     r"org\.apache\.commons\.collections|invokertransformer\b|chainedtransformer\b"),
]

# Function calls: a name directly followed by "(" (or, for the few that are only ever
# SQL, by blanks or an inline comment and "("), judged by which language calls it.
_NAME_CHARS = re.compile(r"[a-z0-9_.]*")
_JS_CALLS = frozenset("alert confirm prompt eval atob btoa settimeout setinterval function fetch "
                      "importscripts require unescape escape".split())
_JS_EMPTY_OK = frozenset("alert confirm prompt eval".split())
_SQL_CALLS = frozenset(
    "sleep benchmark pg_sleep load_file extractvalue updatexml char chr concat concat_ws group_concat ascii "
    "substring substr mid ord hex unhex cast convert version database user schema current_user system_user "
    "session_user randomblob sqlite_version name_const row elt make_set if iif ifnull nullif coalesce case "
    "exp floor rand count md5 sha1 unistr openrowset db_name lo_get lo_import lo_export xmltype pow length "
    "lower upper insert date".split())
_SQL_PREFIXES = ("pg_", "dbms_", "xp_", "sp_", "json_", "utl_inaddr.")
# "sleep (8h)" and "benchmark (2024)" are English; a breakout before them is sqli.py's.
_SQL_SPACED = frozenset("pg_sleep load_file extractvalue updatexml group_concat openrowset randomblob zeroblob".split())
_SQL_ARGUMENT = re.compile(r"['\"@(\d]|select\b|null\b|\w+\s*[(,)]|\)|\s*$")
_PHP_CALLS = frozenset(
    "eval assert system exec passthru shell_exec popen proc_open phpinfo base64_decode call_user_func "
    "call_user_func_array create_function file_get_contents file_put_contents fopen readfile include "
    "include_once require_once unserialize preg_replace str_rot13 gzinflate gzuncompress gzdecode "
    "bzdecompress pcntl_exec array_map array_filter usort ini_set putenv symlink chmod move_uploaded_file "
    "highlight_file show_source var_dump print_r".split())


def _call_violation(text: str) -> str | None:
    """The rule broken by the first suspicious call ``name(`` in ``text``, if any.

    Walks from each "(" backwards (the name is matched on the reversed text, so the work
    is linear: a forward regex for "name(" is quadratic on long runs of letters).
    """
    position = text.find("(")
    while position != -1:
        before = text[max(0, position - 64):position]
        stripped = before.rstrip()
        if stripped.endswith("*/") and "/*" in stripped:
            stripped = stripped[:stripped.rfind("/*")].rstrip()
        spaced = len(stripped) != len(before)
        full = _NAME_CHARS.match(stripped[::-1]).group()[::-1]
        if full and not full[0].isdigit() and full[0] != ".":
            name = full.rsplit(".", 1)[-1]
            after = position + 1
            if not spaced:
                if name in _JS_CALLS and (name in _JS_EMPTY_OK or text[after:after + 16].lstrip()[:1] != ")"):
                    return "script code"
                if (name in _SQL_CALLS or full.startswith(_SQL_PREFIXES)) and _SQL_ARGUMENT.match(text, after):
                    return "SQL function"
                if name in _PHP_CALLS or name.startswith("posix_"):
                    return "PHP code"
            elif name in _SQL_SPACED:
                return "SQL function"
        position = text.find("(", position + 1)
    return None


def _preceded(text: str, start: int, allowed: str) -> bool:
    if start == 0:
        return True
    if allowed == "line-start":
        line = text[:start].rsplit("\n", 1)[-1].rsplit("\r", 1)[-1]
        return not line.strip()
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
    """The form of ``value`` the rules look at; raises :class:`Violation` on bad encoding."""
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
        # ESAPI: an encoding inside an encoding is an attack, not a mistake.
        if layers > (0 if decoded else 1):
            raise Violation("double or mixed encoding")
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
    return text


def check(value: str, decoded: bool = True) -> Violation | None:
    """None if ``value`` is acceptable free text, else the :class:`Violation` it commits."""
    if SAFE.fullmatch(value):
        return None
    try:
        text = canonical(value, decoded)
    except Violation as violation:
        return violation
    text = text.lower()
    candidates = set()
    for trigger, indexes in _TRIGGER_LIST:
        if trigger in text:
            candidates.update(indexes)
    for index in sorted(candidates):  # in rule order, so the reported rule is stable
        name, _, pattern, preceded_by = _COMPILED[index]
        if _matches(pattern, text, preceded_by):
            return Violation(name)
    if "(" in text:
        rule = _call_violation(text)
        if rule is not None:
            return Violation(rule)
    # A quote (or a bare value) followed by SQL grammar: the class keyword rules miss.
    rule = sqli.breakout(text)
    if rule is not None:
        return Violation(rule)
    if "\t" in text or "\n" in text or "\r" in text:
        # Browsers drop tabs/newlines inside a URL scheme: "java\tscript:".
        if _SCRIPT_URL.search(_WHITESPACE.sub("", text)):
            return Violation("script URL")
    return None
