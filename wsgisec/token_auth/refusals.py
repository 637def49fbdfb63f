"""What token_auth's guard, endpoints and client authentication share: event kinds, store
namespaces, :class:`TokenError`, and the two refusals both the guard and the endpoints give
(:func:`plaintext`, :func:`unavailable`).

Event kinds are the codes of :func:`wsgisec.events.emit` (the event's ``kind`` is
``token_auth.<code>``); never a token, secret or query string goes into an event.
"""

from __future__ import annotations

from .. import events
from ..credentials import plaintext_refusal
from ..responses import problem, store_unavailable

__all__ = ["TokenError", "SPENT", "REVOKED_FAMILIES", "LOCKS", "FAILURES", "TOKEN_MISSING", "TOKEN_INVALID", "TOKEN_IN_QUERY",
           "INSUFFICIENT_SCOPE", "CLIENT_AUTH_FAILED", "CLIENT_AUTH_THROTTLED", "CLIENT_DISABLED",
           "HASHING_BUSY",
           "REFRESH_TOKEN_REUSE", "TOKEN_REVOKED", "OAUTH_REQUEST_INVALID", "PLAINTEXT_REFUSED",
           "PATH_NOT_NORMALIZED", "METHOD_INVALID", "STORE_UNAVAILABLE", "plaintext", "unavailable"]

_log = events.logger_for("token_auth")

# Event kinds (one per decision).
TOKEN_MISSING = "token-missing"
TOKEN_INVALID = "token-invalid"
TOKEN_IN_QUERY = "token-in-query"
INSUFFICIENT_SCOPE = "insufficient-scope"
CLIENT_AUTH_FAILED = "client-auth-failed"
CLIENT_AUTH_THROTTLED = "client-auth-throttled"
CLIENT_DISABLED = "client-disabled"
#: No password-hashing slot freed in time (``max_concurrent_hashes``): 503, nobody passes.
HASHING_BUSY = "hashing-busy"
REFRESH_TOKEN_REUSE = "refresh-token-reuse"
TOKEN_REVOKED = "token-revoked"
OAUTH_REQUEST_INVALID = "oauth-request-invalid"
PLAINTEXT_REFUSED = "plaintext-refused"
PATH_NOT_NORMALIZED = "path-not-normalized"
METHOD_INVALID = "method-invalid"
STORE_UNAVAILABLE = "store-unavailable"

#: Spent refresh tokens (digest -> family), kept until they would have expired, so a
#: second use is recognised as theft (reuse detection) rather than as an unknown token.
SPENT = "token_auth.spent"
#: Refresh-token families revoked after a reuse (family -> reason), kept as long as a
#: refresh token lives: a rotation racing the revocation on another host checks it after
#: storing its new pair, so the pair cannot outlive the revocation.
REVOKED_FAMILIES = "token_auth.revoked_families"
#: Lock-outs after too many failed client authentications: ``addr:<ip>`` and
#: ``client-addr:<id>@<ip>``, never a client id alone.
LOCKS = "token_auth.locks"
FAILURES = "token_auth.failures"
#: Callers that authenticated a client before: ``<id>@<ip>`` -> ``{"since": t}`` for
#: :data:`KNOWN_CALLER_TTL`. Their checks do not spend the failed-check budget
#: (:mod:`wsgisec.token_auth.hashing`), so a flood from strangers cannot keep a partner
#: out even in a process that has not seen it yet.
KNOWN_CALLERS = "token_auth.known_callers"
KNOWN_CALLER_TTL = 30 * 86400


class TokenError(Exception):
    """An OAuth error answer (RFC 6749 §5.2): carried to one place that logs and answers."""

    def __init__(self, status: int, error: str, description: str, *, kind: str | None = None,
                 severity: str = "warning", headers=(), detail: dict | None = None,
                 recorded: bool = False):
        super().__init__(error)
        #: True when the event was already emitted (the answer reuses its incident id).
        self.recorded = recorded
        self.status = status
        self.error = error
        self.description = description
        self.kind = kind
        self.severity = severity
        self.headers = list(headers)
        self.detail = detail


def plaintext(environ, start_response, store, extra=None):
    """A request that did not arrive over TLS: refuse it; revoke the tokens it carried.

    A credential that crossed the wire in clear text must be treated as stolen; the rule
    is :func:`wsgisec.credentials.plaintext_refusal`, the one the https layer applies when
    it sits in front of us (then it has answered already). Without a credential: 403 too.
    """
    refusal = plaintext_refusal(environ, store=store, logger=_log, extra=extra)
    if refusal is not None:
        return refusal(environ, start_response)
    incident = events.emit(environ, PLAINTEXT_REFUSED, "plain HTTP request refused", severity="info",
                           store=store, logger=_log)
    return problem(environ, 403, "This service is only available over HTTPS.", incident=incident,
                   extra=extra)(environ, start_response)


def unavailable(environ, start_response, error):
    """503: without the store nobody is let through (DESIGN "Fail closed")."""
    return store_unavailable(environ, "token_auth", error)(environ, start_response)
