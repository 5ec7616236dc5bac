"""`prompt=none` when a step-up needs interaction → `interaction_required`, and with no
session → `login_required` (OIDC Core §3.1.2.6)."""

from __future__ import annotations

from tests.helpers.factors import enroll_totp
from tests.helpers.rp import callback_params
from tests.helpers.stepup import answer_totp, authorize, id_token_claims


def test_prompt_none_with_step_up_needed_is_interaction_required(flows, app):
    flows.user("alice")
    enroll_totp(app, "alice", steps_back=1)
    rp = flows.client("rp1")
    browser = flows.browser()
    flows.sign_in(browser, rp)

    page, secrets = authorize(browser, rp, acr_values="aal2", prompt="none")
    params = callback_params(page).params

    assert params["error"] == "interaction_required"
    assert params["state"] == secrets["state"]


def test_prompt_none_without_a_session_is_login_required(flows, app):
    flows.user("alice")
    rp = flows.client("rp1")

    page, _ = authorize(flows.browser(), rp, acr_values="aal2", prompt="none")

    assert callback_params(page).params["error"] == "login_required"


def test_prompt_none_after_the_step_up_needs_no_interaction(flows, app):
    flows.user("alice")
    secret = enroll_totp(app, "alice", steps_back=1)
    rp = flows.client("rp1")
    browser = flows.browser()
    flows.sign_in(browser, rp)
    page, secrets = authorize(browser, rp, acr_values="aal2")
    id_token_claims(rp, answer_totp(browser, page, secret), secrets)

    page, secrets = authorize(browser, rp, acr_values="aal2", prompt="none")

    assert id_token_claims(rp, page, secrets)["acr"] == "aal2"
