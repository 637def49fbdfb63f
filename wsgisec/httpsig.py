"""HTTP Message Signatures (RFC 9421) with ``hmac-sha256``, and Content-Digest (RFC 9530).

The small, strict subset a server needs to verify partner requests, and a client needs
to sign them:

* :func:`parse_dictionary` / :func:`serialize_inner_list`: RFC 8941 structured fields, as
  used by ``Signature-Input``, ``Signature``, ``Accept-Signature`` and ``Content-Digest``
  (the parser is :mod:`wsgisec.structured_fields`; its errors arrive as
  :class:`SignatureError`);
* :func:`signature_base`: RFC 9421 §2.5 from a WSGI environ (server) or from method, URL
  and headers (client), for the derived components ``@method``, ``@authority``,
  ``@path``, ``@query``, ``@target-uri``, ``@scheme``, ``@request-target`` (§2.2) and
  plain header fields such as ``content-digest`` (§2.1); headers an outer layer removed
  are read from :data:`ORIG_HEADERS`, as the partner sent them;
* :func:`is_covered`: whether a component is covered, directly or through one that
  contains it (``@target-uri`` covers ``@scheme @authority @path @query``,
  ``@request-target`` covers ``@path @query``: :data:`COVERED_BY`);
* :func:`hmac_sha256` / :func:`verify_hmac_sha256`: RFC 9421 §3.3.3;
* :func:`content_digest` / :func:`check_content_digest`: RFC 9530 ``sha-256`` and
  ``sha-512``.

Anything outside that subset (component parameters such as ``;sf`` or ``;key``, other
algorithms, response signatures) raises :class:`SignatureError`, so a verifier never
guesses. Errors carry a fixed message that never includes a signature or key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import quote

from . import structured_fields
from .structured_fields import MAX_FIELD_LENGTH, StructuredFieldError, Token  # noqa: F401 (re-exported)

__all__ = [
    "SignatureError", "Token", "parse_dictionary", "serialize_inner_list", "serialize_dictionary",
    "Component", "signature_base", "signature_base_for", "environ_components", "url_components",
    "hmac_sha256", "verify_hmac_sha256", "content_digest", "check_content_digest",
    "DERIVED_COMPONENTS", "ALGORITHM", "COVERED_BY", "is_covered", "ORIG_HEADERS",
]

#: The one algorithm we accept (RFC 9421 §3.3.3, registered name).
ALGORITHM = "hmac-sha256"

DERIVED_COMPONENTS = frozenset({"@method", "@authority", "@path", "@query", "@target-uri",
                                "@scheme", "@request-target"})

#: RFC 9421 §2.2.2 and §2.2.5: ``@target-uri`` is the whole target URI (scheme, authority,
#: path and query) and ``@request-target`` is path plus query, so a signature that covers
#: one of them covers those parts too (requests-http-signature signs ``@target-uri`` by
#: default).
COVERED_BY = {
    "@scheme": ("@target-uri",),
    "@authority": ("@target-uri",),
    "@path": ("@target-uri", "@request-target"),
    "@query": ("@target-uri", "@request-target"),
}

#: environ key where an outer layer keeps request headers it removed before us (e.g.
#: token_auth removes ``Authorization``): ``{"HTTP_AUTHORIZATION": value}``, values plain
#: strings or objects with ``reveal()``. A signature covers the request as the partner sent
#: it, so the verifier reads these first.
ORIG_HEADERS = "wsgisec.orig_headers"

#: RFC 9530 §5: the algorithms we compute; others in a Content-Digest are ignored.
DIGEST_ALGORITHMS = {"sha-256": hashlib.sha256, "sha-512": hashlib.sha512}


def is_covered(name: str, covered) -> bool:
    """Whether component ``name`` is covered by the set of component names ``covered``,
    directly or through a component that contains it (:data:`COVERED_BY`)."""
    return name in covered or any(whole in covered for whole in COVERED_BY.get(name, ()))


class SignatureError(ValueError):
    """A header or signature is malformed or does not verify (fixed, secret-free text)."""


# -- RFC 8941 structured fields (wsgisec.structured_fields), errors as SignatureError ----

def parse_dictionary(text: str) -> dict:
    """:func:`wsgisec.structured_fields.parse_dictionary`; raises :class:`SignatureError`."""
    try:
        return structured_fields.parse_dictionary(text)
    except StructuredFieldError as error:
        raise SignatureError(str(error)) from None


def serialize_inner_list(items, params: dict) -> str:
    """RFC 8941 §4.1.1.1: ``("a" "b");x=1``. ``items`` are ``(value, params)`` pairs."""
    try:
        return structured_fields.serialize_inner_list(items, params)
    except StructuredFieldError as error:
        raise SignatureError(str(error)) from None


def serialize_dictionary(members: dict) -> str:
    """``{key: (value, params)}`` back to text (value may be an inner list)."""
    try:
        return structured_fields.serialize_dictionary(members)
    except StructuredFieldError as error:
        raise SignatureError(str(error)) from None


# -- components (RFC 9421 §2) --------------------------------------------------------

# RFC 3986 pchar minus "%": PATH_INFO is already percent-decoded, so "%" must be re-quoted.
_PATH_SAFE = "/:@!$&'()*+,;=-._~"


class Component:
    """The values a signature base may cover, for one request."""

    __slots__ = ("method", "scheme", "authority", "path", "query", "headers")

    def __init__(self, method: str, scheme: str, authority: str, path: str, query: str | None,
                 headers: dict):
        self.method = method
        self.scheme = scheme.lower()
        self.authority = authority
        self.path = path or "/"
        self.query = query  # None: no "?" at all; "" : an empty query
        self.headers = headers  # lower-case name -> combined value

    def value(self, name: str) -> str:
        if name == "@method":
            return self.method
        if name == "@scheme":
            return self.scheme
        if name == "@authority":
            return self.authority
        if name == "@path":
            return self.path
        if name == "@query":
            # RFC 9421 §2.2.7: "?" followed by the query; just "?" when there is none.
            return "?" + (self.query or "")
        if name == "@request-target":
            return self.path + ("?" + self.query if self.query is not None else "")
        if name == "@target-uri":
            return (f"{self.scheme}://{self.authority}{self.path}"
                    + ("?" + self.query if self.query is not None else ""))
        if name.startswith("@"):
            raise SignatureError("unsupported derived component")
        try:
            return self.headers[name]
        except KeyError:
            raise SignatureError("covered header field is missing") from None


def _authority(host: str, scheme: str) -> str:
    # RFC 9421 §2.2.3: lower case, default port omitted (RFC 9110 §4.2.3 normalisation).
    host = host.strip().lower()
    if host.endswith("]"):  # an IPv6 literal without a port
        return host
    name, sep, port = host.rpartition(":")
    if sep and port.isdigit() and port.lstrip("0") == {"http": "80", "https": "443"}.get(scheme):
        return name
    return host


def environ_components(environ: dict) -> Component:
    """The components of the request a WSGI server handed us (the verifier's view).

    ``@path`` is taken from the raw request line when the server gives it
    (``REQUEST_URI``/``RAW_URI``: waitress, gunicorn, uWSGI), else re-quoted from
    ``SCRIPT_NAME`` + ``PATH_INFO``, which PEP 3333 gives percent-decoded as latin-1.
    """
    scheme = environ.get("wsgi.url_scheme", "http")
    host = environ.get("HTTP_HOST") or (environ.get("SERVER_NAME", "") + ":" + environ.get("SERVER_PORT", ""))
    raw = environ.get("REQUEST_URI") or environ.get("RAW_URI")
    path = None
    if raw:
        if "://" in raw.split("?", 1)[0]:  # absolute-form request target (RFC 9112 §3.2.2)
            raw = "/" + raw.split("://", 1)[1].partition("/")[2]
        if raw.startswith("/"):
            path = raw.split("?", 1)[0]
    if path is None:
        whole = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        path = quote(whole.encode("latin-1"), safe=_PATH_SAFE)
    query = environ.get("QUERY_STRING")
    if not query and not (raw and "?" in raw):
        query = None
    headers = _HeaderView(environ)
    return Component(environ.get("REQUEST_METHOD", "GET"), scheme, _authority(host, scheme),
                     path, query, headers)


class _HeaderView:
    """Lower-case header names over a WSGI environ, without copying every header.

    Headers an outer layer removed (kept under :data:`ORIG_HEADERS`) are seen as the
    partner sent them.
    """

    __slots__ = ("environ", "original")

    def __init__(self, environ):
        self.environ = environ
        self.original = environ.get(ORIG_HEADERS) or {}

    def __getitem__(self, name: str) -> str:
        key = name.upper().replace("-", "_")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = "HTTP_" + key
        value = self.original.get(key)
        if value is not None:
            value = value.reveal() if hasattr(value, "reveal") else value
        else:
            value = self.environ.get(key)
        if value is None or (key == "CONTENT_LENGTH" and value == ""):
            raise KeyError(name)
        # RFC 9421 §2.1: strip leading/trailing whitespace; WSGI servers already join
        # repeated field lines with ", ".
        return value.strip()

    def __contains__(self, name: str) -> bool:
        try:
            self[name]
        except KeyError:
            return False
        return True


def url_components(method: str, url: str, headers) -> Component:
    """The components of a request a client is about to send (the signer's view)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    query = parts.query if "?" in url.split("#", 1)[0] else None
    lowered = {}
    for name, value in (headers.items() if hasattr(headers, "items") else headers):
        name = name.lower()
        value = str(value).strip()
        lowered[name] = lowered[name] + ", " + value if name in lowered else value
    return Component(method.upper(), scheme, _authority(parts.netloc.rpartition("@")[2], scheme),
                     parts.path or "/", query, lowered)


def signature_base(components: Component, covered, params: dict) -> bytes:
    """RFC 9421 §2.5: one line per covered component, then ``"@signature-params"``.

    ``covered`` is the list of ``(name, component_params)`` pairs from the inner list.
    """
    lines = []
    seen = set()
    for name, component_params in covered:
        if not isinstance(name, str) or isinstance(name, Token):
            raise SignatureError("component identifiers must be strings")
        if component_params:
            raise SignatureError("component parameters are not supported")
        if name != name.lower() or name in seen or name == "@signature-params":
            raise SignatureError("bad or repeated component identifier")
        seen.add(name)
        value = components.value(name)
        if "\n" in value or "\r" in value:
            raise SignatureError("newline in a component value")
        lines.append(f'"{name}": {value}')
    lines.append('"@signature-params": ' + serialize_inner_list(covered, params))
    text = "\n".join(lines)
    if not text.isascii():
        raise SignatureError("non-ASCII signature base")
    return text.encode("ascii")


def signature_base_for(components: Component, names, params: dict) -> bytes:
    """Convenience for signers: ``names`` is a sequence of component names."""
    return signature_base(components, [(name, {}) for name in names], params)


# -- hmac-sha256 (RFC 9421 §3.3.3) ---------------------------------------------------

def hmac_sha256(key: bytes, base: bytes) -> bytes:
    return hmac.new(key, base, hashlib.sha256).digest()


def verify_hmac_sha256(key: bytes, base: bytes, signature: bytes) -> bool:
    """Constant-time comparison (RFC 9421 §7.3.3 / §3.2 step 7)."""
    return hmac.compare_digest(hmac_sha256(key, base), signature)


# -- Content-Digest (RFC 9530) --------------------------------------------------------

def content_digest(body: bytes, algorithm: str = "sha-256") -> str:
    """The ``Content-Digest`` field value for ``body``."""
    return f"{algorithm}=:" + base64.b64encode(DIGEST_ALGORITHMS[algorithm](body).digest()).decode("ascii") + ":"


def check_content_digest(value: str, body: bytes) -> bool:
    """True if every sha-256/sha-512 member of ``value`` matches ``body``.

    RFC 9530 §2: members with algorithms we do not know are ignored, but at least one
    known member must be present, or the body is unverified (False). A malformed field
    raises :class:`SignatureError`.
    """
    members = parse_dictionary(value)
    checked = False
    for name, (digest, _params) in members.items():
        hasher = DIGEST_ALGORITHMS.get(name)
        if hasher is None:
            continue
        if not isinstance(digest, bytes):
            raise SignatureError("Content-Digest members must be byte sequences")
        if not hmac.compare_digest(hasher(body).digest(), digest):
            return False
        checked = True
    return checked
