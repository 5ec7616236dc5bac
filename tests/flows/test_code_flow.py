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
    assert claims["email"] == "alice@example.test"
    userinfo = requests.get(rp.issuer + "/userinfo", timeout=10, headers={
        "Authorization": f"Bearer {result.token['access_token']}"}).json()
    assert userinfo["sub"] == user_id
