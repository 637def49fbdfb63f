"""How the signed_requests layer answers a refused partner request.

A verification failure (:class:`~.verify.Reject`) is a 401 problem response (RFC 9457)
with the ``reason`` code partners see, one event of that kind, and a
``WWW-Authenticate: Signature`` challenge; a missing or invalid signature also gets
``Accept-Signature`` (RFC 9421 §5.1), which names the components and parameters to sign.
A store that cannot be reached is a 503 with ``Retry-After`` (fail closed), a body over
``max_body_size`` a 413. Every answer carries an incident id; none carries a signature,
a key or the signature base.
"""

from __future__ import annotations

from .. import events, httpsig
from ..responses import problem, store_unavailable
from .verify import BODY_TOO_LARGE, REASONS, SIGNATURE_INVALID, SIGNATURE_MISSING, Reject

__all__ = ["Refusals"]

_log = events.logger_for("signed_requests")


class Refusals:
    """The refusals of one layer, with the challenge headers built once from its policy."""

    def __init__(self, *, store, required_components, required_params, signature_label=""):
        self.store = store
        self._www_authenticate = ('Signature realm="wsgisec", '
                                  'error="signature required", algorithm="hmac-sha256"')
        # RFC 9421 §5.1: tell the partner which components and parameters to sign.
        self.accept_signature = httpsig.serialize_dictionary({
            (signature_label or "sig1"): (
                [(name, {}) for name in required_components],
                {**{param: True for param in required_params if param != "alg"},
                 "alg": "hmac-sha256"})})

    def rejected(self, environ, reject: Reject):
        """The 401 for a request that failed verification."""
        code = reject.code
        incident = events.emit(environ, code, reject.detail.get("why", code), store=self.store,
                               logger=_log, detail={k: v for k, v in reject.detail.items() if k != "why"})
        headers = [("WWW-Authenticate", self._www_authenticate.replace(
            "signature required", code))]
        if code in (SIGNATURE_MISSING, SIGNATURE_INVALID):
            headers.append(("Accept-Signature", self.accept_signature))
        detail = f"{REASONS[code]} {reject.hint}" if reject.hint else REASONS[code]
        return problem(environ, 401, detail, incident=incident, headers=headers,
                       extra={"reason": code})

    def unavailable(self, environ, error):
        """503: the store is down. Logged with the incident id the caller sees (never to the
        store: it is down), so an operator can find the 503 a partner quotes."""
        return store_unavailable(environ, "signed_requests", error)

    def too_large(self, environ, limit: int):
        """413: the body is larger than ``max_body_size`` (its digest cannot be checked)."""
        incident = events.emit(environ, BODY_TOO_LARGE, "body larger than max_body_size",
                               store=self.store, logger=_log, detail={"limit": limit})
        return problem(environ, 413, "The request content is too large.", incident=incident)
