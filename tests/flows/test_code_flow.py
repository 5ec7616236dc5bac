"""The authorization code flow end to end, driven by Authlib's OAuth2Session."""

from __future__ import annotations

import requests


def test_sign_in_issues_verified_id_token_with_auth_context(flows):
    user_id = flows.user("alice")
    rp = flows.client("rp1")
    browser = flows.browser()

    result = flows.sign_in(browser, rp)

    assert result.callback.params["state"] == result.secrets["state"]
    assert result.callback.params["iss"] == rp.issuer
    claims = result.claims
    assert claims["sub"] == user_id
    assert claims["acr"] == "aal1"
    assert claims["amr"] == ["pwd"]
    assert isinstance(claims["auth_time"], int)
    assert claims["sid"]
    # Scope claims come from UserInfo when an access token is issued (OIDC Core §5.4).
    assert "email" not in claims
    userinfo = requests.get(rp.issuer + "/userinfo", timeout=10, headers={
        "Authorization": f"Bearer {result.token['access_token']}"}).json()
    assert userinfo["sub"] == user_id
    assert userinfo["email"] == "alice@example.test"


def test_claims_parameter_releases_individual_claims(flows):
    """OIDC Core §5.5: claims asked for by name, in the ID token or from UserInfo."""
    flows.user("alice", email="alice@example.test")
    rp = flows.client("rp1")
    request = '{"id_token": {"email": {"essential": true}, "acr": null}, ' \
              '"userinfo": {"name": null, "unknown_claim": null}}'
    result = flows.sign_in(flows.browser(), rp, scope="openid", claims=request)

    assert result.claims["email"] == "alice@example.test"
    assert "name" not in result.claims
    userinfo = requests.get(rp.issuer + "/userinfo", timeout=10, headers={
        "Authorization": f"Bearer {result.token['access_token']}"}).json()
    assert userinfo == {"sub": result.claims["sub"], "name": "Alice"}
