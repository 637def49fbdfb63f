"""A trusted, signed token with every request: partner request signing and CSRF defence.

Practice 4 (forged and replayed requests, CSRF). Only partner applications we trust may
act, and a request an attacker captured, altered or forged is refused. A partner request
must carry:

* a **request token** (header ``X-Request-Token``): an itsdangerous-signed token we issued
  to the client (``wsgisec client request-token ID``) that binds the client id, the id
  of the key that signed it and its issue time (:mod:`wsgisec.signed_requests.request_tokens`). It
  expires after ``request_token_max_age`` and can be revoked by id;
* an **HTTP message signature** (RFC 9421, ``Signature-Input`` + ``Signature``) made with
  ``hmac-sha256`` under a key we issued to that client (``wsgisec client signing-key
  ID``), covering at least ``required_components`` and carrying ``required_params``
  (``created``, ``keyid``, ``nonce``);
* a ``Content-Digest`` (RFC 9530, sha-256 or sha-512) that matches the body, when the
  request has a body.

Refusals are ``401`` problem responses whose ``reason`` member names the problem and whose
``detail`` says what to fix where that is no secret (the component not covered, how far
``created`` is from our clock, a used nonce, an unknown keyid), with an incident id and
never the expected signature or the signature base; each emits one event of the same
name:

==================== ==============================================================
``signature-missing`` no request token, no ``Signature``/``Signature-Input``, or the
                      configured label is absent
``signature-invalid`` malformed or wrong signature or token, a required component or
                      parameter not covered, another algorithm than hmac-sha256
``digest-mismatch``   the body does not match its ``Content-Digest`` (or no digest
                      we can check was sent for a body)
``expired``           ``created`` further than ``max_clock_skew`` from our clock,
                      ``expires`` passed, or a request token older than its max age
``replayed``          the (keyid, nonce) pair was already seen within the window
``unknown-key``       unknown or retired ``keyid``, a key of another client, a revoked
                      request token, one the store has no record of (minted offline)
                      or issued before the client's tokens were all revoked, or a
                      token of another client than the bearer token
==================== ==============================================================

Components (RFC 9421 §2.2.2, §2.2.5): ``@target-uri`` covers ``@scheme``, ``@authority``,
``@path`` and ``@query``; ``@request-target`` covers ``@path`` and ``@query``. Either
satisfies those entries of ``required_components`` (requests-http-signature signs
``@method @authority @target-uri`` by default). The scheme and authority are the ones
the server reconstructs (RFC 9110 §7.1): behind a trusted TLS proxy, ``https``.

The request as the partner sent it: a header a layer outside this one removed (token_auth
removes ``Authorization``) is read from ``environ["wsgisec.orig_headers"]``, so a
signature covering it still verifies; the app never sees it.

Content-Digest is required only when the request has content (``Content-Length`` > 0 or
a chunked body). RFC 9530 §2 defines the digest of empty content, but RFC 9421 §7.2.8
asks for digests to protect *content*; a request without content has nothing to
protect beyond the covered method, authority, path and query, and many RFC 9421 clients
send no digest on a GET. When only ``wsgi.input_terminated`` says a length-less body may
follow (waitress sets it on every request), the input is read (bounded) to find out.
A ``Content-Digest`` that is sent is always checked, covered or not. The body is read
(bounded by ``max_body_size``, 413 beyond) only when a digest must be checked, and stays
readable for the app.

Replay: the window is ``created`` +/- ``max_clock_skew``; each (keyid, nonce) is added
to the store with ``add`` (atomic across workers: SQLite ``INSERT`` / Redis ``SET NX``)
and a TTL of twice the skew, so a nonce replayed on any worker within the window is
refused. The nonce is consumed only after the signature verified, so nobody can burn a
partner's nonces. A store that lost its nonces (a restore, a restart without
persistence) cannot reopen the window: :mod:`~wsgisec.signed_requests.epoch` keeps a
nonce epoch in the store and refuses (``expired``) signatures created before it, with
one critical ``nonce-epoch-reset`` event when it had to start a new one.

With token_auth in the stack (it sets ``environ["wsgisec.client"]``), the request
token and the signing key must belong to that same client. Alone, this layer sets
``wsgisec.client`` (``{"id": ...}``) and ``REMOTE_USER`` itself. The verified facts are in
``environ["wsgisec.signed_requests"]`` (client id, keyid, token id).

Browsers: a request that carries none of the partner credentials (no ``Authorization``,
no ``Signature``/``Signature-Input``, no request token) is handed, when ``browser_csrf``
is on, to :class:`wsgisec.csrf.BrowserCSRF` (double-submit cookie, Origin and
Sec-Fetch-Site checks, token injected into the app's HTML forms); its ``csrf_*``
settings are accepted here too. With ``browser_csrf`` off such requests get
``signature-missing``.

Keys: ``secret_keys`` sign request tokens (and the browser CSRF tokens), **oldest first:
the last key signs, every listed key is accepted** (itsdangerous' key list and
STYLE.md; the issue's "first signs" wording was decided against for consistency). Per
client ``hmac-sha256`` signing keys live in the store (namespace ``signing_keys``);
issuing a new one gives the older keys of that client a grace period (``--grace``) after
which they are refused.

ini::

    [filter:signed_requests]
    use = egg:wsgisec#signed_requests
    get store = wsgisec_store
    # oldest first: the last key signs new tokens, every listed key is accepted
    secret_keys = env:WSGISEC_REQUEST_TOKEN_KEY_OLD env:WSGISEC_REQUEST_TOKEN_KEY
    max_clock_skew = 5m
    exempt_paths = /healthz

Python::

    app = SignedRequests(app, secret_keys=[Secret(key)], store="sqlite:////srv/wsgisec.sqlite")

Settings (ini name, default):

``secret_keys`` (none; required)
    ``env:NAME``/``file:PATH`` secrets, oldest first, that sign request tokens.
``store`` (``wsgisec.sqlite`` beside the ini file)
    Signing keys, used nonces, revoked request tokens, events.
``request_token_header`` (X-Request-Token)
    Header carrying the request token (the https layer treats it as a credential).
``require_request_token`` (true)
    Refuse partner requests without a valid request token.
``request_token_max_age`` (90d)
    How long a request token stays valid after it was issued.
``require_signature`` (true)
    Refuse partner requests without a valid RFC 9421 signature.
``required_components`` (@method @authority @path @query content-digest)
    Components every signature must cover; ``content-digest`` only when there is a body.
``required_params`` (created keyid nonce)
    Signature parameters every signature must carry (``keyid`` is always needed).
``max_clock_skew`` (5m)
    Largest accepted difference between ``created`` and our clock; also the replay window.
``max_body_size`` (1MB)
    Largest body read to check its Content-Digest (413 beyond).
``signature_label`` (empty: the first signature)
    Verify the signature with this label (e.g. ``sig1``) instead of the first one.
``exempt_paths`` (none)
    Path prefixes served without any check (``/healthz``).
``browser_csrf`` (true)
    Hand requests without partner credentials to the browser CSRF defence.
``csrf_*``
    Settings of :class:`wsgisec.csrf.BrowserCSRF`, documented there.
"""

