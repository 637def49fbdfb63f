"""The flagship stack under fuzz: raw environs in, checked responses out.

:class:`Flagship` loads ``examples/partner_api.ini`` with PasteDeploy (as ``wsgisec serve``
does) on a store of its own, registers a partner client with every scope, and holds its
secrets: client secret, access and refresh token, request token, signing key. A fuzzed
request is a raw WSGI environ (so it can carry what WebTest would normalise away); the
harness can sign it as that partner (RFC 9421 over the environ the layers will see), so
fuzzed requests get past token_auth and signed_requests to the allowlist, the escaping
layer and the legacy app.

:meth:`Flagship.call` runs one environ through ``wsgiref.validate.validator`` and asserts
the properties every response must have (:meth:`Flagship.check`):

* no exception escapes, and every response passes ``wsgiref.validate``;
* no 5xx unless the legacy app itself failed (raised, answered 5xx, or wrote output the
  escaping layer or the masker refused), and then a masked body with its incident id;
* bounded CPU time and response size;
* no secret (client secret, token, request token, signing key, this request's signature)
  in any response header, body or log record, and no raw markup payload echoed.

Hypothesis settings: the ``wsgisec-fuzz`` profile (derandomized, no example database, no
deadline), so CI runs the same examples every time. ``WSGISEC_FUZZ_EXAMPLES=N`` sets the
total number of examples over the fuzz tests (default 10 000) and lets Hypothesis pick
new ones at random (a failure prints the ``@reproduce_failure`` blob).
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import secrets
import time
import warnings
from collections import Counter
from wsgiref.validate import WSGIWarning, validator

from hypothesis import HealthCheck, settings

from wsgisec import credentials, httpsig, pipeline
from wsgisec.signed_requests import SignedRequests
from wsgisec.testing import partner_credentials
from wsgisec.token_auth import TokenAuth

EXAMPLES = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "examples")
TOTAL_EXAMPLES = int(os.environ.get("WSGISEC_FUZZ_EXAMPLES") or 10_000)

settings.register_profile(
    "wsgisec-fuzz", derandomize=not os.environ.get("WSGISEC_FUZZ_EXAMPLES"), database=None,
    deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
                           HealthCheck.large_base_example])


def fuzz_settings(share: float) -> settings:
    """The profile with ``share`` of :data:`TOTAL_EXAMPLES` examples."""
    return settings(settings.get_profile("wsgisec-fuzz"), max_examples=max(10, round(TOTAL_EXAMPLES * share)))


#: Per request: CPU seconds (of this thread, so a loaded machine does not make it fail)
#: and response bytes. The stack buffers at most 1 MB (max_buffer, max_scan_size).
MAX_CPU_SECONDS = 2.0
MAX_BODY = 1024 * 1024 + 64 * 1024
MAX_HEADER_BYTES = 16 * 1024

#: Markup that must never come back raw (the escaping layer's job, and every refusal's).
RAW_PAYLOADS = (b"<script>alert(1)</script>", b"<img src=x onerror=alert(1)>", b"<svg/onload=alert(1)>")

#: Event kinds of a 500 that the legacy app's own output caused: JSON/XML it concatenated
#: that does not parse or that a request value restructured, or a leaked SQL error.
LEGACY_OUTPUT_REFUSED = {"escaping.response-invalid", "escaping.structure-injection", "error_masker.leak-masked"}
ALL_SCOPES = ["items:read", "items:write", "orders:write", "items:export", "wsgisec:admin"]
COVERED = ["@method", "@authority", "@path", "@query", "content-digest", "x-request-token"]


class LegacyProbe:
    """Wraps the legacy app: did this request reach it, and did it fail?"""

    def __init__(self, app):
        self.app = app
        self.reached = self.failed = False

    def __call__(self, environ, start_response):
        self.reached = True

        def probing_start_response(status, headers, exc_info=None):
            if status[:1] == "5":
                self.failed = True
            return start_response(status, headers, exc_info)

        try:
            return self.app(environ, probing_start_response)
        except Exception:
            self.failed = True
            raise


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)


class Flagship:
    """The flagship on a temporary store, a partner's secrets, and the response checks."""

    def __init__(self, directory):
        url = "sqlite:///" + os.path.join(str(directory), "wsgisec.sqlite")
        self.app = pipeline.load(os.path.join(EXAMPLES, "partner_api.ini"), global_conf={"wsgisec_store": url})
        chain = pipeline.layers(self.app)
        self.probe = chain[-2].app = LegacyProbe(chain[-1])
        self.signed = pipeline.find_layer(self.app, SignedRequests)
        self.gate = self.signed.app = LegacyProbe(self.signed.app)  # passed token and signature
        self.token_auth = pipeline.find_layer(self.app, TokenAuth)
        self.store = self.token_auth.store
        self.client, self.client_secret = self.token_auth.registry.create("Fuzz", scopes=ALL_SCOPES)
        self.client_id = self.client["id"]
        found = partner_credentials(self.app, self.client_id)
        self.keyid, self.signing_key = found["keyid"], found["signing_key"]
        self.request_token = found["request_token"]
        self._issue_tokens()
        self.validated = validator(self.app)
        self.statuses = Counter()
        self.reached = self.authenticated = 0
        import flask_legacy.app as legacy  # examples/ is on sys.path (setup.cfg pythonpath)

        self._items, self._shipped = legacy.ITEMS, [dict(item) for item in legacy.ITEMS]

    # -- secrets -------------------------------------------------------------------

    def _issue_tokens(self):
        issued = self.token_auth.issue_token(self.client_id)
        self.access_token, self.refresh_token = issued["access_token"], issued["refresh_token"]

    def secrets(self) -> list[str]:
        """Every secret the fuzz holds (the signing key as issued and decoded)."""
        raw = base64.b64decode(self.signing_key)
        return [self.client_secret, self.access_token, self.refresh_token, self.request_token,
                self.signing_key, raw.hex(), base64.urlsafe_b64encode(raw).decode().rstrip("=")]

    def markers(self) -> dict:
        """What a fuzzed value may name with ``{access}``, ``{request}`` ...: the real secrets."""
        basic = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        return {"{access}": self.access_token, "{refresh}": self.refresh_token, "{request}": self.request_token,
                "{client}": self.client_id, "{secret}": self.client_secret, "{keyid}": self.keyid,
                "{basic}": basic}

    def fill(self, text: str) -> str:
        if "{" not in text:
            return text
        for marker, value in self.markers().items():
            text = text.replace(marker, value)
        return text

    def ensure_credentials(self):
        """Re-issue what a fuzzed request revoked (a token sent over plain HTTP, a revoke call)."""
        if self.store.get(credentials.TOKENS, credentials.digest(self.access_token)) is None:
            self._issue_tokens()
        try:
            self.signed.tokens.verify(self.request_token)
        except Exception:  # revoked or floored: a fresh one (RequestTokenError)
            self.request_token = self.signed.issue_request_token(self.client_id)[0]

    # -- requests ------------------------------------------------------------------

    def environ(self, method="GET", path="/api/items", query="", headers=None, body=b"",
                content_length="auto", terminated=False) -> dict:
        """A raw environ as a TLS-terminating proxy on 127.0.0.1 would have it forwarded."""
        environ = {"REQUEST_METHOD": method, "SCRIPT_NAME": "", "PATH_INFO": path, "QUERY_STRING": query,
                   "SERVER_NAME": "localhost", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
                   "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "localhost", "HTTP_X_FORWARDED_PROTO": "https",
                   "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body),
                   "wsgi.errors": io.StringIO(), "wsgi.multithread": False, "wsgi.multiprocess": False,
                   "wsgi.run_once": False}
        if content_length == "auto":
            content_length = str(len(body)) if body else None
        if content_length is not None:
            environ["CONTENT_LENGTH"] = content_length
        if terminated:
            environ["wsgi.input_terminated"] = True
        for key, value in (headers or {}).items():
            if value is None:
                environ.pop(key, None)
            else:
                environ[key] = self.fill(value)
        return environ

    def sign(self, environ, body: bytes, *, created=None, nonce=None) -> str | None:
        """Sign ``environ`` as the partner; returns the signature value (None: unsignable)."""
        self.ensure_credentials()
        environ["HTTP_AUTHORIZATION"] = "Bearer " + self.access_token
        environ["HTTP_X_REQUEST_TOKEN"] = self.request_token
        environ["HTTP_CONTENT_DIGEST"] = httpsig.content_digest(body)
        params = {"created": int(time.time()) if created is None else created, "keyid": self.keyid,
                  "nonce": nonce or secrets.token_urlsafe(16), "alg": httpsig.ALGORITHM}
        view = dict(environ)
        if view.get("HTTP_X_FORWARDED_PROTO", "").rsplit(",", 1)[-1].strip().lower() == "https":
            view["wsgi.url_scheme"] = "https"
        try:
            base = httpsig.signature_base_for(httpsig.environ_components(view), COVERED, params)
        except (httpsig.SignatureError, UnicodeError):
            return None  # no partner can sign this request (non-ASCII, CR/LF): sent unsigned
        value = base64.b64encode(httpsig.hmac_sha256(base64.b64decode(self.signing_key), base)).decode()
        environ["HTTP_SIGNATURE_INPUT"] = "sig1=" + httpsig.serialize_inner_list([(c, {}) for c in COVERED], params)
        environ["HTTP_SIGNATURE"] = f"sig1=:{value}:"
        return value

    def call(self, environ, *, signature: str | None = None):
        """Run ``environ`` through the validated stack; check and return (status, headers, body)."""
        self._items[:] = [dict(item) for item in self._shipped]  # the legacy app's list, as shipped
        self.probe.reached = self.probe.failed = self.gate.reached = False
        seen = {}

        def start_response(status, headers, exc_info=None):
            seen["status"], seen["headers"] = status, headers
            return lambda data: None

        handler = _Records()
        logger = logging.getLogger("wsgisec")
        logger.addHandler(handler)
        # The harness checks every record itself; thousands of them need not reach
        # pytest's capture (or the terminal) too.
        propagate, level, logger.propagate = logger.propagate, logger.level, False
        logger.setLevel(logging.DEBUG)
        started = time.thread_time()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", WSGIWarning)  # unusual methods are the point
                iterable = self.validated(environ, start_response)
                try:
                    body = b"".join(iterable)
                finally:
                    close = getattr(iterable, "close", None)
                    if close is not None:
                        close()
        finally:
            logger.removeHandler(handler)
            logger.propagate = propagate
            logger.setLevel(level)
        cpu = time.thread_time() - started
        self.statuses[seen["status"][:3]] += 1
        self.reached += self.probe.reached
        self.authenticated += self.gate.reached
        self.check(environ, seen["status"], seen["headers"], body, cpu, handler.records,
                   [s for s in [signature] if s])
        return seen["status"], seen["headers"], body

    # -- the properties --------------------------------------------------------------

    def check(self, environ, status, headers, body, cpu, records, signatures):
        code = int(status[:3])
        where = f"{environ['REQUEST_METHOD']} {environ['PATH_INFO']!r} -> {status}"
        assert cpu < MAX_CPU_SECONDS, f"{where}: {cpu:.2f} s of CPU"
        assert len(body) <= MAX_BODY, f"{where}: {len(body)} bytes"
        # A redirect's Location re-encodes the request's path and query (at most 3 bytes each).
        echo = 3 * (len(environ["PATH_INFO"]) + len(environ.get("QUERY_STRING", "")))
        assert sum(len(k) + len(v) for k, v in headers) <= MAX_HEADER_BYTES + echo, f"{where}: headers too large"
        if code >= 500:
            kinds = {json.loads(r.getMessage()).get("kind", "") for r in records
                     if r.name.startswith("wsgisec.events.") and r.getMessage().startswith("{")}
            legacy_output_refused = bool(kinds & LEGACY_OUTPUT_REFUSED)
            assert code == 500 and (self.probe.failed or legacy_output_refused), \
                f"{where}: a 5xx from our code ({sorted(kinds)})"
            incident = dict(headers).get("X-Incident-Id")
            assert incident, f"{where}: masked without an incident id"
            if environ["REQUEST_METHOD"] != "HEAD":
                assert incident.encode() in body, f"{where}: masked body without its incident id"
            assert b"Traceback" not in body and b"Error:" not in body, f"{where}: unmasked error"
        wire = "\n".join(f"{k}: {v}" for k, v in headers).encode("latin-1") + b"\n" + body
        logged = "\n".join(_text(record) for record in records)
        for secret in self.secrets() + signatures:
            assert secret.encode() not in wire, f"{where}: a secret in the response"
            assert secret not in logged, f"{where}: a secret in the log"
        for payload in RAW_PAYLOADS:  # neither the stack nor the legacy app writes them itself
            assert payload not in wire, f"{where}: a raw payload echoed: {payload!r}"


def _text(record) -> str:
    text = record.getMessage()
    if record.exc_info:
        text += logging.Formatter().formatException(record.exc_info)
    return text


def reached_report(flagship) -> str:
    return (f"{flagship.authenticated} passed token_auth and signed_requests, {flagship.reached} "
            f"reached the legacy app; statuses {dict(sorted(flagship.statuses.items()))}")
