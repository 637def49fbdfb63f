"""Partner SDK: call a wsgisec-protected API with ``requests`` in a few lines.

:class:`PartnerAuth` is a ``requests.auth.AuthBase`` that, for every request:

1. gets an access token from the token endpoint (OAuth 2.0 client credentials, RFC 6749
   §4.4) and renews it *before* it expires (refresh token grant, §6, falling back to
   client credentials), and sends it as ``Authorization: Bearer``;
2. adds the request token (header ``X-Request-Token``) that the operator issued;
3. adds ``Content-Digest`` (RFC 9530, sha-256) and signs the request per RFC 9421 with
   ``hmac-sha256`` under the signing key the operator issued, covering ``@method``,
   ``@authority``, ``@path``, ``@query``, ``content-digest`` and the request token, with
   ``created``, ``keyid`` and a fresh ``nonce``.

Tokens are kept in memory (default) or in an :class:`EncryptedFileKeystore`: a file the
partner controls, encrypted with Fernet (AES-128-CBC + HMAC-SHA256, from
``cryptography``) under a key derived from a passphrase with scrypt. The client secret
itself is never written to disk: only access/refresh tokens are.

::

    import requests
    from wsgisec.partner import PartnerAuth

    auth = PartnerAuth(
        "https://api.example.com",
        client_id="c_0123456789abcdef", client_secret=os.environ["API_CLIENT_SECRET"],
        request_token=os.environ["API_REQUEST_TOKEN"],
        keyid="k_abc", signing_key=os.environ["API_SIGNING_KEY"],  # base64, as issued
        scope="items:read items:write")
    response = requests.post("https://api.example.com/items", json={"name": "x"}, auth=auth)

Without token_auth in front of the API, pass ``client_secret=None``: no access token is
fetched and requests are only signed.
"""

from __future__ import annotations

import base64
import email.utils
import json
import os
import secrets
import threading
import time

from . import httpsig

__all__ = ["PartnerAuth", "sign_headers", "MemoryKeystore", "EncryptedFileKeystore",
           "TokenError", "DEFAULT_COMPONENTS"]

DEFAULT_COMPONENTS = ("@method", "@authority", "@path", "@query")


class TokenError(Exception):
    """The token endpoint refused us (RFC 6749 §5.2).

    ``error``: the server's OAuth error code (``invalid_client``, ...), or
    ``invalid_response`` when the answer was not an OAuth document; ``error_description``:
    the server's human-readable text, if any; ``status``: the HTTP status. When the server
    answered with an RFC 9457 problem document instead (e.g. the https layer refusing plain
    HTTP), its ``detail`` is the description and ``reason`` the error.
    """

    def __init__(self, error: str, status: int | None = None, error_description: str | None = None):
        message = f"token endpoint refused the request: {error}"
        if error_description:
            message += f": {error_description}"
        super().__init__(f"{message} (HTTP {status})")
        self.error = error
        self.status = status
        self.error_description = error_description

    @classmethod
    def from_response(cls, status: int, document) -> "TokenError":
        if not isinstance(document, dict):
            document = {}
        error = document.get("error") or document.get("reason") or "invalid_response"
        description = document.get("error_description") or document.get("detail")
        # Server text, bounded: it is shown to people and may land in logs.
        return cls(str(error)[:100], status, str(description)[:300] if description else None)


def _key_bytes(signing_key) -> bytes:
    if isinstance(signing_key, bytes):
        return signing_key
    return base64.b64decode(signing_key, validate=True)


def sign_headers(method: str, url: str, headers, body: bytes | None, *, keyid: str, signing_key,
                 components=DEFAULT_COMPONENTS, label: str = "sig1", created: int | None = None,
                 nonce: str | None = None, use_nonce: bool = True, digest: bool = True,
                 extra_params: dict | None = None) -> dict:
    """The headers that sign this request: ``Content-Digest``, ``Signature-Input``, ``Signature``.

    ``headers`` are the request's headers (names any case). ``components`` lists what
    to cover; ``content-digest`` is added whenever a digest is sent, and the request
    token header is covered when present. ``signing_key`` is the base64 text (or raw
    bytes) the operator issued.
    """
    body = body or b""
    added = {}
    covered = list(components)
    lowered = {name.lower(): value for name, value in (headers.items() if hasattr(headers, "items") else headers)}
    if digest:
        added["Content-Digest"] = httpsig.content_digest(body)
        lowered["content-digest"] = added["Content-Digest"]
        if "content-digest" not in covered:
            covered.append("content-digest")
    if "x-request-token" in lowered and "x-request-token" not in covered:
        covered.append("x-request-token")
    params = {"created": int(time.time()) if created is None else int(created), "keyid": keyid}
    if use_nonce:
        params["nonce"] = nonce or secrets.token_urlsafe(16)
    params["alg"] = httpsig.ALGORITHM
    params.update(extra_params or {})
    components_view = httpsig.url_components(method, url, lowered)
    base = httpsig.signature_base_for(components_view, covered, params)
    signature = httpsig.hmac_sha256(_key_bytes(signing_key), base)
    added["Signature-Input"] = f"{label}=" + httpsig.serialize_inner_list([(c, {}) for c in covered], params)
    added["Signature"] = f"{label}=:" + base64.b64encode(signature).decode("ascii") + ":"
    return added


