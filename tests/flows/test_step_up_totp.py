"""Step-up from aal1 to aal2 with TOTP: only the missing proof is asked (DESIGN §4.4)."""

from __future__ import annotations

import time

import pyotp

from tests.helpers.factors import enroll_totp
from tests.helpers.rp import CALLBACK, callback_params, form_action, hidden_inputs, page_name


def _answer_totp(browser, page, secret, at=None):
    assert page_name(page.text) == "mfa-totp", page.text[:400]
    assert 'autocomplete="one-time-code"' in page.text
    fields = hidden_inputs(page.text)
    code = pyotp.TOTP(secret).at(at or time.time())
    return browser.post(form_action(page.text, "/mfa/verify"), {**fields, "code": code})


def test_aal1_session_steps_up_to_aal2_with_one_totp_challenge(flows, app):
    flows.user("alice")
    secret = enroll_totp(app, "alice", steps_back=1)
    rp = flows.client("rp1")
    browser = flows.browser()
    first = flows.sign_in(browser, rp)
    assert first.claims["acr"] == "aal1"
    session_before = browser.session.cookies.get("idp_session")

    url, secrets = rp.authorize_url(acr_values="aal2")
    page = browser.follow(browser.get(url))
    # No password again: straight to the TOTP challenge.
    answered = browser.follow(_answer_totp(browser, page, secret))
    callback = callback_params(answered)
    token = rp.exchange(callback.code, secrets["code_verifier"])
    claims = rp.verify_id_token(token["id_token"], secrets["nonce"])

    assert claims["acr"] == "aal2"
    assert claims["amr"] == ["pwd", "otp", "mfa"]
    assert claims["auth_time"] >= first.claims["auth_time"]
    assert claims["sid"] == first.claims["sid"]
    assert browser.session.cookies.get("idp_session") != session_before


def test_the_same_totp_code_works_once(flows, app):
    flows.user("alice")
    secret = enroll_totp(app, "alice", steps_back=1)
    rp = flows.client("rp1")
    browser = flows.browser()
    flows.sign_in(browser, rp)
    url, _ = rp.authorize_url(acr_values="aal2", prompt="login")
    page = browser.follow(browser.get(url))
    page = browser.follow(browser.submit_login(page, "alice"))
    code = pyotp.TOTP(secret).now()
    fields = hidden_inputs(page.text)
    callback_params(browser.follow(browser.post(form_action(page.text, "/mfa/verify"),
                                                {**fields, "code": code})))

    other = flows.browser()
    url, _ = rp.authorize_url(acr_values="aal2")
    page = other.follow(other.get(url))
    page = other.follow(other.submit_login(page, "alice"))
    replay = other.post(form_action(page.text, "/mfa/verify"),
                        {**hidden_inputs(page.text), "code": code})

    assert replay.status_code == 400
    assert "already used" in replay.text
    assert page_name(replay.text) == "mfa-totp"


def test_voluntary_aal2_without_enrolled_factor_offers_enrollment_then_aal2(flows, app):
    flows.user("alice")
    rp = flows.client("rp1")
    browser = flows.browser()
    url, secrets = rp.authorize_url(acr_values="aal2")
    page = browser.follow(browser.get(url))
    page = browser.follow(browser.submit_login(page, "alice"))
    assert page_name(page.text) == "enroll-picker", page.text[:300]
    page = browser.post(form_action(page.text, "/enroll/start"),
                        {**hidden_inputs(page.text), "method": "totp"})
    assert page_name(page.text) == "enroll-totp"
    secret = page.text.split("data-totp-secret>")[1].split("<")[0]
    assert "otpauth://totp/" in page.text and "<svg" in page.text
    page = browser.post(form_action(page.text, "/enroll/verify"),
                        {**hidden_inputs(page.text), "code": pyotp.TOTP(secret).now()})
    assert page_name(page.text) == "recovery-codes"
    assert page.text.count("data-recovery-code") == 10
    done = browser.follow(browser.post(form_action(page.text, "/enroll/done"),
                                       hidden_inputs(page.text)))
    callback = callback_params(done)
    claims = rp.verify_id_token(rp.exchange(callback.code, secrets["code_verifier"])["id_token"])

    assert claims["acr"] == "aal2"
    assert claims["amr"] == ["pwd", "otp", "mfa"]


def test_the_authorization_request_redirects_straight_to_the_challenge(flows, app):
    """One hop: /authorize → the factor picker, which shows the only challenge at once."""
    flows.user("alice")
    enroll_totp(app, "alice", steps_back=1)
    rp = flows.client("rp1")
    browser = flows.browser()
    flows.sign_in(browser, rp)
    url, _ = rp.authorize_url(acr_values="aal2")

    redirected = browser.get(url)
    challenge = browser.get(redirected.headers["Location"])

    assert redirected.status_code == 303
    assert redirected.headers["Location"].endswith("/mfa")
    assert challenge.status_code == 200 and page_name(challenge.text) == "mfa-totp"


def test_the_answered_challenge_redirects_straight_to_the_client(flows, app):
    """The verification continues the authorization in the same request: 303 to the redirect
    URI with the code (RFC 9700 §4.12: a form post is answered with 303, never 307)."""
    flows.user("alice")
    secret = enroll_totp(app, "alice", steps_back=1)
    rp = flows.client("rp1")
    browser = flows.browser()
    flows.sign_in(browser, rp)
    url, _ = rp.authorize_url(acr_values="aal2")
    challenge = browser.follow(browser.get(url))

    answered = _answer_totp(browser, challenge, secret)

    assert answered.status_code == 303
    assert answered.headers["Location"].startswith(CALLBACK)
    assert "code=" in answered.headers["Location"]