from __future__ import annotations

import re
import time

from .. import httpsig, settings
from ..credentials import SIGNING_KEYS
from ..layer import Layer, layer_factory
from ..settings import ConfigurationError
from ..store import StoreUnavailable, coerce as coerce_store
from ..wsgi import BodyTooLarge
from .keys import issue_signing_key, signing_keys_of
from .refusals import Refusals
from .request_tokens import RequestTokens
from .verify import (BODY_TOO_LARGE, DIGEST_MISMATCH, EXPIRED, NONCES, REASONS, REPLAYED,
                     SIGNATURE_INVALID, SIGNATURE_MISSING, UNKNOWN_KEY, Reject, RequestVerifier)

# The module layout (issue 9): this layer and its settings here; the checks of one
# request in .verify; the answers to a refused request in .refusals; request tokens in .request_tokens; signing keys in .keys; the CLI
# verbs in .cli. RFC 9421/9530 primitives stay in wsgisec.httpsig, outside this package:
# wsgisec.partner and wsgisec.testing import them, and importing anything inside
# wsgisec.signed_requests runs this module, which loads WebOb and PasteDeploy.
__all__ = ["SignedRequests", "SETTINGS", "filter_factory", "issue_signing_key", "signing_keys_of",
           "SIGNING_KEYS", "NONCES", "REASONS", "SIGNATURE_MISSING", "SIGNATURE_INVALID",
           "DIGEST_MISMATCH", "EXPIRED", "REPLAYED", "UNKNOWN_KEY", "BODY_TOO_LARGE"]

