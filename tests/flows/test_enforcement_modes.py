"""Enforcement modes (DESIGN §5): `enforcement: optional|required`, `applies_to: new_users`
with `since`, and `grace_logins`."""

from __future__ import annotations

import pytest

from tests.helpers.factors import enroll_totp
from tests.helpers.rp import callback_params, page_name
from tests.helpers.stepup import first_page_after_login


def test_optional_enforcement_asks_nothing_of_a_password_only_user(flows, app):
    flows.user("alice")
    rp = flows.client("rp1")

    callback_params(first_page_after_login(flows.browser(), rp))


@pytest.mark.parametrize("app_overrides", [{"policy": {"enforcement": "required"}}],
                         indirect=True)
def test_required_enforcement_asks_for_the_second_factor(flows, app):
    flows.user("alice")
    enroll_totp(app, "alice", steps_back=1)
    rp = flows.client("rp1")

    assert page_name(first_page_after_login(flows.browser(), rp).text) == "mfa-totp"


@pytest.mark.parametrize("app_overrides", [{"policy": {"enforcement": "required"}}],
                         indirect=True)
def test_required_enforcement_offers_enrollment_to_a_user_without_factors(flows, app):
    flows.user("alice")
    rp = flows.client("rp1")

    assert page_name(first_page_after_login(flows.browser(), rp).text) == "enroll-picker"


@pytest.mark.parametrize("app_overrides", [{"policy": {"enforcement": "required",
                                                       "grace_logins": 1}}], indirect=True)
def test_required_enforcement_after_grace_logins_offers_enrollment(flows, app):
    flows.user("alice")
    rp = flows.client("rp1")

    first = first_page_after_login(flows.browser(), rp)
    callback_params(first)  # the one grace sign-in
    second = first_page_after_login(flows.browser(), rp)

    assert page_name(second.text) == "enroll-picker"


@pytest.mark.parametrize("app_overrides", [{"policy": {"enforcement": "required",
                                                       "grace_logins": 3}}], indirect=True)
def test_grace_logins_are_only_for_users_without_a_factor(flows, app):
    flows.user("alice")
    enroll_totp(app, "alice", steps_back=1)
    rp = flows.client("rp1")

    assert page_name(first_page_after_login(flows.browser(), rp).text) == "mfa-totp"


@pytest.mark.parametrize("app_overrides", [{"policy": {
    "enforcement": "required", "applies_to": "new_users", "since": "2999-01-01"}}],
    indirect=True)
def test_enforcement_for_new_users_spares_existing_ones(flows, app):
    flows.user("alice")
    rp = flows.client("rp1")

    callback_params(first_page_after_login(flows.browser(), rp))


@pytest.mark.parametrize("app_overrides", [{"policy": {
    "enforcement": "required", "applies_to": "new_users", "since": "2020-01-01"}}],
    indirect=True)
def test_enforcement_for_new_users_applies_to_users_created_since(flows, app):
    flows.user("alice")
    rp = flows.client("rp1")

    assert page_name(first_page_after_login(flows.browser(), rp).text) == "enroll-picker"


@pytest.mark.parametrize("app_overrides", [{"policy": {"enforcement": "required"}}],
                         indirect=True)
def test_required_enforcement_with_prompt_none_is_interaction_required(flows, app):
    flows.user("alice")
    enroll_totp(app, "alice", steps_back=1)
    rp = flows.client("rp1", minimum_acr=None)
    browser = flows.browser()
    assert page_name(first_page_after_login(browser, rp).text) == "mfa-totp"

    url, _ = rp.authorize_url(prompt="none")
    params = callback_params(browser.follow(browser.get(url))).params

    assert params["error"] == "interaction_required"


@pytest.mark.parametrize("app_overrides", [{"policy": {
    "enforcement": "off", "rules": [{"when": {"new_device": True}, "require": "aal2"}]}}],
    indirect=True)
def test_enforcement_off_ignores_the_adaptive_rules_but_not_the_client(flows, app):
    """`off`: a new device (which the rule would step up) signs in with the password alone;
    a relying party asking for aal2 still gets its second factor (that is not policy)."""
    flows.user("alice")
    enroll_totp(app, "alice", steps_back=1)
    rp = flows.client("rp1")

    callback_params(first_page_after_login(flows.browser(), rp))
    asked = first_page_after_login(flows.browser(), rp, acr_values="aal2")

    assert page_name(asked.text) == "mfa-totp"
