"""Adaptive rule `new_device` (DESIGN §5): a browser whose signed, per-user `idp_device` cookie
has not signed in as this user before needs the required level."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from idp.extensions import db
from idp.models import AuditEvent
from tests.helpers.factors import enroll_totp
from tests.helpers.rp import callback_params, page_name
from tests.helpers.stepup import first_page_after_login, policy_rules


@pytest.fixture
def app_overrides():
    return policy_rules({"when": {"new_device": True}, "require": "aal2"})


def test_new_device_requires_aal2_once_per_browser(flows, app):
    flows.user("alice")
    enroll_totp(app, "alice", steps_back=1)
    rp = flows.client("rp1")
    browser = flows.browser()

    first = first_page_after_login(browser, rp)
    assert page_name(first.text) == "mfa-totp"  # a browser never seen before
    assert browser.session.cookies.get("idp_device")

    again = first_page_after_login(browser, rp, prompt="login")
    callback_params(again)  # same browser, known device: no second factor

    with app.app_context():
        event = db.session.scalar(select(AuditEvent).where(
            AuditEvent.type == "user.step_up_required"))
    assert event.data["required_acr"] == "aal2"
    assert any("new_device" in line for line in event.data["trace"])


def test_a_forged_device_cookie_counts_as_a_new_device(flows, app):
    flows.user("alice")
    enroll_totp(app, "alice", steps_back=1)
    rp = flows.client("rp1")
    browser = flows.browser()
    first_page_after_login(browser, rp)
    device_id = browser.session.cookies.get("idp_device").partition(".")[0]

    forged = flows.browser()
    forged.session.cookies.set("idp_device", f"{device_id}.{'0' * 32}")

    assert page_name(first_page_after_login(forged, rp).text) == "mfa-totp"
