"""Browser CSRF defence for legacy HTML forms with cookie sessions (the browser half of practice 4).

A legacy app that keeps its users logged in with a cookie trusts every request the
browser sends, including a form that another site makes the browser post (CSRF, OWASP
Top 10 A01). This layer refuses such requests and, because the legacy app cannot be
edited, gives the app's own forms the token they need:

* **Fetch Metadata and origin** (OWASP CSRF Prevention Cheat Sheet, "Fetch Metadata
  headers" and "Verifying Origin With Standard Headers"): an unsafe request (any method
  but GET, HEAD, OPTIONS and TRACE, RFC 9110 §9.2.1) with ``Sec-Fetch-Site: cross-site``
  or ``same-site`` is refused unless its ``Origin`` is in ``csrf_trusted_origins``; an
  ``Origin`` that is ``null`` or names neither this service (scheme and host of the
  request, which the https layer has already made trustworthy) nor a trusted origin is
  refused; without ``Origin`` a ``Referer`` is checked the same way. These checks apply to
  every unsafe request, with cookies or not: only browsers send these headers, and a
  cross-site form post is an attack even without cookies (login CSRF).
* **Signed double-submit token**: an unsafe request that carries cookies (or browser
  HTTP authentication) must also send the token from the CSRF cookie back in the form
  field ``csrf_field_name`` or the header ``csrf_header_name``. The cookie holds an
  itsdangerous ``TimestampSigner`` token (salt ``wsgisec.csrf``, HMAC-SHA256) made of a
  random nonce and an HMAC of the session cookie's value (``csrf_session_cookie``; the
  session id itself never appears), so it must be valid, younger than ``csrf_max_age``,
  equal to the submitted one (constant-time) and bound to the session that sends it. The
  page carries the token masked with a fresh random pad per response (Django's defence
  against BREACH-style compression attacks), so it is never the same bytes twice.
* **Requests without cookies** pass the token check: with no cookie (and no browser-held
  Basic/Digest/Negotiate credential) the browser adds no ambient authority for an
  attacker to borrow; the attacker could send the same request from their own machine.
  The Fetch Metadata and origin checks above still refuse a cross-site form post.
* **Injection**: in every ``text/html`` response of a request that passed, a hidden
  ``<input type="hidden" name="csrf_token" value="...">`` is inserted right after the
  opening tag of each ``<form method="post">`` (any case, attribute order or quoting; GET
  forms never get the token, it would end up in URLs and logs), and
  ``<meta name="csrf-token" content="...">`` plus ``<meta name="csrf-header"
  content="X-CSRF-Token">`` after ``<head>``, for scripts::

      fetch(url, {method: "POST", headers: {
          [document.querySelector('meta[name="csrf-header"]').content]:
              document.querySelector('meta[name="csrf-token"]').content}})

  The page is buffered up to ``csrf_max_rewrite_size`` (so a tag split across chunks is
  still found), ``Content-Length`` is fixed, ``ETag`` dropped and ``Vary: Cookie`` added.
  A larger page is injected in a bounded sliding window (a tag cut by a chunk edge is
  carried, at most 4 KB) and sent without ``Content-Length``: otherwise anyone able to
  grow a page (a few dozen posts) would switch the defence off for all its users.
  Compressed pages (``Content-Encoding``) and UTF-16/32 pages stream through untouched.
  Other responses are not looked at: same iterable, same bytes, same headers.
* **Cookie**: ``__Host-csrf`` over https (the ``__Host-`` prefix makes the browser refuse
  it unless it is ``Secure``, ``Path=/`` and has no ``Domain``, so a sibling subdomain
  cannot plant one: cookie tossing), ``csrf`` over plain http (development);
  ``SameSite=Lax``, ``HttpOnly`` (scripts read the token from the ``<meta>`` tag),
  ``Max-Age`` = ``csrf_max_age``. It is set on HTML responses when missing, invalid,
  bound to another session (also when the app sets a new session cookie, e.g. at login)
  or older than half its max age.

Refusals are ``403`` problem responses (RFC 9457, HTML for browsers) with a ``reason``
member and an incident id, and one event of the same name: ``csrf-cross-site``,
``csrf-same-site``, ``csrf-fetch-site-invalid``, ``csrf-origin-null``,
``csrf-origin-mismatch``, ``csrf-referer-mismatch``, ``csrf-cookie-missing``,
``csrf-token-missing``, ``csrf-token-invalid``, ``csrf-token-mismatch``,
``csrf-token-expired``, ``csrf-session-mismatch``; a form body above
``csrf_max_body_size`` gets 413 (``csrf-body-too-large``).

The pieces: the origin checks in :mod:`.origins`, the signed token in :mod:`.signer`, a
request's token and its form field in :mod:`.tokens`, the injection into pages in
:mod:`.inject`, the refusal codes in :mod:`.refusals`; this module holds the layer.

:class:`wsgisec.signed_requests.SignedRequests` hands every request that carries no
partner credential to this layer and accepts the ``csrf_*`` settings; it can also be used
on its own (``use = call:wsgisec.csrf:filter_factory``).

ini::

    [filter:signed_requests]
    use = egg:wsgisec#signed_requests
    get store = wsgisec_store
    secret_keys = env:WSGISEC_SIGNING_KEY
    csrf_session_cookie = session
    csrf_trusted_origins = https://www.example.com

    # or on its own:
    [filter:csrf]
    use = call:wsgisec.csrf:filter_factory
    secret_keys = env:WSGISEC_CSRF_KEY
    csrf_session_cookie = session

Python::

    app = BrowserCSRF(app, secret_keys=secret_list("env:WSGISEC_CSRF_KEY"),
                      csrf_session_cookie="session")

Settings (ini name, default):

``secret_keys`` (required; standalone only, SignedRequests passes its own)
    ``env:NAME``/``file:PATH`` keys, oldest first: tokens are signed with the last and
    every listed key is accepted (rotation).
``csrf_cookie_name`` (``__Host-csrf`` over https, ``csrf`` over http)
    Name of the token cookie. A name starting ``__Host-``/``__Secure-`` is always Secure.
``csrf_field_name`` (csrf_token)
    Name of the hidden form field injected and read.
``csrf_header_name`` (X-CSRF-Token)
    Request header a script sends the token in (also announced in ``<meta name="csrf-header">``).
``csrf_session_cookie`` (none)
    Name of the legacy app's session cookie; tokens are bound to an HMAC of its value.
    Empty: tokens are not bound to a session (``wsgisec check`` warns).
``csrf_max_age`` (12h)
    Lifetime of a token (and of its cookie).
``csrf_trusted_origins`` (none)
    Other origins (``https://www.example.com``) allowed to post here, cross-site too.
``csrf_max_rewrite_size`` (1MB)
    Largest HTML response buffered for injection; larger ones are injected in a sliding
    window, without ``Content-Length``.
``csrf_max_body_size`` (1MB)
    Largest form body read to find the token field (413 beyond; a script can use the header).
``csrf_exempt_paths`` (none)
    Path prefixes this layer leaves alone entirely (e.g. a webhook that has its own
    signature).
``csrf_inject`` (true)
    Rewrite HTML responses. Off: the app must render the token itself, from
    ``environ["wsgisec.csrf"].masked_token()``.
``store`` (``wsgisec.sqlite`` beside the ini file; standalone only)
    Where refusal events are kept.
"""

