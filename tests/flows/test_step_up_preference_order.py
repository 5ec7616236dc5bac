"""Preference order (DESIGN §4.2; OIDC Core §3.1.2.1 acr_values "in order of preference"): the
first requested level the user can reach wins, not the lowest (keycloak/keycloak#31534)."""

from __future__ import annotations

from tests.helpers.factors import enroll_totp
from tests.helpers.stepup import answer_totp, authorize, id_token_claims


def test_first_reachable_level_wins_not_the_lowest(flows, app):
    """"phr mfa aal1" with TOTP enrolled: phr is unreachable, mfa (aal2) is reachable and is
    asked for although aal1 is already held; the returned acr is the value as requested."""
    flows.user("alice")
    secret = enroll_totp(app, "alice", steps_back=1)
    rp = flows.client("rp1")
    browser = flows.browser()
    flows.sign_in(browser, rp)

    page, secrets = authorize(browser, rp, acr_values="phr mfa aal1")
    claims = id_token_claims(rp, answer_totp(browser, page, secret), secrets)

    assert claims["acr"] == "mfa"
    assert "mfa" in claims["amr"] and "otp" in claims["amr"]


def test_an_unreachable_first_choice_falls_to_the_next_without_enrollment(flows, app):
    """No factor enrolled: "phr aal1" is answered at aal1 with no enrollment offered, because a
    requested level (aal1) is reachable (enrollment only when none is)."""
    flows.user("alice")
    rp = flows.client("rp1")
    browser = flows.browser()
    flows.sign_in(browser, rp)

    page, secrets = authorize(browser, rp, acr_values="phr aal1")

    assert id_token_claims(rp, page, secrets)["acr"] == "aal1"


def test_an_already_satisfied_level_needs_no_interaction(flows, app):
    flows.user("alice")
    rp = flows.client("rp1")
    browser = flows.browser()
    flows.sign_in(browser, rp)

    page, secrets = authorize(browser, rp, acr_values="aal1 aal2")

    assert id_token_claims(rp, page, secrets)["acr"] == "aal1"
