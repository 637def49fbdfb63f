"""The CSRF token itself: signed, time-stamped and bound to the legacy app's session.

OWASP CSRF Prevention Cheat Sheet, "Signed Double-Submit Cookie". A token is an
itsdangerous ``TimestampSigner`` value (salt ``wsgisec.csrf``, HMAC-SHA256) made of a
random nonce and an HMAC of the session cookie's value (the session id itself never
appears). :class:`TokenSigner` issues tokens, decides whether a cookie's token can be kept
for a response, and verifies a submitted token against the cookie's: valid, younger than
``max_age``, equal (constant time) and bound to the session that sends it. Keys rotate
oldest first: new tokens use the last key, every listed key is accepted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner

from .refusals import SESSION_MISMATCH, TOKEN_EXPIRED, TOKEN_INVALID, TOKEN_MISMATCH, Refuse
from .tokens import unmask

__all__ = ["TokenSigner", "SALT"]

SALT = "wsgisec.csrf"


class TokenSigner:
    """Issue and verify CSRF tokens with ``keys`` (oldest first), valid for ``max_age`` seconds.

    ``bind_sessions`` is false when no session cookie is configured: tokens then carry no
    binding (``wsgisec check`` warns about that).
    """

    def __init__(self, keys, *, max_age: int, clock, bind_sessions: bool):
        signer = TimestampSigner(keys, salt=SALT, digest_method=hashlib.sha256)
        signer.get_timestamp = lambda: int(clock())  # the injectable clock, for expiry
        self._signer = signer
        self.max_age = max_age
        self.clock = clock
        self.bind_sessions = bind_sessions
        # One binding key per secret (oldest first, like the signer): new tokens use the last.
        self._binding_keys = tuple(
            hmac.new(key.encode("utf-8") if isinstance(key, str) else key,
                     b"wsgisec.csrf.session-binding", hashlib.sha256).digest() for key in keys)

    def _binding(self, session, key: bytes) -> bytes:
        if not session or not self.bind_sessions:
            return b"-"
        digest = hmac.digest(key, session.encode("utf-8", "surrogatepass"), "sha256")[:18]
        return base64.urlsafe_b64encode(digest)

    def bound_to(self, value: bytes, session) -> bool:
        binding = value.partition(b".")[2]
        return any(hmac.compare_digest(binding, self._binding(session, key)) for key in self._binding_keys)

    def issue(self, session=None) -> str:
        """A new (unmasked) token bound to ``session`` (the session cookie's value)."""
        value = secrets.token_urlsafe(16).encode("ascii") + b"." + self._binding(session, self._binding_keys[-1])
        return self._signer.sign(value).decode("ascii")

    def token_for(self, cookie_token, session, verified=None):
        """(token, must_set_cookie): keep a valid, bound, fresh cookie token, else a new one.

        ``verified`` is the cookie token's (value, signed_at) when the request check has
        already verified it, so it is not verified twice.
        """
        if cookie_token:
            if verified is None:
                try:
                    verified = self._signer.unsign(cookie_token, max_age=self.max_age, return_timestamp=True)
                except BadSignature:
                    verified = None
            if verified is not None:
                value, signed_at = verified
                if (self.bound_to(value, session)
                        and self.clock() - signed_at.timestamp() < self.max_age / 2):
                    return cookie_token, False
        return self.issue(session), True

    def verify(self, cookie_token: str, submitted: str, source: str, session):
        """The cookie's token, checked against the ``submitted`` (masked) one; its
        (value, signed_at), or :class:`~.refusals.Refuse` naming what failed."""
        try:
            value, signed_at = self._signer.unsign(cookie_token, max_age=self.max_age, return_timestamp=True)
        except SignatureExpired:
            raise Refuse(TOKEN_EXPIRED, check="cookie") from None
        except BadSignature:
            raise Refuse(TOKEN_INVALID, check="cookie") from None
        unmasked = unmask(submitted)
        if unmasked is None:
            raise Refuse(TOKEN_INVALID, check=source)
        if not hmac.compare_digest(unmasked, cookie_token.encode("latin-1")):
            raise Refuse(TOKEN_MISMATCH, check=source)
        if not self.bound_to(value, session):
            raise Refuse(SESSION_MISMATCH, check="session")
        return value, signed_at
