"""Adaptive rule `ip_in` (DESIGN §5): clients inside the CIDR list need the level. The address
is the real client's behind `trusted_proxies` (idp.proxy)."""

from __future__ import annotations

import pytest

from tests.helpers.factors import enroll_totp
from tests.helpers.rp import callback_params, page_name
from tests.helpers.stepup import first_page_after_login


@pytest.fixture
def app_overrides():
    return {"policy": {"rules": [{"when": {"ip_in": ["203.0.113.0/24", "2001:db8::/32"]},
                                  "require": "aal2"}]},
            "trusted_proxies": ["127.0.0.1/32"]}


def _from(flows, address):
    browser = flows.browser()
    browser.session.headers["X-Forwarded-For"] = address
    return browser


@pytest.mark.parametrize("address", ["203.0.113.7", "2001:db8::1"])
def test_a_listed_network_needs_the_second_factor(flows, app, address):
    flows.user("alice")
    enroll_totp(app, "alice", steps_back=1)
    rp = flows.client("rp1")

    assert page_name(first_page_after_login(_from(flows, address), rp).text) == "mfa-totp"


def test_other_networks_do_not(flows, app):
    flows.user("alice")
    enroll_totp(app, "alice", steps_back=1)
    rp = flows.client("rp1")

    callback_params(first_page_after_login(_from(flows, "198.51.100.7"), rp))
