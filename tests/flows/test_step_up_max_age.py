"""`max_age` re-authentication (OIDC Core §3.1.2.1; DESIGN §4.3): a session older than
max_age signs in again with the primary factor and whatever the required level needs."""

from __future__ import annotations

import time

import pyotp

from tests.helpers.factors import enroll_totp
from tests.helpers.rp import form_action, hidden_inputs, page_name
from tests.helpers.stepup import answer_totp, authorize, id_token_claims


def test_max_age_reauthenticates_with_password_and_factor(flows, app):
    flows.user("alice")
    secret = enroll_totp(app, "alice", steps_back=1)
    rp = flows.client("rp1")
    browser = flows.browser()
    first, _ = authorize(browser, rp, acr_values="aal2")
    answer_totp(browser, browser.follow(browser.submit_login(first, "alice")), secret)
    time.sleep(2)

    page, secrets = authorize(browser, rp, acr_values="aal2", max_age="1")
    assert page_name(page.text) == "login"
    page = browser.follow(browser.submit_login(page, "alice"))
    if page_name(page.text) == "mfa-totp":
        # The code just used is spent; the next time step is within the ±1 window.
        code = pyotp.TOTP(secret).at(time.time() + 30)
        page = browser.follow(browser.post(form_action(page.text, "/mfa/verify"), {
            **hidden_inputs(page.text), "code": code}))
    claims = id_token_claims(rp, page, secrets)

    assert claims["acr"] == "aal2"
    assert time.time() - claims["auth_time"] < 5


def test_a_session_younger_than_max_age_is_not_asked_again(flows, app):
    flows.user("alice")
    rp = flows.client("rp1")
    browser = flows.browser()
    first = flows.sign_in(browser, rp)

    page, secrets = authorize(browser, rp, max_age="600")
    claims = id_token_claims(rp, page, secrets)

    assert claims["auth_time"] == first.claims["auth_time"]


def test_client_default_max_age_applies_when_none_is_sent(flows, app):
    flows.user("alice")
    rp = flows.client("rp1", default_max_age=1)
    browser = flows.browser()
    flows.sign_in(browser, rp)
    time.sleep(2)

    page, _ = authorize(browser, rp)

    assert page_name(page.text) == "login"
