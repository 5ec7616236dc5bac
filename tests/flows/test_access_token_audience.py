"""The ``aud`` of JWT access tokens (RFC 9068 §3): the configured resource servers
(``tokens.access_token_audience``), the same in introspection (RFC 7662 §2.2), and checked by
``idp.resource`` resource servers (RFC 9068 §4)."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from flask import Flask, g
from joserfc import jwt

from idp import resource
from idp.resource import require_acr

API = "https://api.example.test"
OTHER = "https://other.example.test"


@pytest.fixture
def app_overrides() -> dict[str, Any]:
    return {"tokens": {"access_token_audience": [API]}}


def _api(issuer: str, audience: str) -> Any:
    api = Flask("test-api")
    api.config.update(IDP_ISSUER=issuer, IDP_AUDIENCE=audience)
    resource.init_app(api)

    @api.get("/me")
    @require_acr("aal1")
    def me() -> dict[str, Any]:
        return {"sub": g.access_token["sub"]}

    return api.test_client()


def test_access_tokens_carry_the_configured_audience(flows):
    user_id = flows.user("alice")
    rp = flows.client("rp1")
    introspector = flows.client("rs", grant_types=["client_credentials"], redirect_uris=[],
                                scope="idp:introspect")
    result = flows.sign_in(flows.browser(), rp)
    access = result.token["access_token"]

    claims = jwt.decode(access, rp.jwks(), algorithms=["ES256"]).claims
    assert claims["aud"] == API
    assert claims["client_id"] == "rp1"
    assert result.claims["aud"] == ["rp1"]  # the ID token is still for the client
    body = requests.post(rp.issuer + "/introspect", data={"token": access}, timeout=10,
                         auth=(introspector.client_id, introspector.client_secret)).json()
    assert body["active"] is True and body["aud"] == API
    bearer = {"Authorization": f"Bearer {access}"}
    assert _api(rp.issuer, API).get("/me", headers=bearer).get_json() == {"sub": user_id}
    for audience in ("rp1", OTHER):
        refused = _api(rp.issuer, audience).get("/me", headers=bearer)
        assert refused.status_code == 401
        assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]


def test_refreshed_and_client_credentials_tokens_carry_it_too(flows):
    flows.user("alice")
    rp = flows.client("rp1", grant_types=["authorization_code", "refresh_token"])
    machine = flows.client("svc", grant_types=["client_credentials"], redirect_uris=[],
                           scope="openid")
    result = flows.sign_in(flows.browser(), rp)

    refreshed = requests.post(rp.issuer + "/token", timeout=10, auth=(rp.client_id,
                              rp.client_secret), data={
        "grant_type": "refresh_token", "refresh_token": result.token["refresh_token"]}).json()
    service = requests.post(rp.issuer + "/token", timeout=10, auth=(
        machine.client_id, machine.client_secret),
        data={"grant_type": "client_credentials"}).json()

    for token in (refreshed["access_token"], service["access_token"]):
        assert jwt.decode(token, rp.jwks(), algorithms=["ES256"]).claims["aud"] == API
