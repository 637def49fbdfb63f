"""TLS only: redirect or refuse plain HTTP, send HSTS, trust proxies only when told to.

Practice 5 (sensitive data exposure). Anything a partner sends over plain HTTP can be
read and changed by anyone on the path, so this layer makes sure the legacy app only ever
serves requests that arrived over TLS:

* a plain-HTTP ``GET``/``HEAD`` without credentials is redirected to the same URL on
  https (301, or 308 if configured);
* any other plain-HTTP request gets 403: its body was already sent in clear text, and a
  redirect would invite the client to send it again (a 301/302 may even turn a POST into
  a GET);
* a plain-HTTP request that carries credentials (an ``Authorization`` header, a request
  token, or ``access_token``/``refresh_token``/``client_secret``/``token`` in the query or
  a form body) is refused with 403, never redirected: the credential has already crossed
  the wire, and a redirect would repeat a query token in ``Location``. Tokens seen this
  way are revoked at once in the store (a refresh token with its whole family) and one
  critical ``credentials-over-plaintext`` event tells the operator. The rule is
  :func:`wsgisec.credentials.plaintext_refusal`, shared with token_auth; it applies on
  ``exempt_paths`` too;
* every https response carries ``Strict-Transport-Security`` (RFC 6797), so browsers
  never try plain HTTP again;
* ``Set-Cookie`` headers gain ``Secure``, and ``HttpOnly`` and ``SameSite=Lax`` unless
  the cookie already sets its own ``SameSite`` (OWASP Session Management cheat sheet);
* the ``Host`` header must name one of ``allowed_hosts`` (400 otherwise): the app builds
  links and password-reset mails from it (host-header injection, as Django's
  ALLOWED_HOSTS).

Proxies: behind a TLS-terminating load balancer the request reaches us as plain HTTP with
``X-Forwarded-Proto: https`` (or RFC 7239 ``Forwarded: proto=https``). Anyone can send
those headers, so they are believed only when the connection comes from an address in
``trusted_proxies``; from anyone else they are removed before the app sees them. Hops are
counted from the right, skipping trusted proxies (the leftmost ``X-Forwarded-For`` entry
is whatever the client wrote); :class:`wsgisec.proxies.ForwardedHeaders` does this, and
keeps what it replaced in ``environ["wsgisec.https.orig"]``. Do not use this when your WSGI server already rewrites
these (waitress ``trusted_proxy``, gunicorn ``forwarded_allow_ips``): configure one place.

ini::

    [filter:https]
    use = egg:wsgisec#https
    get store = wsgisec_store
    allowed_hosts = api.example.com
    trusted_proxies = 10.0.0.0/8
    hsts_max_age = 365d
    exempt_paths = /healthz

Python::

    app = HTTPSOnly(app, allowed_hosts=("api.example.com",), trusted_proxies=cidrs("10.0.0.0/8"))

Settings (ini name, default):

``redirect`` (true)
    Redirect plain-HTTP GET/HEAD to https; false refuses them with 403 like other methods.
``redirect_status`` (301)
    301 (cached by browsers) or 308 (keeps the method; for clients that follow it).
``https_port`` (443)
    Port of the https URL in redirects; 443 is left out of the URL.
``hsts_max_age`` (365d)
    HSTS ``max-age``; ``0`` sends no HSTS header (``wsgisec check`` warns below 180 days).
``hsts_include_subdomains`` (false)
    Adds ``includeSubDomains``. Opt-in: every subdomain must then serve https too.
``hsts_preload`` (false)
    Adds ``preload``. Opt-in and hard to undo (browsers ship the list); refused unless
    ``hsts_max_age`` >= 365d and ``hsts_include_subdomains`` is on (hstspreload.org).
``trusted_proxies`` (none)
    Addresses/networks whose forwarded headers are believed.
``allowed_hosts`` (localhost 127.0.0.1 [::1])
    Host names this app answers to. ``.example.com`` also allows every subdomain;
    ``*`` allows any host (``wsgisec check`` warns).
``secure_cookies`` (true)
    Rewrite the app's ``Set-Cookie`` headers as described above.
``cookie_samesite`` (lax)
    SameSite value added to cookies that have none: ``lax``, ``strict`` or ``none``.
``cookie_httponly_exempt`` (none)
    Names of cookies that page scripts must read, so they do not get ``HttpOnly``.
``exempt_paths`` (none)
    Path prefixes served over plain HTTP too, e.g. a load balancer's ``/healthz``
    (a request there that carries credentials is still refused).
``credential_headers`` (Authorization X-Request-Token)
    Request headers that count as credentials on a plain-HTTP request.
``store`` (``wsgisec.sqlite`` beside the ini file)
    Where tokens sent over plain HTTP are revoked and events kept.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

from . import events, settings
from .credentials import (CREDENTIALS_OVER_PLAINTEXT, CREDENTIAL_PARAMS,  # noqa: F401 (event code)
                          header_keys, plaintext_refusal)
from .layer import Layer, layer_factory
from .proxies import TRUST_CACHE_SIZE, ForwardedHeaders  # noqa: F401 (importable from here as before)
from .responses import problem, redirect as redirect_response
from .settings import ConfigurationError
from .store import coerce as coerce_store
from .wsgi import keep_on_every_response

__all__ = ["HTTPSOnly", "filter_factory", "SETTINGS"]

PLAINTEXT_REFUSED = "plaintext-refused"
DISALLOWED_HOST = "disallowed-host"

_log = events.logger_for("https")

HSTS_PRELOAD_MIN_AGE = 31536000  # hstspreload.org: at least one year
HSTS_SHORT = 180 * 86400

SETTINGS = {
    "redirect": (settings.boolean, "true"),
    "redirect_status": (settings.choice("301", "308"), "301"),
    "https_port": (settings.integer(1, 65535), "443"),
    "hsts_max_age": (settings.duration, "365d"),
    "hsts_include_subdomains": (settings.boolean, "false"),
    "hsts_preload": (settings.boolean, "false"),
    "trusted_proxies": (settings.cidrs, ""),
    "allowed_hosts": (settings.words, "localhost 127.0.0.1 [::1]"),
    "secure_cookies": (settings.boolean, "true"),
    "cookie_samesite": (settings.choice("lax", "strict", "none"), "lax"),
    "cookie_httponly_exempt": (settings.words, ""),
    "exempt_paths": (settings.path_prefixes, ""),
    "credential_headers": (settings.words, "Authorization X-Request-Token"),
    "store": (settings.optional(settings.store_url), None),
}

# Django's host_validation_re: a DNS name or a bracketed IPv6 literal, optional port.
_HOST = re.compile(r"^([a-z0-9.-]+|\[[a-f0-9]*:[a-f0-9.:]+\])(?::([0-9]+))?$")

_SAFE_METHODS = frozenset({"GET", "HEAD"})

# RFC 3986 §3.3 pchar without "%" (re-encoded below) and §3.4 query characters.
_PATH_SAFE = "/:@!$&'()*+,;=-._~"
_QUERY_SAFE = "/?:@!$'()*+,;=-._~"
# A "%" that does not start a pct-encoded triplet (RFC 3986 §2.1) is a literal percent.
_STRAY_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


class HTTPSOnly(Layer):
    """Serve the wrapped app over TLS only (see the module docstring for every setting)."""

    wsgisec_layer = "https"

    def __init__(self, app, *, redirect=True, redirect_status=301, https_port=443,
                 hsts_max_age=365 * 86400, hsts_include_subdomains=False, hsts_preload=False,
                 trusted_proxies=(), allowed_hosts=("localhost", "127.0.0.1", "[::1]"),
                 secure_cookies=True, cookie_samesite="lax", cookie_httponly_exempt=(),
                 exempt_paths=(), credential_headers=("Authorization", "X-Request-Token"),
                 store=None):
        self.app = app
        redirect_status = int(redirect_status)
        if redirect_status not in (301, 308):
            raise ConfigurationError("redirect_status must be 301 or 308")
        if hsts_preload and (hsts_max_age < HSTS_PRELOAD_MIN_AGE or not hsts_include_subdomains):
            raise ConfigurationError(
                "hsts_preload needs hsts_max_age >= 365d and hsts_include_subdomains = true "
                "(hstspreload.org requirements); preloading is hard to undo, so check that "
                "every subdomain serves https before turning it on")
        self.redirect = redirect
        self.redirect_status = redirect_status
        self.https_port = https_port
        self.forwarded = ForwardedHeaders(trusted_proxies, namespace="wsgisec.https")
        self.trusted_proxies = self.forwarded.trusted_proxies
        self.allowed_hosts = tuple(host.lower() for host in allowed_hosts)
        for host in self.allowed_hosts:
            if host != "*" and not _HOST.match(host.lstrip(".")) or (":" in host and not host.startswith("[")):
                raise ConfigurationError(f"allowed_hosts: {host!r} is not a host name (no scheme, port or path)")
        self.secure_cookies = secure_cookies
        self.cookie_samesite = cookie_samesite.capitalize()
        self.cookie_httponly_exempt = frozenset(cookie_httponly_exempt)
        self.exempt_paths = tuple(exempt_paths)
        self.credential_keys = header_keys(credential_headers)
        self.store = coerce_store(store)

        hsts = []
        if hsts_max_age:
            hsts.append(f"max-age={int(hsts_max_age)}")
            if hsts_include_subdomains:
                hsts.append("includeSubDomains")
            if hsts_preload:
                hsts.append("preload")
        self.hsts = "; ".join(hsts) or None
        self.settings = {
            "redirect": redirect, "redirect_status": redirect_status, "https_port": https_port,
            "hsts_max_age": hsts_max_age, "hsts_include_subdomains": hsts_include_subdomains,
            "hsts_preload": hsts_preload,
            "trusted_proxies": [str(net) for net in self.trusted_proxies],
            "allowed_hosts": list(self.allowed_hosts), "secure_cookies": secure_cookies,
            "cookie_samesite": cookie_samesite, "cookie_httponly_exempt": sorted(cookie_httponly_exempt),
            "exempt_paths": list(self.exempt_paths), "credential_headers": list(credential_headers),
            "store": getattr(self.store, "url", None),
        }
        self._hsts_max_age = hsts_max_age

    def warnings(self):
        found = []
        if not self._hsts_max_age:
            found.append("HSTS is off (hsts_max_age = 0): browsers may still try plain HTTP")
        elif self._hsts_max_age < HSTS_SHORT:
            found.append(f"HSTS max-age is short ({self._hsts_max_age}s); 180d or more is advised")
        if not self.redirect:
            found.append("redirect is off: browsers following plain-HTTP links get a 403")
        if "*" in self.allowed_hosts:
            found.append("allowed_hosts contains *: any Host header is accepted (host-header injection)")
        found.extend(self.forwarded.warnings())
        if self.store is None:
            found.append("no store: a token sent over plain HTTP is refused but cannot be revoked")
        return found

    # -- the request --------------------------------------------------------------

    def __call__(self, environ, start_response):
        self.forwarded.apply(environ)  # before anything reads the scheme, host or address

        secure = environ.get("wsgi.url_scheme") == "https"
        if not secure:
            # Credentials first, whatever the Host or path: they have crossed the wire in
            # clear. Refuse (never redirect: Location would repeat a query token), revoke,
            # report once (wsgisec.credentials). Exempt paths too: a health check sends none.
            refusal = plaintext_refusal(environ, store=self.store, logger=_log, keys=self.credential_keys)
            if refusal is not None:
                return refusal(environ, start_response)

        if not self._host_allowed(environ):
            incident = events.emit(environ, DISALLOWED_HOST, "host not in allowed_hosts",
                                   store=self.store, logger=_log)
            refused = problem(environ, 400, "The Host header does not name this service.", incident=incident)
            # Over TLS our own refusals carry HSTS like every other response (issue 11).
            return refused(environ, self._https_start_response(start_response) if secure else start_response)

        if not secure:
            path = environ.get("PATH_INFO", "")
            if self.exempt_paths and settings.path_matches(path, self.exempt_paths):
                return self.app(environ, start_response)
            return self._refuse_plaintext(environ, start_response)
        if self.hsts is not None:
            # error_masker, outside us, rebuilds masked errors: it sends this one too.
            keep_on_every_response(environ, "Strict-Transport-Security", self.hsts)
        return self.app(environ, self._https_start_response(start_response))

    def _https_start_response(self, start_response):
        """``start_response`` that adds HSTS and secures cookies (RFC 6797, OWASP)."""
        hsts = self.hsts
        secure_cookies = self.secure_cookies

        def https_start_response(status, headers, exc_info=None):
            headers = list(headers)
            if hsts is not None and not any(k.lower() == "strict-transport-security" for k, _ in headers):
                headers.append(("Strict-Transport-Security", hsts))
            if secure_cookies:
                headers = [(k, self._secure_cookie(v)) if k.lower() == "set-cookie" else (k, v)
                           for k, v in headers]
            return start_response(status, headers, exc_info)

        return https_start_response

    def _refuse_plaintext(self, environ, start_response):
        """A plain-HTTP request without credentials: redirect a GET/HEAD, refuse the rest."""
        method = environ.get("REQUEST_METHOD", "GET")
        if self.redirect and method in _SAFE_METHODS:
            return redirect_response(self._https_url(environ), self.redirect_status)(environ, start_response)
        incident = events.emit(environ, PLAINTEXT_REFUSED, "plain HTTP request refused",
                               severity="info", store=self.store, logger=_log)
        return problem(environ, 403, "This service is only available over HTTPS.",
                       incident=incident)(environ, start_response)

    # -- pieces -------------------------------------------------------------------

    def _host_allowed(self, environ) -> bool:
        host = _host_name(environ)
        if host is None:
            return False
        for allowed in self.allowed_hosts:
            if allowed == "*" or host == allowed:
                return True
            if allowed.startswith(".") and (host == allowed[1:] or host.endswith(allowed)):
                return True
        return False

    def _https_url(self, environ) -> str:
        """The https URL of this request, rebuilt and re-encoded (never echoed as sent).

        The host passed :data:`_HOST` (a DNS name or an IPv6 literal); the path is
        percent-encoded from its bytes and the query re-encoded, so the ``Location``
        holds only RFC 3986 characters: no control characters, no CR/LF (header
        injection), no raw non-ASCII. Credential parameters are dropped (they are refused
        before a redirect, by :func:`~wsgisec.credentials.plaintext_refusal`; this only
        makes sure a redirect can never repeat one).
        """
        host = _host_name(environ) or "localhost"
        port = "" if self.https_port == 443 else f":{self.https_port}"
        # PATH_INFO is latin-1-decoded bytes (PEP 3333); quote them again as they came.
        path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        url = f"https://{host}{port}" + quote(_wire_bytes(path), safe=_PATH_SAFE)
        query = _requote_query(environ.get("QUERY_STRING", ""))
        return url + "?" + query if query else url

    def _secure_cookie(self, value: str) -> str:
        parts = [part.strip() for part in value.split(";")]
        attributes = {part.split("=", 1)[0].strip().lower() for part in parts[1:]}
        name = parts[0].split("=", 1)[0].strip()
        if "secure" not in attributes:
            value += "; Secure"
        if "httponly" not in attributes and name not in self.cookie_httponly_exempt:
            value += "; HttpOnly"
        if "samesite" not in attributes:
            value += f"; SameSite={self.cookie_samesite}"
        return value


def _host_name(environ) -> str | None:
    """The host name (lower case, without port) the request names, or None if malformed."""
    host = environ.get("HTTP_HOST")
    if not host:
        host = environ.get("SERVER_NAME", "")
    match = _HOST.match(host.strip().lower())
    if not match:
        return None
    name = match.group(1)
    return name[:-1] if name.endswith(".") else name


def _wire_bytes(text: str) -> bytes:
    """The bytes a WSGI string stands for: latin-1 per PEP 3333, UTF-8 from lax servers."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")  # any str: never an error here


def _requote_query(query: str) -> str:
    """``query`` with only RFC 3986 §3.4 characters and no credential parameter.

    Existing ``%XX`` escapes are kept as they are (the app decodes them); everything else
    outside the query set, stray ``%`` included, is percent-encoded from its bytes.
    """
    if not query:
        return ""
    kept = []
    for part in query.split("&"):
        name = unquote(part.split("=", 1)[0].replace("+", " "))
        if not part or name in CREDENTIAL_PARAMS:
            continue
        part = _STRAY_PERCENT.sub("%25", part)
        kept.append(quote(_wire_bytes(part), safe=_QUERY_SAFE + "%"))
    return "&".join(kept)


def filter_factory(global_conf, **local_conf):
    """PasteDeploy ``egg:wsgisec#https``."""
    kw = settings.parse("https", SETTINGS, local_conf, global_conf)
    return layer_factory("https", HTTPSOnly, kw, global_conf)