from __future__ import annotations

import logging
import re
import time

from ... import events, settings
from ...layer import Layer, layer_factory
from ...responses import problem
from ...settings import ConfigurationError, Secret
from ...store import coerce as coerce_store
from ...wsgi import BodyTooLarge, ClosingIterator
from .inject import _PASS, _Response, inject
from .origins import check_origin, normal_origin as _normal_origin, origins as _origins
# Refusal codes, importable from here as before the split.
from .refusals import (BODY_INVALID, BODY_TOO_LARGE, COOKIE_MISSING, CROSS_SITE,  # noqa: F401
                       FETCH_SITE_INVALID, ORIGIN_MISMATCH, ORIGIN_NULL, REFERER_MISMATCH, SAME_SITE,
                       SESSION_MISMATCH, TOKEN_EXPIRED, TOKEN_INVALID, TOKEN_MISMATCH, TOKEN_MISSING,
                       WHY as _WHY, Refuse as _Refuse)
from .signer import SALT as _SALT, TokenSigner  # noqa: F401
from .tokens import TokenState as _TokenState, form_token, mask as _mask, unmask as _unmask  # noqa: F401

__all__ = ["BrowserCSRF", "SETTINGS", "filter_factory", "inject"]

_log = events.logger_for("csrf")
_ops_log = logging.getLogger("wsgisec.csrf")

# RFC 9110 §9.2.1: the methods defined as safe; every other method is protected.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})

HOST_COOKIE = "__Host-csrf"
PLAIN_COOKIE = "csrf"

# RFC 6265 §4.1.1 cookie-name / RFC 9110 §5.6.2 token.
_TOKEN_CHARS = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# Characters a browser does not percent-encode in a form body (WHATWG URL, urlencoded).
_FIELD = re.compile(r"^[A-Za-z0-9_.\-]+$")
# Browser-held credentials that, like cookies, ride along on a forged request.
_AMBIENT_SCHEMES = ("basic ", "digest ", "negotiate ", "ntlm ")