# -- keystores -------------------------------------------------------------------------

class MemoryKeystore:
    """Tokens in this process only (the default)."""

    def __init__(self):
        self._data = None

    def load(self) -> dict | None:
        return self._data

    def save(self, data: dict) -> None:
        self._data = dict(data)

    def clear(self) -> None:
        self._data = None


class EncryptedFileKeystore:
    """Access/refresh tokens in a file encrypted with Fernet under a passphrase.

    The key is derived with scrypt (n=2**15, r=8, p=1; RFC 7914) from the passphrase and
    a random salt stored beside the ciphertext; the file is created with mode 0600.
    Fernet authenticates the content, so a modified file is refused (``load`` returns
    None and tokens are fetched again). Never pass the client secret here: it is not
    stored, by design.
    """

    N, R, P = 2 ** 15, 8, 1

    def __init__(self, path: str, passphrase: str | bytes):
        try:
            from cryptography.fernet import Fernet  # noqa: F401
        except ImportError as error:  # pragma: no cover - cryptography is a dependency of the extra
            raise RuntimeError("EncryptedFileKeystore needs the cryptography package "
                               "(pip install wsgisec[partner])") from error
        if not passphrase or len(passphrase) < 12:
            raise ValueError("the keystore passphrase must be at least 12 characters")
        self.path = path
        self._passphrase = passphrase.encode("utf-8") if isinstance(passphrase, str) else passphrase

    def _fernet(self, salt: bytes):
        import hashlib

        from cryptography.fernet import Fernet

        key = hashlib.scrypt(self._passphrase, salt=salt, n=self.N, r=self.R, p=self.P,
                             maxmem=64 * 1024 * 1024, dklen=32)
        return Fernet(base64.urlsafe_b64encode(key))

    def load(self) -> dict | None:
        from cryptography.fernet import InvalidToken

        try:
            with open(self.path, "rb") as handle:
                document = json.loads(handle.read())
            salt = base64.b64decode(document["salt"])
            plain = self._fernet(salt).decrypt(document["data"].encode("ascii"))
            return json.loads(plain)
        except (OSError, ValueError, KeyError, TypeError, InvalidToken):
            return None

    def save(self, data: dict) -> None:
        salt = os.urandom(16)
        token = self._fernet(salt).encrypt(json.dumps(data).encode("utf-8"))
        document = json.dumps({"v": 1, "kdf": "scrypt", "salt": base64.b64encode(salt).decode("ascii"),
                               "data": token.decode("ascii")})
        tmp = f"{self.path}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(document)
        os.replace(tmp, self.path)

    def clear(self) -> None:
        try:
            os.remove(self.path)
        except FileNotFoundError:
            pass


# -- the requests auth class -----------------------------------------------------------

try:
    import requests as _requests

    _AuthBase = _requests.auth.AuthBase
except ImportError:  # pragma: no cover - requests is needed only by partners
    _requests = None
    _AuthBase = object


class _RetryLater(Exception):
    """A refusal that names when to try again (503 or 429 with ``Retry-After``)."""

    def __init__(self, error: TokenError, seconds: float):
        super().__init__(error)
        self.error, self.seconds = error, seconds


def _retry_after(response) -> float | None:
    """``Retry-After`` in seconds (RFC 9110 §10.2.3: delay-seconds or an HTTP-date)."""
    value = (response.headers.get("Retry-After") or "").strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment is None or moment.tzinfo is None:
        return None
    return max(0.0, moment.timestamp() - time.time())


