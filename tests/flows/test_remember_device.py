"""Remember this device (DESIGN §5): a remembered browser stands in for the second factor up
to aal2, never phr; it is listed, revocable and audited."""

from __future__ import annotations

import time

import pyotp
import pytest
from sqlalchemy import select

from idp.extensions import db
from idp.models import AuditEvent
from tests.helpers.factors import enroll_totp
from tests.helpers.rp import callback_params, form_action, hidden_inputs, page_name


@pytest.fixture
def app_overrides():
    return {"policy": {"remember_device_days": 30}}


def _sign_in_with_totp(browser, rp, secret, remember, code_at=None):
    url, secrets = rp.authorize_url(acr_values="aal2", prompt="login")
    page = browser.follow(browser.get(url))
    page = browser.follow(browser.submit_login(page, "alice"))
    assert page_name(page.text) == "mfa-totp"
    assert 'name="remember_device"' in page.text and 'for="remember-device"' in page.text
    form = {**hidden_inputs(page.text), "code": pyotp.TOTP(secret).at(code_at or time.time())}
    if remember:
        form["remember_device"] = "1"
    answered = browser.follow(browser.post(form_action(page.text, "/mfa/verify"), form))
    return rp.verify_id_token(rp.exchange(callback_params(answered).code,
                                          secrets["code_verifier"])["id_token"])


def test_a_remembered_browser_skips_the_second_factor_up_to_aal2(flows, app):
    flows.user("alice")
    secret = enroll_totp(app, "alice", steps_back=1)
    rp = flows.client("rp1")
    browser = flows.browser()
    _sign_in_with_totp(browser, rp, secret, remember=True)

    url, secrets = rp.authorize_url(acr_values="aal2", prompt="login")
    page = browser.follow(browser.get(url))
    answered = browser.follow(browser.submit_login(page, "alice"))
    claims = rp.verify_id_token(rp.exchange(callback_params(answered).code,
                                            secrets["code_verifier"])["id_token"])

    assert claims["acr"] == "aal2"
    assert claims["amr"] == ["pwd", "rdev", "mfa"]
    # Never phr: a voluntary phishing-resistant request is answered with what holds (aal2).
    url, secrets = rp.authorize_url(acr_values="phr")
    phr = callback_params(browser.follow(browser.get(url)))
    assert rp.verify_id_token(rp.exchange(phr.code, secrets["code_verifier"])["id_token"])[
        "acr"] == "aal2"
    with app.app_context():
        assert db.session.scalar(select(AuditEvent).where(
            AuditEvent.type == "mfa.device_remembered")) is not None


def test_without_the_tick_the_browser_is_not_remembered(flows, app):
    flows.user("alice")
    secret = enroll_totp(app, "alice", steps_back=1)
    rp = flows.client("rp1")
    browser = flows.browser()
    _sign_in_with_totp(browser, rp, secret, remember=False)

    url, _ = rp.authorize_url(acr_values="aal2", prompt="login")
    page = browser.follow(browser.submit_login(browser.follow(browser.get(url)), "alice"))

    assert page_name(page.text) == "mfa-totp"


def test_another_browser_is_not_remembered(flows, app):
    flows.user("alice")
    secret = enroll_totp(app, "alice", steps_back=1)
    rp = flows.client("rp1")
    _sign_in_with_totp(flows.browser(), rp, secret, remember=True)

    other = flows.browser()
    url, _ = rp.authorize_url(acr_values="aal2")
    page = other.follow(other.submit_login(other.follow(other.get(url)), "alice"))

    assert page_name(page.text) == "mfa-totp"


def test_forgetting_the_device_on_the_account_page(flows, app):
    flows.user("alice")
    secret = enroll_totp(app, "alice", steps_back=1)
    rp = flows.client("rp1")
    browser = flows.browser()
    _sign_in_with_totp(browser, rp, secret, remember=True)

    page = browser.get("/account/security")
    assert page_name(page.text) == "account-security"  # remembered device + fresh: aal2 holds
    action = form_action(page.text, "/forget")
    assert browser.post(action, hidden_inputs(page.text)).status_code == 303

    url, _ = rp.authorize_url(acr_values="aal2", prompt="login")
    page = browser.follow(browser.submit_login(browser.follow(browser.get(url)), "alice"))
    assert page_name(page.text) == "mfa-totp"
    with app.app_context():
        assert db.session.scalar(select(AuditEvent).where(
            AuditEvent.type == "mfa.device_forgotten")) is not None
