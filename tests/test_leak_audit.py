"""Secret-leak audit (issue 14): a whole partner life cycle against the served flagship,
and no secret in anything it leaves behind.

The flagship (examples/partner_api.ini, copied with its own store) is served by waitress
in a thread; the operator's verbs run in-process through ``wsgisec.cli.main``, so one
handler on the root logger at DEBUG sees every log record of the server, the layers and
the CLI. The life cycle: ``client create``, ``request-token``, ``signing-key``; a token,
its refresh, introspection; signed calls (with a session cookie and a
``Proxy-Authorization`` header); forgeries and a replay; credentials sent over plain HTTP;
a masked 500 and a leaked SQL error; a partner report quoting the incident id (pasting its
token as evidence); revocation; ``reports list``, ``show`` and ``export``.

Every secret it handles (client secret and its Basic value, every access and refresh
token, the request token, the signing key, every signature value, the cookie value, every
``Authorization``/``Proxy-Authorization`` value) must appear in none of: the log records
(messages and tracebacks), the store's events and everything else it keeps (only the
signing keys, which HMAC verification needs, are in clear there), the response headers
and bodies, the CLI output. Exceptions, by design: the response or verb that *delivers* a
secret (the token endpoint's answer, ``client create`` ...) carries that secret.
What the code records instead, and this test pins down: client ids (``c_...``), key ids
(``k_...``) and request-token ids (``rt_...``), all public.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import logging
import secrets
import shutil
import sqlite3

import pytest
import requests

from conftest import EXAMPLES, init_store
from wsgisec import cli, pipeline
from wsgisec.partner import sign_headers


#: The test's own HTTP client: urllib3 logs request lines at DEBUG, and the partner put a
#: token in one on purpose (the plain-HTTP query-token refusal). Not the server's log.
CLIENT_SIDE = ("urllib3", "requests", "charset_normalizer")


class Capture(logging.Handler):
    """Every record of the server and the CLI, formatted with its traceback."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines = []

    def emit(self, record):
        if not record.name.startswith(CLIENT_SIDE):
            self.lines.append(self.format(record))


class Audit:
    """The served flagship, the partner's secrets, and everything the run left behind."""

    def __init__(self, directory, server):
        self.ini = str(directory / "partner_api.ini")
        self.store_path = directory / "var" / "wsgisec.sqlite"
        self.server = server
        self.secrets: set[str] = set()
        self.seen: list[tuple[str, str, set]] = []  # (where, text, secrets it may deliver)

    def keep(self, *values):
        self.secrets.update(value for value in values if value)

    def cli(self, *args, delivers=()) -> str:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main([*args, "--config", self.ini])
        self.seen.append((f"wsgisec {' '.join(args)}", out.getvalue() + err.getvalue(), set(delivers)))
        assert code == 0, err.getvalue()
        return out.getvalue()

    def http(self, method, path, *, tls=True, headers=None, delivers=(), **kwargs):
        headers = dict(headers or {})
        if tls:
            headers["X-Forwarded-Proto"] = "https"  # the example's trusted TLS proxy on 127.0.0.1
        self.keep(headers.get("Authorization"), headers.get("Proxy-Authorization"))
        response = requests.request(method, self.server.url + path, headers=headers, timeout=30,
                                    allow_redirects=False, **kwargs)
        head = "\n".join(f"{name}: {value}" for name, value in response.headers.items())
        self.seen.append((f"{method} {path} -> {response.status_code}", head + "\n" + response.text,
                          set(delivers)))
        return response

    def signed(self, method, path, partner, *, body=b"", extra=None, tamper=None, nonce=None, **kwargs):
        """A partner call: bearer token, request token, Content-Digest, RFC 9421 signature."""
        headers = {"Authorization": f"Bearer {partner['access']}", "X-Request-Token": partner["request_token"],
                   "Cookie": f"session={partner['cookie']}", "Proxy-Authorization": partner["proxy"],
                   **(extra or {})}
        if body:
            headers["Content-Type"] = "application/json"
        url = f"https://127.0.0.1:{self.server.port}{path}"
        headers.update(sign_headers(method, url, headers, body, keyid=partner["keyid"],
                                    signing_key=partner["signing_key"], nonce=nonce,
                                    components=("@method", "@authority", "@path", "@query")))
        self.keep(headers["Signature"].split("=", 1)[1].strip(":"))
        return self.http(method, path, headers=headers, data=tamper if tamper is not None else body, **kwargs)

    def leftovers(self):
        """(where, text, delivered) for the store: events, and every kept value but keys."""
        with sqlite3.connect(self.store_path) as connection:
            for row in connection.execute("SELECT * FROM events"):
                yield "store events", json.dumps(row, default=str), set()
            for row in connection.execute("SELECT * FROM kv WHERE ns != 'signing_keys'"):
                yield f"store kv {row[0]}", json.dumps(row, default=str), set()


@pytest.fixture
def audit(tmp_path, wsgi_server):
    directory = tmp_path / "examples"
    shutil.copytree(EXAMPLES, directory, ignore=shutil.ignore_patterns("var", "__pycache__"))
    init_store(directory / "partner_api.ini")  # as an operator does first; verbs never create one
    capture = Capture()
    root = logging.getLogger()
    level = root.level
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    try:
        app = pipeline.load(str(directory / "partner_api.ini"))
        # As wsgisec serve runs it ([server:main]): waitress leaves X-Forwarded-* to the https layer.
        found = Audit(directory, wsgi_server(app, clear_untrusted_proxy_headers=False, ident=""))
        found.capture = capture
        yield found
    finally:
        root.removeHandler(capture)
        root.setLevel(level)