#: Store namespace of token_auth's clients (NONCES, of used nonces, is in .verify).

_PARAMS = frozenset({"created", "expires", "keyid", "nonce", "alg", "tag"})
_HEADER_NAME = re.compile(r"^[A-Za-z0-9-]+$")
_COMPONENT = re.compile(r"^(@[a-z-]+|[a-z0-9-]+)$")
#: Marker inside the development key committed under examples/ (``wsgisec check`` warns).
DEVELOPMENT_KEY_MARKER = "DEVELOPMENT-ONLY"


def _header_name(text: str) -> str:
    name = text.strip()
    if not _HEADER_NAME.match(name):
        raise ValueError("an HTTP header name such as X-Request-Token")
    return name


def _label(text: str) -> str:
    label = text.strip()
    if label and not re.match(r"^[a-z*][a-z0-9_\-.*]*$", label):
        raise ValueError("a signature label such as sig1 (lower case), or nothing")
    return label


SETTINGS = {
    "secret_keys": (settings.optional(settings.secret_list), None),
    "store": (settings.optional(settings.store_url), None),
    "request_token_header": (_header_name, "X-Request-Token"),
    "require_request_token": (settings.boolean, "true"),
    "request_token_max_age": (settings.duration, "90d"),
    "require_signature": (settings.boolean, "true"),
    "required_components": (settings.words, "@method @authority @path @query content-digest"),
    "required_params": (settings.words, "created keyid nonce"),
    "max_clock_skew": (settings.duration, "5m"),
    "max_body_size": (settings.size, "1MB"),
    "signature_label": (_label, ""),
    "exempt_paths": (settings.path_prefixes, ""),
    "browser_csrf": (settings.boolean, "true"),
}


