"""WebTest helpers: call a wsgisec-protected app as a signed, authenticated partner.

::

    from wsgisec.testing import PartnerTestApp

    app = PartnerTestApp.for_client(wrapped_app, "c_test")      # issues key + token itself
    app.post_json("/items", {"name": "x"}).json

    # or with credentials you already have:
    app = PartnerTestApp(wrapped_app, keyid="k_...", signing_key="base64...",
                         request_token="...", access_token="...")

Every request made through the ``TestApp`` methods (``get``, ``post``, ``post_json``,
``put``, ``delete``, ``request`` ...) gets ``X-Request-Token``, an ``Authorization:
Bearer`` header when an access token is given, a ``Content-Digest`` and an RFC 9421
signature computed from the exact environ WebTest sends, so what the app sees is what
a real partner would send. Pass ``extra_environ=UNSIGNED`` to a single call to send it
without any partner credential (e.g. to test a refusal).
"""

from __future__ import annotations

import webtest

from . import httpsig, pipeline
from .partner import DEFAULT_COMPONENTS, sign_headers

__all__ = ["PartnerTestApp", "partner_credentials", "UNSIGNED"]

#: ``extra_environ`` for one request sent without token, signature or bearer token.
UNSIGNED = {"wsgisec.testing.unsigned": True}


def partner_credentials(app, client_id: str, *, grace: int = 0) -> dict:
    """Issue a signing key and a request token for ``client_id`` from the app's
    :class:`~wsgisec.signed_requests.SignedRequests` layer (for tests)."""
    from .signed_requests import SignedRequests

    layer = app if isinstance(app, SignedRequests) else pipeline.find_layer(app, SignedRequests)
    if layer is None:
        raise LookupError("no SignedRequests layer in this app")
    key = layer.issue_signing_key(client_id, grace=grace)
    credentials = {"client_id": client_id, "keyid": key["keyid"], "signing_key": key["key"],
                   "request_token_header": layer.request_token_header}
    if layer.tokens is not None:
        credentials["request_token"] = layer.issue_request_token(client_id)[0]
    return credentials


class PartnerTestApp(webtest.TestApp):
    """A ``webtest.TestApp`` that signs every request as a partner would."""

    def __init__(self, app, *, keyid: str, signing_key, request_token: str | None = None,
                 access_token: str | None = None, client_id: str | None = None,
                 request_token_header: str = "X-Request-Token", components=DEFAULT_COMPONENTS,
                 **testapp_kwargs):
        super().__init__(app, **testapp_kwargs)
        self.client_id = client_id
        self.keyid = keyid
        self.signing_key = signing_key
        self.request_token = request_token
        self.access_token = access_token
        self.request_token_header = request_token_header
        self.components = tuple(components)

    @classmethod
    def for_client(cls, app, client_id: str, *, access_token: str | None = None, **testapp_kwargs):
        """Issue fresh credentials for ``client_id`` and return a signing TestApp."""
        credentials = partner_credentials(app, client_id)
        return cls(app, access_token=access_token, **credentials, **testapp_kwargs)

    def do_request(self, req, status=None, expect_errors=None):
        if req.environ.pop("wsgisec.testing.unsigned", False):
            return super().do_request(req, status=status, expect_errors=expect_errors)
        if self.request_token:
            req.headers[self.request_token_header] = self.request_token
        if self.access_token and "Authorization" not in req.headers:
            req.headers["Authorization"] = f"Bearer {self.access_token}"
        # WebTest fills in host and scheme from extra_environ when it sends the request;
        # do the same now so the signature covers what the app will see.
        for key, value in self.extra_environ.items():
            req.environ.setdefault(key, value)
        body = req.body
        view = httpsig.environ_components(req.environ)
        url = f"{view.scheme}://{view.authority}{view.path}" + (
            "?" + view.query if view.query is not None else "")
        components = list(self.components)
        if self.request_token and self.request_token_header.lower() not in components:
            components.append(self.request_token_header.lower())
        req.headers.update(sign_headers(req.method, url, dict(req.headers), body, keyid=self.keyid,
                                        signing_key=self.signing_key, components=components,
                                        digest=bool(body) or req.method not in ("GET", "HEAD", "OPTIONS")))
        return super().do_request(req, status=status, expect_errors=expect_errors)
