"""Voluntary acr that cannot be met → tokens with the acr actually achieved (DESIGN §4.5;
OIDC Core §3.1.2.1: acr_values is a voluntary claim request)."""

from __future__ import annotations

from tests.helpers.factors import enroll_totp
from tests.helpers.stepup import authorize, id_token_claims


def test_voluntary_unmet_issues_the_acr_achieved(flows, app):
    flows.user("alice")
    enroll_totp(app, "alice", steps_back=1)
    rp = flows.client("rp1")
    browser = flows.browser()
    flows.sign_in(browser, rp)

    page, secrets = authorize(browser, rp, acr_values="phrh")
    claims = id_token_claims(rp, page, secrets)

    assert claims["acr"] == "aal1"
    assert claims["amr"] == ["pwd"]


def test_a_voluntary_acr_claim_request_is_not_an_error_either(flows, app):
    flows.user("alice")
    rp = flows.client("rp1")
    browser = flows.browser()
    flows.sign_in(browser, rp)
    request = '{"id_token": {"acr": {"values": ["phrh"]}}}'

    page, secrets = authorize(browser, rp, claims=request)

    assert id_token_claims(rp, page, secrets)["acr"] == "aal1"
