"""What the browser CSRF checks refuse with: one reason code per decision, and :class:`Refuse`.

Each code is both the event kind (``signed_requests.csrf.<code>`` through
:func:`wsgisec.events.emit`) and the ``reason`` member of the 403 problem response, so a
partner quoting a refusal and an operator reading the log see the same name. The codes
are a public contract: they stay as they are.
"""

from __future__ import annotations

__all__ = ["Refuse", "WHY", "CROSS_SITE", "SAME_SITE", "FETCH_SITE_INVALID", "ORIGIN_NULL",
           "ORIGIN_MISMATCH", "REFERER_MISMATCH", "COOKIE_MISSING", "TOKEN_MISSING", "TOKEN_INVALID",
           "TOKEN_MISMATCH", "TOKEN_EXPIRED", "SESSION_MISMATCH", "BODY_TOO_LARGE", "BODY_INVALID"]

# Event kinds and problem ``reason`` members (one name for both).
CROSS_SITE = "csrf-cross-site"
SAME_SITE = "csrf-same-site"
FETCH_SITE_INVALID = "csrf-fetch-site-invalid"
ORIGIN_NULL = "csrf-origin-null"
ORIGIN_MISMATCH = "csrf-origin-mismatch"
REFERER_MISMATCH = "csrf-referer-mismatch"
COOKIE_MISSING = "csrf-cookie-missing"
TOKEN_MISSING = "csrf-token-missing"
TOKEN_INVALID = "csrf-token-invalid"
TOKEN_MISMATCH = "csrf-token-mismatch"
TOKEN_EXPIRED = "csrf-token-expired"
SESSION_MISMATCH = "csrf-session-mismatch"
BODY_TOO_LARGE = "csrf-body-too-large"
BODY_INVALID = "csrf-body-invalid"

#: The event's short reason for each refusal code (never a token or cookie value).
WHY = {
    CROSS_SITE: "cross-site unsafe request (Sec-Fetch-Site)",
    SAME_SITE: "same-site unsafe request from an untrusted origin",
    FETCH_SITE_INVALID: "unknown Sec-Fetch-Site value",
    ORIGIN_NULL: "Origin: null",
    ORIGIN_MISMATCH: "Origin is not this service nor a trusted origin",
    REFERER_MISMATCH: "Referer is not this service nor a trusted origin",
    COOKIE_MISSING: "no CSRF cookie",
    TOKEN_MISSING: "no CSRF token in the form or header",
    TOKEN_INVALID: "malformed or forged CSRF token",
    TOKEN_MISMATCH: "CSRF token differs from the cookie's",
    TOKEN_EXPIRED: "CSRF token expired",
    SESSION_MISMATCH: "CSRF token bound to another session",
}


class Refuse(Exception):
    """A check refused the request: ``reason`` is one of the codes above; ``detail`` goes
    into the event (allowlisted values only: header names, origins, which check)."""

    def __init__(self, reason: str, **detail):
        super().__init__(reason)
        self.reason = reason
        self.detail = detail
