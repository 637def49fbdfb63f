"""The verification of one partner request (RFC 9421 §3.2 steps, RFC 9530), for the
signed_requests layer.

:class:`RequestVerifier` checks, in order: the request token
(:mod:`wsgisec.signed_requests.request_tokens`), the ``Signature-Input`` parameters and
covered components, the time (``created``/``expires``), the signing key
(:mod:`wsgisec.signed_requests.keys`), the signature, the ``Content-Digest`` and last the
nonce (consumed only once everything else verified, and only when the signature's
``created`` is not older than the store's nonce epoch, :mod:`.epoch`). Each refusal is a :class:`Reject`
carrying its reason code (the ``reason`` partners see), the event's detail, and a fixed,
secret-free hint that tells the partner what to fix; never a signature, a key or the
signature base.

The store is read once for the request token's record, the client's floor and the signing
key (``store.get_many``: one SQLite statement; on Redis cached or one round trip), then
once more where the nonce is added with the epoch (``NonceEpoch.add_nonce``: one Lua
script on Redis); the refusals keep the order above.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time

from .. import httpsig
from ..credentials import SIGNING_KEYS
from ..wsgi import has_content, read_body
from .epoch import NonceEpoch
from .request_tokens import RequestTokenError

__all__ = ["RequestVerifier", "Reject", "REASONS", "NONCES", "SIGNATURE_MISSING", "SIGNATURE_INVALID",
           "DIGEST_MISMATCH", "EXPIRED", "REPLAYED", "UNKNOWN_KEY", "BODY_TOO_LARGE"]

# Reason codes (issue 4), also the event kinds: one event per refusal.
SIGNATURE_MISSING = "signature-missing"
SIGNATURE_INVALID = "signature-invalid"
DIGEST_MISMATCH = "digest-mismatch"
EXPIRED = "expired"
REPLAYED = "replayed"
UNKNOWN_KEY = "unknown-key"
BODY_TOO_LARGE = "body-too-large"

#: Generic, fixed text for each reason: what the partner should do, nothing more.
REASONS = {
    SIGNATURE_MISSING: "This request must carry a request token and an HTTP message signature (RFC 9421).",
    SIGNATURE_INVALID: "The request token or the HTTP message signature is not valid.",
    DIGEST_MISMATCH: "The request content does not match its Content-Digest (RFC 9530).",
    EXPIRED: "The signature or request token is outside its validity period; check your clock and sign again.",
    REPLAYED: "This signature nonce was already used; sign every request with a fresh nonce.",
    UNKNOWN_KEY: "The signing key or request token is not known for this client.",
}

#: Store namespace of used (keyid, nonce) pairs.
NONCES = "nonces"

_NONCE = re.compile(r"^[\x21-\x7e]{8,128}$")
#: What to fix when the signature base cannot be built (httpsig's fixed messages).
_BASE_HINTS = {
    "covered header field is missing": "A covered header field is not in the request: send it "
                                       "or stop covering it.",
    "component parameters are not supported": "Cover plain components, without parameters "
                                              "such as ;sf or ;key.",
    "unsupported derived component": "Cover only @method @authority @scheme @path @query "
                                     "@target-uri @request-target and header fields.",
}


class Reject(Exception):
    """A refusal: ``code`` (the reason), the event ``detail``, and ``hint``, a fixed,
    secret-free sentence for the partner saying what to fix (never a signature, a key
    or the signature base)."""

    def __init__(self, code: str, check: str, *, hint: str = "", **detail):
        super().__init__(code)
        self.code = code
        self.hint = hint
        self.detail = dict(detail, check=check)


def _token_issued(tokens, header: str, claims, records) -> None:
    """Refuse a request token we did not issue or that was revoked (``records`` begin
    with the reads of ``RequestTokens.records_for``; nothing to judge without a store)."""
    if claims is None or tokens.store is None:
        return
    try:
        tokens.check_issued(claims, records[0], records[1])
    except RequestTokenError as error:
        raise Reject(error.code, "request-token", why=error.reason,
                     hint=error.hint.replace("X-Request-Token", header)) from None


class RequestVerifier:
    """The checks of one request, configured once by the layer (typed values)."""

    def __init__(self, *, store, tokens, request_token_header: str, require_request_token: bool,
                 require_signature: bool, required_components, required_params, max_clock_skew: int,
                 max_body_size: int, signature_label: str, clock=time.time):
        self.store = store
        self.tokens = tokens
        self.request_token_header = request_token_header
        self.token_key = "HTTP_" + request_token_header.upper().replace("-", "_")
        self.require_request_token = require_request_token
        self.require_signature = require_signature
        self.required_params = tuple(required_params)
        self.max_clock_skew = int(max_clock_skew)
        self.max_body_size = int(max_body_size)
        self.signature_label = signature_label
        self.clock = clock
        self.epoch = NonceEpoch(store, window=2 * self.max_clock_skew + 1)
        # The components checked for every request, and content-digest only with a body.
        self._always = tuple(name for name in required_components if name != "content-digest")
        self._digest_required = "content-digest" in required_components

    def verify(self, environ) -> dict:
        """The verified facts (client id, keyid, token id, label) or :class:`Reject`.

        May raise :class:`~wsgisec.store.StoreUnavailable` and
        :class:`~wsgisec.wsgi.BodyTooLarge` (the layer answers 503 and 413).
        """
        bearer = environ.get("wsgisec.client")
        bearer = bearer.get("id") if isinstance(bearer, dict) else bearer
        claims = self._request_token(environ, bearer)  # 1. who we issued a token to
        result = {} if claims is None else {"client_id": claims["client_id"], "token_id": claims["token_id"]}
        token_reads = [] if claims is None or self.tokens.store is None else self.tokens.records_for(claims)
        if not self.require_signature:
            _token_issued(self.tokens, self.request_token_header, claims,
                          self.store.get_many(token_reads) if token_reads else [])
            return result
        try:
            label, covered, params, signature = self._signature_input(environ)  # 2. RFC 9421 §3.2
        except Reject:
            if token_reads:  # a revoked request token is reported before a malformed signature
                _token_issued(self.tokens, self.request_token_header, claims, self.store.get_many(token_reads))
            raise
        keyid, nonce = params["keyid"], params.get("nonce")
        # The nonce epoch is read where the nonce is added (epoch.add_nonce: one step).
        reads = token_reads + [(SIGNING_KEYS, keyid)]
        records = self.store.get_many(reads)
        _token_issued(self.tokens, self.request_token_header, claims, records)
        has_content = self._covered(environ, covered, keyid)
        now = self.clock()
        self._time(params, now, keyid)  # 3. created/expires
        owner, key, key_created = self._key(keyid, now, claims, bearer,  # 4. the client's live key
                                            records[len(token_reads)])
        try:
            base = httpsig.signature_base(httpsig.environ_components(environ), covered, params)
        except httpsig.SignatureError as error:
            raise Reject(SIGNATURE_INVALID, "signature", why=str(error), keyid=keyid,
                         hint=_BASE_HINTS.get(str(error), "")) from None
        if not httpsig.verify_hmac_sha256(key, base, signature):
            # Never log or return the expected value or the base: it would be a valid
            # signature (or let the partner grind one).
            raise Reject(SIGNATURE_INVALID, "signature", why="signature does not verify", keyid=keyid,
                         hint="Sign the request exactly as it is sent (method, URL, covered "
                              "headers) with the key issued for this keyid.")
        self._content(environ, has_content, keyid)  # 5. RFC 9530
        # 6. Replay: the nonce is consumed last, once everything else verified.
        if nonce is not None:
            key_name = hashlib.sha256(f"{keyid}\0{nonce}".encode()).hexdigest()
            added = self.epoch.add_nonce(environ, now, key_created, params.get("created"), NONCES, key_name,
                                         {"keyid": keyid}, 2 * self.max_clock_skew + 1)
            if added is None:
                # The store lost the nonces recorded before its epoch: this may be a replay.
                # (created has whole seconds: one made in the second of the reset is refused.)
                raise Reject(EXPIRED, "signature", why="created before the nonce epoch", keyid=keyid,
                             hint="The signature was made before the service lost its replay "
                                  "records; sign the request again.")
            if not added:
                raise Reject(REPLAYED, "signature", why="nonce already used", keyid=keyid)
        result.update(keyid=keyid, label=label)
        result.setdefault("client_id", owner)
        return result

    def _request_token(self, environ, bearer) -> dict | None:
        """The claims of a valid request token of the bearer token's client, or None."""
        header = self.request_token_header
        token = environ.get(self.token_key)
        if not token:
            if self.require_request_token:
                raise Reject(SIGNATURE_MISSING, "request-token", why="request token missing",
                             hint=f"Send the request token you were issued in the {header} header.")
            return None
        if self.tokens is None:
            raise Reject(SIGNATURE_INVALID, "request-token", why="no secret_keys to verify tokens")
        try:
            # Signature and times; issued and not revoked: _token_issued, from verify()'s reads.
            claims = self.tokens.verify(token.strip(), check_revoked=False)
        except RequestTokenError as error:
            raise Reject(error.code, "request-token", why=error.reason,
                         hint=error.hint.replace("X-Request-Token", header)) from None
        if bearer and claims["client_id"] != bearer:
            raise Reject(UNKNOWN_KEY, "request-token", why="request token of another client",
                         token_client=claims["client_id"],
                         hint=f"The {header} belongs to another client than the access token.")
        return claims

    def _signature_input(self, environ):
        """``(label, covered, params, signature)`` of the signature to verify, well formed."""
        signature_input = environ.get("HTTP_SIGNATURE_INPUT")
        signature_field = environ.get("HTTP_SIGNATURE")
        if not signature_input or not signature_field:
            raise Reject(SIGNATURE_MISSING, "signature", why="Signature or Signature-Input missing",
                         hint="Send both Signature-Input and Signature (RFC 9421 §4).")
        try:
            inputs = httpsig.parse_dictionary(signature_input)
            signatures = httpsig.parse_dictionary(signature_field)
        except httpsig.SignatureError as error:
            raise Reject(SIGNATURE_INVALID, "signature", why=str(error),
                         hint="Signature-Input and Signature must be RFC 8941 dictionaries "
                              "(RFC 9421 §4.1, §4.2).") from None
        label = self.signature_label or next(iter(inputs), None)
        if label is None or label not in inputs:
            raise Reject(SIGNATURE_MISSING, "signature", why="no signature with the expected label",
                         hint=f"Label the signature {label!r}." if self.signature_label else "")
        covered, params = inputs[label]
        signature = signatures.get(label, (None,))[0]
        if not isinstance(covered, list) or not isinstance(signature, bytes):
            raise Reject(SIGNATURE_INVALID, "signature", why="malformed signature entry",
                         hint="Signature-Input needs an inner list and Signature a byte sequence "
                              "under the same label.")
        if params.get("alg", httpsig.ALGORITHM) != httpsig.ALGORITHM:
            raise Reject(SIGNATURE_INVALID, "signature", why="algorithm not hmac-sha256",
                         hint="Sign with hmac-sha256 (RFC 9421 §3.3.3).")
        for name in self.required_params:
            if name not in params:
                raise Reject(SIGNATURE_INVALID, "signature", why=f"parameter {name} missing",
                             hint=f"Add the {name} signature parameter (required: "
                                  f"{' '.join(self.required_params)}).")
        keyid, nonce = params.get("keyid"), params.get("nonce")
        if not isinstance(keyid, str) or not 1 <= len(keyid) <= 128:
            raise Reject(SIGNATURE_INVALID, "signature", why="keyid is not a string",
                         hint="keyid must be the string you were issued.")
        if any(params.get(name) is not None and (isinstance(params[name], bool) or not isinstance(params[name], int))
               for name in ("created", "expires")):
            raise Reject(SIGNATURE_INVALID, "signature", why="created/expires not integers",
                         hint="created and expires must be integer UNIX times (RFC 9421 §2.3).")
        if nonce is not None and (not isinstance(nonce, str) or not _NONCE.match(nonce)):
            raise Reject(SIGNATURE_INVALID, "signature", why="nonce malformed (8-128 characters)",
                         hint="nonce must be a string of 8 to 128 printable characters.")
        return label, covered, params, signature

    def _covered(self, environ, covered, keyid) -> bool:
        """Refuse a signature that leaves a required component out; True if the request
        has content (then content-digest must be covered)."""
        names = {name for name, _ in covered if isinstance(name, str)}
        for name in self._always:
            if not httpsig.is_covered(name, names):
                also = httpsig.COVERED_BY.get(name)
                raise Reject(SIGNATURE_INVALID, "signature", why=f"{name} not covered", keyid=keyid,
                             hint=f"The signature must cover {name}"
                                  + (f" (or {' or '.join(also)})" if also else "") + ".")
        has_content = self.has_content(environ)
        if has_content and self._digest_required and "content-digest" not in names:
            raise Reject(SIGNATURE_INVALID, "signature", why="content-digest not covered", keyid=keyid,
                         hint="A request with content must send Content-Digest (RFC 9530) and "
                              "the signature must cover content-digest.")
        return has_content

    def _time(self, params, now, keyid) -> None:
        """RFC 9421 §7.2.4 (created/expires) and our replay window."""
        created, expires = params.get("created"), params.get("expires")
        if created is not None and abs(now - created) > self.max_clock_skew:
            skew = int(now - created)
            where = f"{skew}s in the past" if skew > 0 else f"{-skew}s in the future"
            raise Reject(EXPIRED, "signature", why="created outside max_clock_skew", keyid=keyid,
                         skew=skew, hint=f"created is {where}; at most {self.max_clock_skew}s is "
                                         "accepted: sync your clock and sign just before sending.")
        if expires is not None and now > expires:
            raise Reject(EXPIRED, "signature", why="expires passed", keyid=keyid,
                         hint=f"expires passed {int(now - expires)}s ago.")

    def _key(self, keyid, now, claims, bearer, record) -> tuple[str, bytes, float | None]:
        """``(owner, key bytes, created)`` of a live key of the token's and bearer token's
        client (``record``: the key as read from the store, or None)."""
        if record is None or (record.get("expires") is not None and now > record["expires"]):
            raise Reject(UNKNOWN_KEY, "signature", why="unknown or retired keyid", keyid=keyid,
                         hint="The keyid is unknown or was retired: sign with your current "
                              "signing key.")
        owner = record.get("client_id")
        if (claims is not None and owner != claims["client_id"]) or (bearer and owner != bearer):
            raise Reject(UNKNOWN_KEY, "signature", why="signing key of another client", keyid=keyid,
                         hint="The keyid is not a signing key of this client.")
        try:
            return owner, base64.b64decode(record["key"]), record.get("created")
        except (KeyError, ValueError):
            raise Reject(UNKNOWN_KEY, "signature", why="signing key record unusable", keyid=keyid) from None

    def _content(self, environ, has_content, keyid) -> None:
        """RFC 9530: a sent Content-Digest is always checked; one is required with content."""
        digest_field = environ.get("HTTP_CONTENT_DIGEST")
        if digest_field is None and not (has_content and self._digest_required):
            return
        if digest_field is None:
            raise Reject(DIGEST_MISMATCH, "content-digest", why="Content-Digest missing", keyid=keyid,
                         hint="Send Content-Digest (sha-256 or sha-512) with the content.")
        try:
            body = read_body(environ, self.max_body_size)  # BodyTooLarge -> 413 in the layer
        except ValueError:
            raise Reject(DIGEST_MISMATCH, "content-digest", why="invalid Content-Length", keyid=keyid) from None
        try:
            matches = httpsig.check_content_digest(digest_field, body)
        except httpsig.SignatureError:
            matches = False
        if not matches:
            raise Reject(DIGEST_MISMATCH, "content-digest", why="body does not match Content-Digest",
                         keyid=keyid)

    def has_content(self, environ) -> bool:
        """Whether the request has content the digest rule protects (RFC 9112 §6.3):
        :func:`wsgisec.wsgi.has_content` (BodyTooLarge -> 413 in the layer)."""
        return has_content(environ, self.max_body_size)
