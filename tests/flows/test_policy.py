"""Adaptive step-up rules and enforcement modes, end to end (DESIGN §5)."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from idp.extensions import db
from idp.models import AuditEvent
from tests.helpers.factors import enroll_totp
from tests.helpers.rp import callback_params, page_name


def _first_page_after_login(flows, browser, rp, username="alice", password=None, **params):
    url, _ = rp.authorize_url(**params)
    page = browser.follow(browser.get(url))
    if page_name(page.text) == "login":
        args = (page, username) if password is None else (page, username, password)
        page = browser.follow(browser.submit_login(*args))
    return page


@pytest.fixture
def app_overrides(request):
    return getattr(request, "param", {})


def _rules(*rules):
    return {"policy": {"rules": list(rules)}}


@pytest.mark.parametrize("app_overrides", [_rules({"when": {"new_device": True},
                                                   "require": "aal2"})], indirect=True)
def test_new_device_requires_aal2_once_per_browser(flows, app):
    flows.user("alice")
    enroll_totp(app, "alice", at=time.time() - 30)
    rp = flows.client("rp1")
    browser = flows.browser()

    first = _first_page_after_login(flows, browser, rp)
    assert page_name(first.text) == "mfa-totp"  # a browser never seen before
    assert browser.session.cookies.get("idp_device")

    again = _first_page_after_login(flows, browser, rp, prompt="login")
    callback_params(again)  # same browser, known device: no second factor

    with app.app_context():
        event = db.session.scalar(select(AuditEvent).where(
            AuditEvent.type == "user.step_up_required"))
    assert event.data["required_acr"] == "aal2"
    assert any("new_device" in line for line in event.data["trace"])


@pytest.mark.parametrize("app_overrides", [_rules({"when": {"client": ["payments"]},
                                                   "require": "aal2"})], indirect=True)
def test_client_rule_applies_to_that_client_only(flows, app):
    flows.user("alice")
    enroll_totp(app, "alice", at=time.time() - 30)
    payments = flows.client("payments")
    other = flows.client("blog")
    browser = flows.browser()

    assert page_name(_first_page_after_login(flows, browser, payments).text) == "mfa-totp"
    callback_params(_first_page_after_login(flows, flows.browser(), other))


@pytest.mark.parametrize("app_overrides", [_rules({"when": {"recent_failures_at_least": 2},
                                                   "require": "aal2"})], indirect=True)
def test_recent_failures_rule(flows, app):
    flows.user("alice")
    enroll_totp(app, "alice", at=time.time() - 30)
    rp = flows.client("rp1")
    browser = flows.browser()
    url, _ = rp.authorize_url()
    page = browser.follow(browser.get(url))
    for _ in range(2):
        page = browser.submit_login(page, "alice", "wrong password")
        assert page.status_code == 401

    page = browser.follow(browser.submit_login(page, "alice"))

    assert page_name(page.text) == "mfa-totp"


@pytest.mark.parametrize("app_overrides", [_rules({"when": {"ip_in": ["127.0.0.0/8"]},
                                                   "require": "aal2"})], indirect=True)
def test_ip_rule(flows, app):
    flows.user("alice")
    enroll_totp(app, "alice", at=time.time() - 30)
    rp = flows.client("rp1")

    assert page_name(_first_page_after_login(flows, flows.browser(), rp).text) == "mfa-totp"


@pytest.mark.parametrize("app_overrides", [{
    **_rules({"when": {"country_changed": True}, "require": "aal2"}),
    "policy": {"rules": [{"when": {"country_changed": True}, "require": "aal2"}],
               "country_header": "X-Country"},
    "trusted_proxies": ["127.0.0.1/32"],
}], indirect=True)
def test_country_change_from_a_trusted_proxy_header(flows, app):
    flows.user("alice")
    enroll_totp(app, "alice", at=time.time() - 30)
    rp = flows.client("rp1")
    home = flows.browser()
    home.session.headers["X-Country"] = "DE"
    callback_params(_first_page_after_login(flows, home, rp))  # first country: no change

    abroad = flows.browser()
    abroad.session.headers["X-Country"] = "BR"

    assert page_name(_first_page_after_login(flows, abroad, rp).text) == "mfa-totp"


@pytest.mark.parametrize("app_overrides", [{"policy": {"enforcement": "required",
                                                       "grace_logins": 1}}], indirect=True)
def test_required_enforcement_after_grace_logins_offers_enrollment(flows, app):
    flows.user("alice")
    rp = flows.client("rp1")

    first = _first_page_after_login(flows, flows.browser(), rp)
    callback_params(first)  # the one grace sign-in
    second = _first_page_after_login(flows, flows.browser(), rp)

    assert page_name(second.text) == "enroll-picker"


@pytest.mark.parametrize("app_overrides", [{"policy": {
    "enforcement": "required", "applies_to": "new_users", "since": "2999-01-01"}}],
    indirect=True)
def test_enforcement_for_new_users_spares_existing_ones(flows, app):
    flows.user("alice")
    rp = flows.client("rp1")

    callback_params(_first_page_after_login(flows, flows.browser(), rp))


@pytest.mark.parametrize("app_overrides", [{"policy": {"enforcement": "required"}}],
                         indirect=True)
def test_required_enforcement_with_prompt_none_is_interaction_required(flows, app):
    flows.user("alice")
    enroll_totp(app, "alice", at=time.time() - 30)
    rp = flows.client("rp1", minimum_acr=None)
    browser = flows.browser()
    assert page_name(_first_page_after_login(flows, browser, rp).text) == "mfa-totp"

    url, _ = rp.authorize_url(prompt="none")
    params = callback_params(browser.follow(browser.get(url))).params

    assert params["error"] == "interaction_required"
