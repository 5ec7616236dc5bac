"""Client `minimum_acr` and `default_acr_values` (DESIGN §4.1, §5): applied without a request."""

from __future__ import annotations

from tests.helpers.factors import enroll_totp
from tests.helpers.rp import callback_params, page_name
from tests.helpers.stepup import (
    answer_totp,
    authorize,
    first_page_after_login,
    id_token_claims,
)


def test_client_minimum_acr_applies_without_a_request(flows, app):
    flows.user("alice")
    secret = enroll_totp(app, "alice", steps_back=1)
    rp = flows.client("bank", minimum_acr="aal2")
    browser = flows.browser()

    page, secrets = authorize(browser, rp)
    page = browser.follow(browser.submit_login(page, "alice"))

    assert id_token_claims(rp, answer_totp(browser, page, secret), secrets)["acr"] == "aal2"


def test_client_minimum_acr_outranks_a_weaker_request(flows, app):
    flows.user("alice")
    enroll_totp(app, "alice", steps_back=1)
    rp = flows.client("bank", minimum_acr="aal2")

    page = first_page_after_login(flows.browser(), rp, acr_values="aal1")

    assert page_name(page.text) == "mfa-totp"


def test_client_minimum_acr_unreachable_is_unmet(flows, app):
    flows.user("alice")
    enroll_totp(app, "alice", steps_back=1)
    rp = flows.client("bank", minimum_acr="phrh")
    browser = flows.browser()

    page, _ = authorize(browser, rp)
    page = browser.follow(browser.submit_login(page, "alice"))

    # Enrolling a passkey would not reach phrh without an attested device either: unmet.
    assert callback_params(page).params["error"] == "unmet_authentication_requirements"


def test_client_default_acr_values_apply_when_none_are_sent(flows, app):
    flows.user("alice")
    secret = enroll_totp(app, "alice", steps_back=1)
    rp = flows.client("rp1", default_acr_values=["aal2"])
    browser = flows.browser()

    page, secrets = authorize(browser, rp)
    page = browser.follow(browser.submit_login(page, "alice"))

    assert id_token_claims(rp, answer_totp(browser, page, secret), secrets)["acr"] == "aal2"
