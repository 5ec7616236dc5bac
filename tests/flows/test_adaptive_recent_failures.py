"""Adaptive rule `recent_failures_at_least` (DESIGN §5): failed password attempts on the
account just before this sign-in raise the level."""

from __future__ import annotations

import pytest

from tests.helpers.factors import enroll_totp
from tests.helpers.rp import callback_params, page_name
from tests.helpers.stepup import authorize, policy_rules


@pytest.fixture
def app_overrides():
    return policy_rules({"when": {"recent_failures_at_least": 2}, "require": "aal2"})


@pytest.mark.parametrize(("failures", "second_factor"), [(1, False), (2, True)])
def test_recent_failures_rule(flows, app, failures, second_factor):
    flows.user("alice")
    enroll_totp(app, "alice", steps_back=1)
    rp = flows.client("rp1")
    browser = flows.browser()
    page, _ = authorize(browser, rp)
    for _ in range(failures):
        page = browser.submit_login(page, "alice", "wrong password")
        assert page.status_code == 401

    page = browser.follow(browser.submit_login(page, "alice"))

    if second_factor:
        assert page_name(page.text) == "mfa-totp"
    else:
        callback_params(page)