class PartnerAuth(_AuthBase):
    """``requests`` auth for a wsgisec-protected API (see the module docstring).

    ``base_url``: the API root; the token endpoint is ``base_url + token_path``.
    ``renew_before``: seconds before expiry at which the access token is renewed.
    ``keystore``: :class:`MemoryKeystore` (default) or :class:`EncryptedFileKeystore`.
    ``session``: the ``requests.Session`` used for the token endpoint (mount an adapter on
    it to reach the API through a local TLS-terminating proxy, or set its ``verify``).
    ``headers``: extra headers sent with every token request and added (when absent) to
    every signed request, e.g. ``{"X-Forwarded-Proto": "https"}`` for a local proxy that
    the API trusts; they are not covered by the signature.
    ``token_retries``: how often a token request answered 503 or 429 with ``Retry-After``
    (RFC 9110 §10.2.3; the token endpoint's hashing bound, a throttle) is sent again,
    after the wait it names if that is at most ``max_retry_wait`` seconds; otherwise
    :class:`TokenError` with the server's answer.
    """

    def __init__(self, base_url: str, *, client_id: str, client_secret: str | None = None,
                 request_token: str | None = None, keyid: str, signing_key, scope: str | None = None,
                 token_path: str = "/oauth/token", request_token_header: str = "X-Request-Token",
                 renew_before: int = 60, keystore=None, session=None, components=DEFAULT_COMPONENTS,
                 headers=None, token_retries=2, max_retry_wait=10.0, clock=time.time, sleep=time.sleep):
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self._client_secret = client_secret
        self.request_token = request_token
        self.keyid = keyid
        self._signing_key = _key_bytes(signing_key)
        self.scope = scope
        self.token_url = self.base_url + token_path
        self.request_token_header = request_token_header
        self.renew_before = renew_before
        self.keystore = keystore if keystore is not None else MemoryKeystore()
        self.session = session
        self.headers = dict(headers or {})
        self.components = tuple(components)
        self.clock = clock
        self.token_retries = max(0, int(token_retries))
        self.max_retry_wait = float(max_retry_wait)
        self._sleep = sleep
        self._lock = threading.Lock()

    def __repr__(self):  # never show secrets
        return f"<PartnerAuth {self.client_id} keyid={self.keyid} {self.base_url}>"

    # tokens

    def access_token(self) -> str | None:
        """A valid access token, fetched or renewed when needed (None without a secret)."""
        if self._client_secret is None:
            return None
        with self._lock:
            tokens = self.keystore.load()
            now = self.clock()
            if tokens and tokens.get("access_token") and tokens.get("expires_at", 0) - self.renew_before > now:
                return tokens["access_token"]
            fresh = None
            if tokens and tokens.get("refresh_token"):
                try:
                    fresh = self._token_request({"grant_type": "refresh_token",
                                                 "refresh_token": tokens["refresh_token"]})
                except TokenError as error:
                    if error.status == 429 or (error.status or 0) >= 500:
                        raise  # the server is busy or failing, not refusing the refresh token
                    fresh = None  # refresh token expired or revoked: start again
            if fresh is None:
                data = {"grant_type": "client_credentials"}
                if self.scope:
                    data["scope"] = self.scope
                fresh = self._token_request(data)
            self.keystore.save(fresh)
            return fresh["access_token"]

    def _token_request(self, data: dict) -> dict:
        for attempt in range(self.token_retries + 1):
            try:
                return self._token_request_once(data)
            except _RetryLater as later:
                if attempt == self.token_retries or later.seconds > self.max_retry_wait:
                    raise later.error from None  # asking again sooner than told would not help
                self._sleep(later.seconds)
        raise AssertionError("unreachable")  # pragma: no cover

    def _token_request_once(self, data: dict) -> dict:
        session = self.session or _requests.Session()
        try:
            request = _requests.Request("POST", self.token_url, data=data, headers=dict(self.headers),
                                        auth=(self.client_id, self._client_secret))
            prepared = session.prepare_request(request)
            self._sign(prepared)
            response = session.send(prepared, timeout=30)
            try:
                document = response.json()
            except ValueError:
                document = {}
        finally:
            if session is not self.session:
                session.close()
        if response.status_code != 200 or not isinstance(document, dict) or "access_token" not in document:
            error = TokenError.from_response(response.status_code, document)
            seconds = _retry_after(response) if response.status_code in (429, 503) else None
            if seconds is not None:
                raise _RetryLater(error, seconds)
            raise error
        expires_in = int(document.get("expires_in", 3600))
        return {"access_token": document["access_token"], "refresh_token": document.get("refresh_token"),
                "expires_at": self.clock() + expires_in, "scope": document.get("scope")}

    def forget_tokens(self) -> None:
        self.keystore.clear()

    # signing

    def _sign(self, request) -> None:
        if self.request_token:
            request.headers[self.request_token_header] = self.request_token
        body = request.body
        if body is None:
            body = b""
        elif isinstance(body, str):
            body = request.body = body.encode("utf-8")
        elif not isinstance(body, (bytes, bytearray)):
            raise ValueError("PartnerAuth signs buffered bodies only (bytes/str), not streams")
        headers = {name: value for name, value in request.headers.items()}
        components = list(self.components)
        token_name = self.request_token_header.lower()
        if self.request_token and token_name not in components:
            components.append(token_name)
        request.headers.update(sign_headers(request.method, request.url, headers, bytes(body),
                                            keyid=self.keyid, signing_key=self._signing_key,
                                            components=components,
                                            created=int(self.clock())))

    def __call__(self, request):
        for name, value in self.headers.items():
            request.headers.setdefault(name, value)
        token = self.access_token()
        if token is not None:
            request.headers["Authorization"] = f"Bearer {token}"
        self._sign(request)
        return request
