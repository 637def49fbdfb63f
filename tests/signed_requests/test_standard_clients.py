"""Standard RFC 9421 clients, with their defaults, against the served flagship (issue 10).

``wsgisec serve examples/partner_api.ini`` runs in a subprocess (token_auth in front of
signed_requests); the partner gets its credentials from the CLI and the token endpoint,
as README's quick-start does, and signs with an unmodified third-party library. One
partner serves the module (``partner``): no test here changes its client, keys or tokens.
"""

from __future__ import annotations

import base64
import secrets

import pytest
import requests


@pytest.fixture(scope="module")
def partner(flagship):
    """One partner's credentials, made by the CLI and the token endpoint (Flagship.partner)."""
    return flagship.partner()


def rhs_auth(partner, **kw):
    """requests-http-signature with its defaults: @method @authority @target-uri, plus the
    Authorization and Date headers it always covers and its Content-Digest."""
    from requests_http_signature import HTTPSignatureAuth, algorithms

    return HTTPSignatureAuth(key=base64.b64decode(partner["signing_key"]), key_id=partner["keyid"],
                             signature_algorithm=algorithms.HMAC_SHA256, use_nonce=True, **kw)


def partner_headers(partner):
    return {"Authorization": "Bearer " + partner["access_token"], "X-Request-Token": partner["request_token"]}


def test_requests_http_signature_defaults_get_200_from_the_flagship(flagship, partner):
    with flagship.session() as session:
        response = session.get(flagship.url + "/api/items?q=Wid", auth=rhs_auth(partner),
                               headers=partner_headers(partner), timeout=10)
        assert response.status_code == 200, response.text
        assert response.json()["items"][0]["name"] == "Widget"
        signed = response.request.headers["Signature-Input"]
        assert '"@target-uri"' in signed and '"authorization"' in signed  # really the defaults
        created = session.post(flagship.url + "/api/items", json={"name": "Sprocket", "price": 2.5},
                               auth=rhs_auth(partner), headers=partner_headers(partner), timeout=10)
        assert created.status_code == 201, created.text
        whoami = session.get(flagship.url + "/api/whoami", auth=rhs_auth(partner),
                             headers=partner_headers(partner), timeout=10)
        assert whoami.json()["user"] == partner["client_id"]


def test_http_message_signatures_signer_gets_200_from_the_flagship(flagship, partner):
    from http_message_signatures import HTTPMessageSigner, HTTPSignatureKeyResolver, algorithms

    class KeyResolver(HTTPSignatureKeyResolver):  # the library's README shape
        keys = {partner["keyid"]: base64.b64decode(partner["signing_key"])}

        def resolve_public_key(self, key_id):
            return self.keys[key_id]

        def resolve_private_key(self, key_id):
            return self.keys[key_id]

    signer = HTTPMessageSigner(signature_algorithm=algorithms.HMAC_SHA256, key_resolver=KeyResolver())
    with flagship.session() as session:
        for method, path, body in [("GET", "/api/items?q=Wid", None),
                                   ("POST", "/api/items", {"name": "Cog", "price": 1.0})]:
            request = requests.Request(method, flagship.url + path, json=body,
                                       headers=partner_headers(partner)).prepare()
            signer.sign(request, key_id=partner["keyid"], nonce=secrets.token_urlsafe(16), body=request.body)
            assert '"@target-uri"' in request.headers["Signature-Input"]
            response = session.send(request, timeout=10)
            assert response.status_code in (200, 201), response.text


def test_a_signature_over_another_target_uri_is_refused_by_the_flagship(flagship, partner):
    with flagship.session() as session:
        request = requests.Request("GET", flagship.url + "/api/items?q=Wid",
                                   headers=partner_headers(partner)).prepare()
        rhs_auth(partner)(request)
        request.url = flagship.url + "/api/items?q=Gad"  # sent elsewhere than signed
        response = session.send(request, timeout=10)
    assert response.status_code == 401 and response.json()["reason"] == "signature-invalid"


# -- wsgisec.partner.PartnerAuth against the same served flagship --------------------------------

def partner_auth(flagship, partner, base, **kw):
    from wsgisec.partner import PartnerAuth

    return PartnerAuth(base, client_id=partner["client_id"], client_secret=partner["client_secret"],
                       request_token=partner["request_token"], keyid=partner["keyid"],
                       signing_key=partner["signing_key"], scope="items:read", **kw)


def test_partner_auth_surfaces_the_servers_refusal(flagship, partner):
    """Plain HTTP without the proxy: the https layer refuses the token request with 403."""
    from wsgisec.partner import TokenError

    base = f"http://127.0.0.1:{flagship.port}"
    with pytest.raises(TokenError) as raised:
        requests.get(base + "/api/items", auth=partner_auth(flagship, partner, base), timeout=10)
    error = raised.value
    assert error.status == 403 and "(HTTP 403)" in str(error)
    # The https layer's problem document has no OAuth code; its detail is what to fix.
    assert "HTTPS" in error.error_description and error.error_description in str(error)
    assert partner["client_secret"] not in str(error)


def test_partner_auth_with_extra_headers_for_a_local_tls_proxy(flagship, partner):
    base = f"http://127.0.0.1:{flagship.port}"
    auth = partner_auth(flagship, partner, base, headers={"X-Forwarded-Proto": "https"})
    response = requests.get(base + "/api/items?q=Wid", auth=auth, timeout=10)
    assert response.status_code == 200, response.text


def test_partner_auth_with_a_session_that_reaches_the_proxy(flagship, partner):
    with flagship.session() as session:
        auth = partner_auth(flagship, partner, flagship.url, session=session)
        response = session.get(flagship.url + "/api/items?q=Wid", auth=auth, timeout=10)
    assert response.status_code == 200, response.text
