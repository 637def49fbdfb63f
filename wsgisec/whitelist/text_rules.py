"""The rules of the free-text policy: (name, triggers, pattern[, preceded_by]) and calls.

Data for :mod:`wsgisec.whitelist.text_policy`, which canonicalises a value and runs these
on its lower-cased form. Each rule names the construct it refuses; the comments say why
the pattern is shaped as it is (what English it must let through). Sources per class:
OWASP Input Validation, XSS Filter Evasion, OS Command Injection Defense and LDAP
Injection Prevention Cheat Sheets; PayloadsAllTheThings (swisskyrepo); RFC 4515 (LDAP
filters); RFC 9112 section 2.2 (a bare CR or LF in a field value).
"""

from __future__ import annotations

import re

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
    ("HTML or script markup", ("<",),  # an autolink <https://...> is a link too
     r"<(?![\w.+'-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){0,8}>|(?:https?|ftp|mailto):[^\s<>\"'`]{1,2000}>)"
     r"[a-z!/?%]"),
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
    ("script code", ("`",), r"(?:alert|confirm|prompt|eval|settimeout|setinterval|fetch|import)\s*`"),
    ("script code", ("\\x",), r"\\x(?:3c|3e|22|27|60)"),  # JS hex escapes of < > " ' `
    ("template injection", ("{{",), r"\{\{.{0,200}?\}\}"),
    ("template injection", ("{%",), r"\{%.{0,200}?%\}"),
    ("template injection", ("#{",), r"#\{[^}]{0,200}\}"),
    ("template injection", ("@{[",), r"@\{\["),
    # Thymeleaf *{..}, Razor @(..)/@{..}, OGNL %{..}, Smarty {$..}/{php}, Freemarker [#..]/<#..>,
    # Velocity #set/#foreach; Python's object walk (__class__, __globals__...).
    ("template injection", ("*{", "%{", "@(", "@{"), r"[*%@]\{[^}]{1,200}\}|@\([^)]{1,200}\)"),
    ("template injection", ("{$", "{php", "{/", "[#", "<#", "[/#"),
     r"\{\$\w|\{/?php\}|\{/(?:if|foreach|section|literal)\}|[\[<]/?#(?:assign|list|if|include|macro|import|ftl)\b"),
    ("template injection", ("#",), r"#(?:set|foreach|if|elseif|macro|include|parse|evaluate|define)\s*\("),
    ("template injection", ("__",), r"__(?:class|mro|subclasses|globals|builtins|import|init|base|bases)__"),
    ("SQL comment after a quote", ("--", "#", "/*"),
     # MySQL, the one engine that quotes with backticks, needs a blank after "--": in
     # prose `--force` and `#channel` are markdown code.
     r"['\"](?:\)*(?:--|#|/\*)|`\)*(?:--(?:\s|$)|/\*)|\s*\)*\s*(?:--|#|/\*)\s*$|[^'\"`]{0,500}(?:--|#)\s*$)"),
    ("SQL comment after a quote", (";",), r";\s*(?:--|#|/\*)"),
    ("SQL inline comment", ("/*",), r"/\*(?:.{0,500}?\*/|!)"),
    ("SQL tautology", _Q + (")",),
     # The operand after "or" must be SQL's: a literal compared with something, a number,
     # "(", "@"... ('Quoted' and "double quoted", the 'OR' gate, 50' or 100' pass).
     r"['\"`)]\s*(?:or|and|xor|\|\||&&|div|like|rlike|regexp|having)\b\s*(?:"
     r"['\"`][^'\"`]{0,100}['\"`]\s*(?:[=<>!^|&+*/%-]|(?:like|is|in|between|regexp|rlike|glob|sounds)\b)"
     r"|['\"`]\s*$|['\"`]['\"`]|\d+\s*(?:[=<>!^|&+*/%-]|$|--|#|/\*|"
     r"(?:and|or|xor|like|is|in|between|regexp|rlike|glob|div|mod)\b)|[(@]|not\b|true\b|"
     r"false\b|null\b|\w+\s*(?:[=<>!]|like\b|is\b|in\b|between\b|regexp\b|rlike\b|sounds\b)"
     r"|\w+\s+not\s+(?:like|similar|in|between|regexp|rlike|glob)\b)"),
    ("SQL tautology", _Q,
     # An operator or LIKE quoted in prose ('Use "=" for assignment', "Use 'LIKE' for
     # patterns") is followed by words; a payload's quote is followed by its operand.
     r"['\"`]\s*(?:(?:=|<>|!=|<=>|\|\||\+|\^|\*|/|&|\|)\s*['\"`](?!\s+[a-z]{2,}\s+[a-z]{2,})"
     r"|(?:order\s+by|group\s+by|having|procedure\s+analyse|limit\s+\d)\b"
     r"|(?:not\s*null|notnull|isnull|is\s+(?:not\s+)?null|alter|div|mod|sounds\s+like)\b"
     r"|(?:not\s+)?(?:regexp|rlike|like|glob|similar\s+to|ilike)\s*(?:['\"`](?!\s+[a-z]{2,}\s+[a-z]{2,})|\d))"),
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
    ("NoSQL operator", ("$",), r"\$(?:where|ne|gt|gte|lt|lte|regex|expr|function|nin|in|exists|elemmatch|accumulator|or|and|nor|not|"
     r"eq|all|size|type|mod|text|jsonschema|lookup|merge|out)\b",
     _SPACE + "\"'{,["),
    # Server-side JavaScript (MongoDB $where, mapReduce): a quote then JS, or JS alone.
    ("NoSQL JavaScript", ("return",), r"return\s+(?:true|false|this\b|1\b|''|\"\")", _SPACE + ";{'\""),
    ("NoSQL JavaScript", ("this.",), r"this\.\w+\s*(?:==|!=|\.\s*(?:match|length)|\[)"),
    ("NoSQL JavaScript", ("db.",), r"db\.\w+(?:\.\w+)?\s*\(", _SPACE + ";'\"("),
    ("NoSQL JavaScript", ("while", "mapreduce", "emit(", "function"),
     r"while\s*\(\s*(?:true|1)\s*\)|mapreduce\s*\(|emit\s*\(|function\s*\(\s*\)\s*\{"),
    ("NoSQL JavaScript", _Q, r"['\"]\s*(?:\|\||&&|;)[^'\"]{0,100}(?:==|!=|//|\breturn\b|\bvar\b)"),
    # LDAP filters (RFC 4515): closing the filter and opening another, or a group.
    ("LDAP filter injection", (")(", ") (", "(|", "(&", "(!", "( |", "( &", "( !"),
     r"\)\s*\(\s*(?:[|&!]|\(|[\w.;-]{1,64}\s*[~<>]?=)|\(\s*[|&!]\s*\(|\(\s*[&|]\s*\)"),
    ("LDAP filter injection", ("*",), r"\*\s*\)+\s*(?:\(|$|%00|\x00)"),
    ("LDAP filter injection", ("(",),
     r"\(\s*(?:objectclass|uid|cn|sn|mail|userpassword|samaccountname|ou|dc|givenname|memberof|"
     r"objectcategory|distinguishedname|member|displayname)\s*[~<>]?="),
    # A CR or LF then a header line or a status line: response splitting (RFC 9112 2.2).
    ("header injection", ("\n", "\r"),
     r"[\r\n][\t ]*(?:set-cookie2?|content-[a-z-]+|refresh|access-control-[a-z-]+|transfer-encoding|"
     r"cache-control|link|host|cookie|strict-transport-security|last-modified|www-authenticate|"
     r"referrer-policy|x-[a-z0-9-]+|location\s*:\s*(?:[a-z]+:|/)|http/\d)\s*[:/ ]"),
    ("header injection", ("\u560a", "\u560d"), r"[\u560a\u560d][\w-]{1,64}\s*:"),
    ("session fixation", ("cookie", "expires", "sessid", "session"),
     r"\.cookie\s*[;=]|set-cookie\s*:|;\s*expires\s*=|(?:jsessionid|phpsessid|aspsessionid\w*|phpsession)\b"),
    ("path traversal", ("..",), r"\.{2,16}[\\/]|(?<!\.)\.\.$", "\\/=:;,'\"" + _SPACE),
    ("path traversal", ("/etc/",), r"/etc/(?:passwd|shadow|hosts|group|issue)"),
    ("path traversal", (":\\",), r"[a-z]:\\+(?:windows|winnt|boot\.ini|inetpub)"),
    ("path traversal", ("/proc/", "/sys/"), r"/(?:proc|sys)/[a-z0-9]"),
    ("path traversal", ("win.ini", "boot.ini"), r"(?:win|boot)\.ini\b"),
    ("path traversal", ("://",), r"(?:file|php|phar|zip|expect|glob|gopher|dict|ldap|jar|netdoc|data|ssh2\.\w+)://"),
    ("path traversal", ("web-inf", "meta-inf", "php.ini", "httpd.conf", "web.config", "/var/log/"),
     r"(?:web|meta)-inf\b|php\.ini\b|httpd\.conf\b|web\.config\b|/var/log/(?:apache2?|httpd|nginx)/"),
    ("path traversal", ("\\",), r"^\\\\[\w.$-]+\\"),  # a UNC path \\host\share
    ("path traversal", ("id_",), r"id_(?:rsa|dsa|ecdsa|ed25519)\b"),
    ("path traversal", (".ssh", ".aws", ".git", ".env", ".ht", ".bash_history", ".docker", ".kube", ".npmrc",
                        ".netrc"),
     r"\.(?:ssh|aws|git|env|htaccess|htpasswd|bash_history|docker|kube|npmrc|netrc)\b", "/"),
    ("command injection", (";", "|"),
     r"[;|]\s*(?:/(?:usr/)?(?:local/)?s?bin/)?(?:" + _SHELL_COMMANDS + r")"
     r"(?:\s+[-/~.$'\"\\\d]|\s*[;|&`>]|\s*$)"),
    ("command injection", ("&&", "$("),
     r"(?:&&|\$\()\s*(?:/(?:usr/)?(?:local/)?s?bin/)?(?:" + _SHELL_COMMANDS + r")"
     r"(?:\s+[-/~.$'\"\\]|\s*[;|&`>]|\s*$)"),
    ("command injection", ("|",), r"\|\s*(?:" + _SHELL_COMMANDS + r")\b"),
    # At the start of the value or of a line, a command word is also an English word
    # ("more", "time", "head"): only an option or an absolute path makes it a command.
    ("command injection", (" -", " /", "\t-", "\t/", "\n"),
     r"(?:/(?:usr/)?(?:local/)?s?bin/)?(?:" + _SHELL_COMMANDS + r")\s+(?:--?[a-z]|/[a-z])", "new-line"),
    ("command injection", ("$",), r"\$(?:\(|\{|[a-z_]+\s*\)|[a-z_]\w*\s+-c\b)"),
    # Command substitution. A markdown code span inside prose ("run `git status` first")
    # is text; a span at the start of the value, glued to a word or after a
    # shell metacharacter is how a payload reaches a shell ("`id`", "x;`id`", "a=`id`").
    ("command injection", ("`",),
     r"(?:^|[^\s`]|[;|&=$(<>]\s*)`\s*(?:/[\w/.-]*|(?:" + _SHELL_COMMANDS + r")\b|[^`]{0,500}[;|&$<>])[^`]{0,500}`"),
    # Windows chains with a single "&": "& whoami", "& ping -n 10 ..." ("Tom & Jerry" passes).
    ("command injection", ("&",),
     r"&\s*(?:id|whoami|dir|net|ping|ipconfig|systeminfo|type|cmd|powershell|cat|ls|nc|curl|wget|bash|sh|"
     r"uname|echo|sleep|timeout|tasklist|ver|hostname|nslookup|certutil|set|del|copy|start|taskkill)"
     r"(?:\s*$|\s*[&|;>]|\s+[-/\\~.$%\d]|\s+\w+\s*$)"),
    # A command alone on a new line; process substitution <(..) >(..); export after ";".
    ("command injection", ("\n", "\r"), r"[\r\n]\s*(?:" + _SHELL_COMMANDS + r")\s*(?:$|[\r\n;|&])"),
    ("command injection", ("<(", ">("), r"[<>]\(\s*[\w/$]"),
    ("command injection", ("export", "env"), r"[;|&]\s*(?:export|env)\b"),
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