# -- parsers ----------------------------------------------------------------------------

def _cookie_name(text: str):
    name = text.strip()
    if not name:
        return None
    if not _TOKEN_CHARS.match(name):
        raise ValueError("a cookie name (letters, digits and - _ .)")
    return name


def _header_name(text: str) -> str:
    name = text.strip()
    if not _TOKEN_CHARS.match(name):
        raise ValueError("an HTTP header name such as X-CSRF-Token")
    return name


def _field_name(text: str) -> str:
    name = text.strip()
    if not _FIELD.match(name):
        raise ValueError("a form field name (letters, digits and _ . -)")
    return name


SETTINGS = {
    "csrf_cookie_name": (_cookie_name, ""),
    "csrf_field_name": (_field_name, "csrf_token"),
    "csrf_header_name": (_header_name, "X-CSRF-Token"),
    "csrf_session_cookie": (_cookie_name, ""),
    "csrf_max_age": (settings.duration, "12h"),
    "csrf_trusted_origins": (_origins, ""),
    "csrf_max_rewrite_size": (settings.size, "1MB"),
    "csrf_max_body_size": (settings.size, "1MB"),
    "csrf_exempt_paths": (settings.path_prefixes, ""),
    "csrf_inject": (settings.boolean, "true"),
}


# -- the layer --------------------------------------------------------------------------

