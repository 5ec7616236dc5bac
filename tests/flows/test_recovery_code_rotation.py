"""recovery_codes_rotate_on_use: a used recovery code is replaced by a new one, shown once."""

from __future__ import annotations

import re

import pytest

from tests.helpers.factors import enroll_recovery_codes, enroll_totp
from tests.helpers.rp import callback_params, choose_factor, form_action, hidden_inputs, page_name


@pytest.fixture
def app_overrides():
    return {"mfa": {"recovery_codes_rotate_on_use": True}}


def _use_code(flows, rp, code):
    browser = flows.browser()
    url, _ = rp.authorize_url(acr_values="aal2")
    picker = browser.follow(browser.submit_login(browser.follow(browser.get(url)), "alice"))
    page = choose_factor(browser, picker, "recovery_code")
    return browser, browser.post(form_action(page.text, "/mfa/verify"),
                                 {**hidden_inputs(page.text), "code": code})


def test_a_used_code_is_replaced_and_the_replacement_works(flows, app):
    flows.user("alice")
    enroll_totp(app, "alice", steps_back=1)
    codes = enroll_recovery_codes(app, "alice")
    rp = flows.client("rp1")

    browser, shown = _use_code(flows, rp, codes[0])
    assert page_name(shown.text) == "recovery-codes"
    (replacement,) = re.findall(r"<code data-recovery-code>([^<]+)</code>", shown.text)
    callback_params(browser.follow(browser.post(form_action(shown.text, "/enroll/done"),
                                                hidden_inputs(shown.text))))

    _, again = _use_code(flows, rp, replacement)
    _, spent = _use_code(flows, rp, codes[0])

    assert page_name(again.text) == "recovery-codes"
    assert spent.status_code == 400
