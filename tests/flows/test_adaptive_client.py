"""Adaptive rule `client` (DESIGN §5): sign-ins for the listed clients need the level."""

from __future__ import annotations

import pytest

from tests.helpers.factors import enroll_totp
from tests.helpers.rp import callback_params, page_name
from tests.helpers.stepup import first_page_after_login, policy_rules


@pytest.fixture
def app_overrides():
    return policy_rules({"when": {"client": ["payments"]}, "require": "aal2"})


def test_client_rule_applies_to_that_client_only(flows, app):
    flows.user("alice")
    enroll_totp(app, "alice", steps_back=1)
    payments = flows.client("payments")
    other = flows.client("blog")

    assert page_name(first_page_after_login(flows.browser(), payments).text) == "mfa-totp"
    callback_params(first_page_after_login(flows.browser(), other))