class SignedRequests(Layer):
    """Verify request tokens and RFC 9421 signatures (see the module docstring)."""

    wsgisec_layer = "signed_requests"

    def __init__(self, app, *, secret_keys=(), store=None, request_token_header="X-Request-Token",
                 require_request_token=True, request_token_max_age=90 * 86400,
                 require_signature=True,
                 required_components=("@method", "@authority", "@path", "@query", "content-digest"),
                 required_params=("created", "keyid", "nonce"), max_clock_skew=300,
                 max_body_size=1024 * 1024, signature_label="", exempt_paths=(), browser_csrf=True,
                 clock=time.time, **csrf_kwargs):
        self.app = app
        secret_keys = tuple(secret_keys or ())
        for name in required_components:
            if not _COMPONENT.match(name) or (name.startswith("@") and name not in httpsig.DERIVED_COMPONENTS):
                raise ConfigurationError(
                    f"required_components: {name!r} is not supported; use derived components "
                    f"({' '.join(sorted(httpsig.DERIVED_COMPONENTS))}) or lower-case header names")
        unknown = set(required_params) - _PARAMS
        if unknown:
            raise ConfigurationError(f"required_params: unknown {', '.join(sorted(unknown))}; "
                                     f"known: {' '.join(sorted(_PARAMS))}")
        if require_signature and "keyid" not in required_params:
            raise ConfigurationError("required_params must include keyid: it names the signing key")
        if require_request_token and not secret_keys:
            raise ConfigurationError(
                "secret_keys is required to verify request tokens: write "
                "secret_keys = env:WSGISEC_REQUEST_TOKEN_KEY (32 random bytes, e.g. "
                "python -c 'import secrets; print(secrets.token_urlsafe(32))')")
        if (require_signature or require_request_token) and store is None:
            raise ConfigurationError("store is required (signing keys, nonces, revoked tokens); "
                                     "write get store = wsgisec_store")
        if max_clock_skew <= 0:
            raise ConfigurationError("max_clock_skew must be more than 0s")
        unknown_kw = [key for key in csrf_kwargs if not key.startswith("csrf_")]
        if unknown_kw:
            raise TypeError(f"unexpected keyword arguments: {', '.join(sorted(unknown_kw))}")

        self.store = coerce_store(store)
        self.secret_keys = secret_keys
        self.clock = clock
        self.request_token_header = request_token_header
        self.token_key = "HTTP_" + request_token_header.upper().replace("-", "_")
        self.require_request_token = require_request_token
        self.require_signature = require_signature
        self.required_components = tuple(required_components)
        self.required_params = tuple(required_params)
        self.max_clock_skew = int(max_clock_skew)
        self.max_body_size = int(max_body_size)
        self.signature_label = signature_label
        self.exempt_paths = tuple(exempt_paths)
        self.tokens = (RequestTokens(secret_keys, max_age=request_token_max_age, store=self.store,
                                     clock=clock) if secret_keys else None)
        # The checks of one request (.verify), configured once from the same typed values.
        self.verifier = RequestVerifier(
            store=self.store, tokens=self.tokens, request_token_header=request_token_header,
            require_request_token=require_request_token, require_signature=require_signature,
            required_components=self.required_components, required_params=self.required_params,
            max_clock_skew=self.max_clock_skew, max_body_size=self.max_body_size,
            signature_label=signature_label, clock=clock)
        self.refusals = Refusals(store=self.store, required_components=self.required_components,
                                 required_params=self.required_params, signature_label=signature_label)

        self.browser = None
        if browser_csrf:
            try:
                from .csrf import BrowserCSRF
            except ImportError:
                raise ConfigurationError(
                    "browser_csrf = true needs wsgisec.csrf, which this installation lacks; "
                    "set browser_csrf = false to refuse browser requests instead") from None
            self.browser = BrowserCSRF(app, secret_keys=secret_keys, store=self.store, clock=clock,
                                       **csrf_kwargs)
        elif csrf_kwargs:
            raise ConfigurationError(f"{', '.join(sorted(csrf_kwargs))} need browser_csrf = true")

        self.settings = {
            "secret_keys": list(secret_keys), "store": getattr(self.store, "url", None),
            "request_token_header": request_token_header,
            "require_request_token": require_request_token,
            "request_token_max_age": int(request_token_max_age),
            "require_signature": require_signature,
            "required_components": list(self.required_components),
            "required_params": list(self.required_params),
            "max_clock_skew": self.max_clock_skew, "max_body_size": self.max_body_size,
            "signature_label": signature_label, "exempt_paths": list(self.exempt_paths),
            "browser_csrf": browser_csrf,
        }
        if self.browser is not None:
            self.settings.update({key: value for key, value in getattr(self.browser, "settings", {}).items()
                                  if key.startswith("csrf_")})

    def warnings(self):
        found = []
        if not self.require_signature:
            found.append("require_signature is off: a captured request can be altered and replayed")
        if not self.require_request_token:
            found.append("require_request_token is off: any holder of a signing key is trusted")
        if self.require_signature:
            if "nonce" not in self.required_params:
                found.append("nonce is not a required parameter: signed requests can be replayed "
                             f"within max_clock_skew ({self.max_clock_skew}s)")
            if "created" not in self.required_params:
                found.append("created is not a required parameter: a signature never expires")
            missing = [name for name in ("@method", "@authority", "@path", "@query", "content-digest")
                       if not httpsig.is_covered(name, self.required_components)]
            if missing:
                found.append("required_components does not cover " + " ".join(missing)
                             + ": an attacker can change them without breaking the signature")
        if self.max_clock_skew > 900:
            found.append(f"max_clock_skew is {self.max_clock_skew}s: signatures stay usable long "
                         "after a partner made them; 5m is advised")
        if any(key.reveal().startswith(DEVELOPMENT_KEY_MARKER) for key in self.secret_keys
               if hasattr(key, "reveal")):
            found.append("secret_keys uses the development key committed under examples/: anyone "
                         "can forge request tokens; use env:NAME with a fresh random key")
        if self.browser is not None and hasattr(self.browser, "warnings"):
            found.extend(self.browser.warnings())
        return found

    # -- operator actions (CLI and Python) -------------------------------------------

    def issue_request_token(self, client_id: str) -> tuple[str, dict]:
        """A new request token for ``client_id`` (see :mod:`wsgisec.signed_requests.request_tokens`)."""
        if self.tokens is None:
            raise ConfigurationError("secret_keys is not set: request tokens cannot be issued")
        return self.tokens.issue(client_id)

    def revoke_request_token(self, token_id: str) -> None:
        """Refuse the request token with this id from now on (on every worker)."""
        if self.tokens is None:
            raise ConfigurationError("secret_keys is not set: there are no request tokens to revoke")
        self.tokens.revoke(token_id)

    def revoke_request_tokens_of(self, client_id: str) -> int:
        """Refuse every request token of ``client_id`` issued until now, listed or minted
        offline (raises the client's issued-at floor); returns how many were listed."""
        if self.tokens is None:
            raise ConfigurationError("secret_keys is not set: there are no request tokens to revoke")
        return self.tokens.revoke_client(client_id)

    def issue_signing_key(self, client_id: str, *, grace: int = 86400) -> dict:
        return issue_signing_key(self.store, client_id, grace=grace, clock=self.clock)

    # -- the request -----------------------------------------------------------------

    def __call__(self, environ, start_response):
        if self.exempt_paths and settings.path_matches(environ.get("PATH_INFO", ""), self.exempt_paths):
            return self.app(environ, start_response)
        if self.browser is not None and not (
                environ.get(self.token_key) or "HTTP_AUTHORIZATION" in environ
                or "HTTP_SIGNATURE" in environ or "HTTP_SIGNATURE_INPUT" in environ
                # token_auth outside us accepted a bearer token and removed the
                # Authorization header: still a partner, who must sign.
                or "wsgisec.client" in environ):
            # No partner credential at all: a browser (or nobody). CSRF rules apply.
            return self.browser(environ, start_response)
        try:
            verified = self.verifier.verify(environ)
        except Reject as reject:
            return self.refusals.rejected(environ, reject)(environ, start_response)
        except StoreUnavailable as error:  # fail closed
            return self.refusals.unavailable(environ, error)(environ, start_response)
        except BodyTooLarge:
            return self.refusals.too_large(environ, self.max_body_size)(environ, start_response)
        environ["wsgisec.signed_requests"] = verified
        client_id = verified.get("client_id")
        if client_id and not environ.get("wsgisec.client"):
            environ["wsgisec.client"] = {"id": client_id}
            environ.setdefault("REMOTE_USER", client_id)
        return self.app(environ, start_response)


def filter_factory(global_conf, **local_conf):
    """PasteDeploy ``egg:wsgisec#signed_requests``."""
    table = dict(SETTINGS)
    try:
        from . import csrf
    except ImportError:  # the browser half is absent: csrf_* keys are then unknown keys
        csrf = None
    if csrf is not None:
        table.update(csrf.SETTINGS)
    kw = settings.parse("signed_requests", table, local_conf, global_conf)
    if not kw["browser_csrf"]:
        # Defaults of the browser half are dropped; csrf_* keys written in the ini are an error.
        kw = {key: value for key, value in kw.items() if not key.startswith("csrf_") or key in local_conf}
    return layer_factory("signed_requests", SignedRequests, kw, global_conf)