class BrowserCSRF(Layer):
    """Refuse forged browser form posts; give the legacy app's forms a token (module docstring)."""

    wsgisec_layer = "signed_requests.csrf"

    def __init__(self, app, *, secret_keys=(), store=None, clock=time.time,
                 csrf_cookie_name=None, csrf_field_name="csrf_token", csrf_header_name="X-CSRF-Token",
                 csrf_session_cookie=None, csrf_max_age=12 * 3600, csrf_trusted_origins=(),
                 csrf_max_rewrite_size=1024 * 1024, csrf_max_body_size=1024 * 1024,
                 csrf_exempt_paths=(), csrf_inject=True):
        self.app = app
        keys = [key.reveal() if isinstance(key, Secret) else key for key in (secret_keys or ())]
        if not keys:
            raise ConfigurationError(
                "secret_keys is required to sign browser CSRF tokens: write secret_keys = "
                "env:WSGISEC_CSRF_KEY (32 random bytes, e.g. python -c 'import secrets; "
                "print(secrets.token_urlsafe(32))')")
        if csrf_max_age <= 0:
            raise ConfigurationError("csrf_max_age must be more than 0s")
        if csrf_max_rewrite_size < 0 or csrf_max_body_size < 0:
            raise ConfigurationError("csrf_max_rewrite_size and csrf_max_body_size must not be negative")
        trusted = []
        for origin in csrf_trusted_origins:
            normal = _normal_origin(origin)
            if normal is None:
                raise ConfigurationError(f"csrf_trusted_origins: {origin!r} is not an origin such "
                                         "as https://www.example.com")
            trusted.append(normal)
        for name, value in (("csrf_cookie_name", csrf_cookie_name), ("csrf_session_cookie", csrf_session_cookie),
                            ("csrf_header_name", csrf_header_name)):
            if value is not None and not _TOKEN_CHARS.match(value):
                raise ConfigurationError(f"{name}: {value!r} is not a valid name")
        if not _FIELD.match(csrf_field_name):
            raise ConfigurationError(f"csrf_field_name: {csrf_field_name!r} is not a form field name")

        self.store = coerce_store(store)
        self.clock = clock
        self.signer = TokenSigner(keys, max_age=int(csrf_max_age), clock=clock,
                                  bind_sessions=bool(csrf_session_cookie))
        self.cookie_name = csrf_cookie_name or None
        self.field_name = csrf_field_name
        self._field_bytes = csrf_field_name.encode("ascii")
        self.header_name = csrf_header_name
        self._header_key = "HTTP_" + csrf_header_name.upper().replace("-", "_")
        self.session_cookie = csrf_session_cookie or None
        self.max_age = int(csrf_max_age)
        self.trusted_origins = frozenset(trusted)
        self.max_rewrite_size = int(csrf_max_rewrite_size)
        self.max_body_size = int(csrf_max_body_size)
        self.exempt_paths = tuple(csrf_exempt_paths)
        self.inject = bool(csrf_inject)
        self.settings = {
            "csrf_cookie_name": self.cookie_name or f"{HOST_COOKIE} (https) / {PLAIN_COOKIE} (http)",
            "csrf_field_name": csrf_field_name, "csrf_header_name": csrf_header_name,
            "csrf_session_cookie": self.session_cookie, "csrf_max_age": self.max_age,
            "csrf_trusted_origins": sorted(self.trusted_origins),
            "csrf_max_rewrite_size": self.max_rewrite_size, "csrf_max_body_size": self.max_body_size,
            "csrf_exempt_paths": list(self.exempt_paths), "csrf_inject": self.inject,
        }

    def warnings(self):
        found = []
        if self.cookie_name and not self.cookie_name.startswith("__Host-"):
            found.append(f"csrf_cookie_name {self.cookie_name!r} has no __Host- prefix: a sibling "
                         "subdomain can plant its own CSRF cookie (cookie tossing)")
        if self.session_cookie is None:
            found.append("csrf_session_cookie is not set: CSRF tokens are not bound to the session, "
                         "so a token pair planted by an attacker is accepted")
        for origin in sorted(self.trusted_origins):
            if origin.startswith("http://"):
                found.append(f"csrf_trusted_origins contains {origin}: a plain-HTTP page can be "
                             "changed by anyone on the path and then post here")
        if self.max_age > 7 * 86400:
            found.append(f"csrf_max_age is {self.max_age}s: a leaked token stays usable long; 12h is advised")
        return found

    def issue(self, session=None) -> str:
        """A new (unmasked) token bound to ``session`` (the session cookie's value)."""
        return self.signer.issue(session)

    # -- the request ----------------------------------------------------------------

    def __call__(self, environ, start_response):
        if self.exempt_paths and settings.path_matches(environ.get("PATH_INFO", ""), self.exempt_paths):
            return self.app(environ, start_response)
        secure = environ.get("wsgi.url_scheme") == "https"
        cookie_name = self.cookie_name or (HOST_COOKIE if secure else PLAIN_COOKIE)
        cookie_header = environ.get("HTTP_COOKIE", "")
        state = _TokenState(self, cookie_name, cookie_header, secure)
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in SAFE_METHODS:
            try:
                check_origin(environ, self.trusted_origins)
                authorization = environ.get("HTTP_AUTHORIZATION", "")[:10].lower()
                if cookie_header.strip() or authorization.startswith(_AMBIENT_SCHEMES):
                    state.load()
                    state.verified = self._check_token(environ, state.cookie_token, state.session)
            except _Refuse as refusal:
                incident = events.emit(environ, refusal.reason, _WHY[refusal.reason], store=self.store,
                                       logger=_log, detail=refusal.detail)
                return problem(environ, 403, "This form could not be accepted. Reload the page and "
                               "try again.", incident=incident,
                               extra={"reason": refusal.reason})(environ, start_response)
            except BodyTooLarge:
                incident = events.emit(environ, BODY_TOO_LARGE, "form body larger than csrf_max_body_size",
                                       store=self.store, logger=_log, detail={"limit": self.max_body_size})
                return problem(environ, 413, "The request content is too large.", incident=incident,
                               extra={"reason": BODY_TOO_LARGE})(environ, start_response)
            except ValueError:  # a Content-Length that is not a number
                return problem(environ, 400, "The request is malformed.",
                               extra={"reason": BODY_INVALID})(environ, start_response)
        environ["wsgisec.csrf"] = state
        response = _Response(self, environ, start_response, state, method == "HEAD")
        app_iter = self.app(environ, response.start_response)
        if response.mode == _PASS:
            return app_iter  # not rewritten: the app's own iterable, untouched
        return ClosingIterator(app_iter, chunks=response.body(app_iter))

    def _check_token(self, environ, cookie_token, session):
        """The signed double-submit check (OWASP: Signed Double-Submit Cookie)."""
        if not cookie_token:
            raise _Refuse(COOKIE_MISSING, check="cookie")
        submitted = environ.get(self._header_key)
        source = "header"
        if not submitted:
            submitted = form_token(environ, self._field_bytes, self.max_body_size)
            source = "form"
        if not submitted:
            raise _Refuse(TOKEN_MISSING, check="token")
        return self.signer.verify(cookie_token, submitted, source, session)


def filter_factory(global_conf, **local_conf):
    """PasteDeploy ``use = call:wsgisec.csrf:filter_factory`` (the layer on its own)."""
    table = dict(SETTINGS)
    table["secret_keys"] = (settings.optional(settings.secret_list), None)
    table["store"] = (settings.optional(settings.store_url), None)
    kw = settings.parse("csrf", table, local_conf, global_conf)
    return layer_factory("csrf", BrowserCSRF, kw, global_conf)