def basic(client_id, secret):
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def test_a_partner_life_cycle_leaves_no_secret_behind(audit):
    created = json.loads(audit.cli("client", "create", "--name", "Acme", "--scope", "items:read",
                                   "--scope", "items:write", "--permission", "introspect", "--json",
                                   delivers=("secret",)))
    client_id, secret = created["client_id"], created["client_secret"]
    auth = basic(client_id, secret)
    audit.keep(secret, auth.split()[1])
    audit.seen[-1] = audit.seen[-1][:2] + ({secret},)
    issued = json.loads(audit.cli("client", "request-token", client_id, "--json"))
    audit.seen[-1] = audit.seen[-1][:2] + ({issued["request_token"]},)
    key = json.loads(audit.cli("client", "signing-key", client_id, "--json"))
    audit.seen[-1] = audit.seen[-1][:2] + ({key["key"]},)
    audit.keep(issued["request_token"], key["key"], base64.b64decode(key["key"]).hex())

    def token(form):
        response = audit.http("POST", "/oauth/token", data=form, headers={"Authorization": auth})
        assert response.status_code == 200, response.text
        document = response.json()
        audit.keep(document["access_token"], document.get("refresh_token"))
        audit.seen[-1] = audit.seen[-1][:2] + ({document["access_token"], document.get("refresh_token")},)
        return document

    first = token({"grant_type": "client_credentials"})
    second = token({"grant_type": "refresh_token", "refresh_token": first["refresh_token"]})
    introspected = audit.http("POST", "/oauth/introspect", data={"token": second["access_token"]},
                              headers={"Authorization": auth})
    assert introspected.json()["active"] is True
    partner = {"access": second["access_token"], "request_token": issued["request_token"],
               "keyid": key["keyid"], "signing_key": key["key"], "cookie": secrets.token_urlsafe(24),
               "proxy": "Basic " + base64.b64encode(secrets.token_bytes(18)).decode()}
    audit.keep(partner["cookie"], partner["proxy"].split()[1])

    # Signed calls, then forgeries and a replay.
    assert audit.signed("GET", "/api/items?q=Wid", partner).status_code == 200
    assert audit.signed("POST", "/api/items", partner, body=b'{"name": "Sprocket"}').status_code == 201
    assert audit.signed("POST", "/api/items", partner, body=b'{"name": "A"}', tamper=b'{"name": "B"}').status_code == 401
    forged = dict(partner, signing_key=base64.b64encode(secrets.token_bytes(32)).decode())
    assert audit.signed("GET", "/api/items", forged).status_code == 401
    assert audit.signed("GET", "/api/items", dict(partner, request_token=partner["request_token"][:-2] + "xx")
                        ).status_code == 401
    nonce = secrets.token_urlsafe(16)
    assert audit.signed("GET", "/api/whoami", partner, nonce=nonce).status_code == 200
    assert audit.signed("GET", "/api/whoami", partner, nonce=nonce).json()["reason"] == "replayed"

    # A masked 500 and a masked SQL error; a partner report quoting the first.
    crash = audit.signed("GET", "/api/crash", partner)
    assert crash.status_code == 500
    incident = crash.json()["incident_id"]
    assert audit.signed("GET", "/api/lookup?name=O%27Brien", partner).status_code == 500
    report = json.dumps({"kind": "suspicious-error", "description": "GET /api/crash failed", "incident_id": incident,
                         "evidence": {"authorization": f"Bearer {partner['access']}",
                                      "note": f"sent Bearer {partner['access']}"}}).encode()
    assert audit.signed("POST", "/_wsgisec/reports", partner, body=report).status_code == 201

    # Credentials over plain HTTP: refused (and the token revoked), whatever the place.
    assert audit.http("GET", "/api/items", tls=False, headers={"Authorization": f"Bearer {partner['access']}",
                                                              "X-Request-Token": partner["request_token"]}
                      ).status_code == 403
    assert audit.http("POST", "/oauth/token", tls=False, data={"grant_type": "client_credentials"},
                      headers={"Authorization": auth}).status_code == 403
    assert audit.http("GET", f"/api/items?access_token={first['access_token']}", tls=False).status_code == 403
    assert audit.signed("GET", "/api/items", partner).status_code == 401  # revoked

    third = token({"grant_type": "client_credentials"})
    revoked = audit.http("POST", "/oauth/revoke", data={"token": third["refresh_token"]},
                         headers={"Authorization": auth})
    assert revoked.status_code == 200

    # The operator's side.
    listed = audit.cli("reports", "list", "--json", "--limit", "1000")
    assert incident in listed
    assert "ZeroDivisionError" in audit.cli("reports", "show", incident)
    audit.cli("reports", "show", incident, "--json")
    audit.cli("reports", "export", "--format", "csv")
    audit.cli("reports", "export")
    audit.cli("client", "list", "--json")

    # What the code records instead of secrets: public ids.
    logged = "\n".join(audit.capture.lines)
    assert client_id in logged and key["keyid"] in logged
    assert "Traceback" in logged  # the masked crash, for the operator
    assert issued["token_id"] not in logged  # not even the request token's public id
    # The scan sees real text: the delivering answers do hold what they deliver.
    assert any(second["access_token"] in text for _where, text, _delivered in audit.seen)

    places = [("log", logged, set())] + audit.seen + list(audit.leftovers())
    assert len(audit.secrets) >= 15
    leaks = [(where, _around(text, secret)) for where, text, delivered in places
             for secret in audit.secrets - delivered if secret in text]
    assert not leaks, f"secrets found in: {leaks}"


def _around(text: str, secret: str) -> str:
    """Where a secret was found, with the secret itself cut out of the report."""
    at = text.index(secret)
    return text[max(0, at - 160):at] + "<SECRET>" + text[at + len(secret):at + len(secret) + 40]
