"""Step-up semantics (DESIGN §4; OIDC Core §3.1.2.1, §5.5.1.1; Unmet Authentication
Requirements 1.0), one behaviour per test."""

from __future__ import annotations

import json
import time

import pyotp

from tests.helpers.factors import enroll_totp
from tests.helpers.rp import callback_params, form_action, hidden_inputs, page_name


def _authorize(browser, rp, **params):
    url, secrets = rp.authorize_url(**params)
    return browser.follow(browser.get(url)), secrets


def _totp(browser, page, secret):
    assert page_name(page.text) == "mfa-totp", page.text[:300]
    return browser.follow(browser.post(form_action(page.text, "/mfa/verify"), {
        **hidden_inputs(page.text), "code": pyotp.TOTP(secret).now()}))


def _claims(rp, response, secrets):
    token = rp.exchange(callback_params(response).code, secrets["code_verifier"])
    return rp.verify_id_token(token["id_token"], secrets["nonce"])


def essential(*values):
    return json.dumps({"id_token": {"acr": {"essential": True, "values": list(values)}}})


def test_preference_order_first_reachable_wins_not_the_lowest(flows, app):
    """keycloak/keycloak#31534: "phr aal2" with TOTP enrolled → aal2 (phr unreachable), and
    the returned acr is the first requested value that is satisfied."""
    flows.user("alice")
    secret = enroll_totp(app, "alice", at=time.time() - 30)
    rp = flows.client("rp1")
    browser = flows.browser()
    flows.sign_in(browser, rp)

    page, secrets = _authorize(browser, rp, acr_values="phr mfa aal1")
    claims = _claims(rp, _totp(browser, page, secret), secrets)

    assert claims["acr"] == "mfa"  # as requested (alias of aal2), not aal1


def test_already_satisfied_level_needs_no_interaction(flows, app):
    flows.user("alice")
    rp = flows.client("rp1")
    browser = flows.browser()
    flows.sign_in(browser, rp)

    page, secrets = _authorize(browser, rp, acr_values="aal1 aal2")

    assert _claims(rp, page, secrets)["acr"] == "aal1"


def test_essential_unmet_is_an_error_to_the_client(flows, app):
    flows.user("alice")
    enroll_totp(app, "alice", at=time.time() - 30)
    rp = flows.client("rp1")
    browser = flows.browser()
    flows.sign_in(browser, rp)

    page, secrets = _authorize(browser, rp, claims=essential("phrh"))
    params = callback_params(page).params

    assert params["error"] == "unmet_authentication_requirements"
    assert params["state"] == secrets["state"]
    assert "code" not in params


def test_essential_with_only_unknown_values_fails(flows, app):
    flows.user("alice")
    rp = flows.client("rp1")
    browser = flows.browser()
    flows.sign_in(browser, rp)

    page, _ = _authorize(browser, rp, claims=essential("urn:gold"))

    assert callback_params(page).params["error"] == "unmet_authentication_requirements"


def test_voluntary_unmet_issues_the_acr_achieved(flows, app):
    flows.user("alice")
    enroll_totp(app, "alice", at=time.time() - 30)
    rp = flows.client("rp1")
    browser = flows.browser()
    flows.sign_in(browser, rp)

    page, secrets = _authorize(browser, rp, acr_values="phrh")

    assert _claims(rp, page, secrets)["acr"] == "aal1"


def test_essential_claim_with_single_value(flows, app):
    flows.user("alice")
    secret = enroll_totp(app, "alice", at=time.time() - 30)
    rp = flows.client("rp1")
    browser = flows.browser()
    flows.sign_in(browser, rp)
    request = json.dumps({"id_token": {"acr": {"essential": True, "value": "aal2"}}})

    page, secrets = _authorize(browser, rp, claims=request)

    assert _claims(rp, _totp(browser, page, secret), secrets)["acr"] == "aal2"


def test_prompt_none_with_step_up_needed_is_interaction_required(flows, app):
    flows.user("alice")
    enroll_totp(app, "alice", at=time.time() - 30)
    rp = flows.client("rp1")
    browser = flows.browser()
    flows.sign_in(browser, rp)

    page, _ = _authorize(browser, rp, acr_values="aal2", prompt="none")

    assert callback_params(page).params["error"] == "interaction_required"


def test_client_minimum_acr_applies_without_a_request(flows, app):
    flows.user("alice")
    secret = enroll_totp(app, "alice", at=time.time() - 30)
    rp = flows.client("bank", minimum_acr="aal2")
    browser = flows.browser()

    page, secrets = _authorize(browser, rp)
    page = browser.follow(browser.submit_login(page, "alice"))

    assert _claims(rp, _totp(browser, page, secret), secrets)["acr"] == "aal2"


def test_client_minimum_acr_unreachable_is_unmet(flows, app):
    flows.user("alice")
    enroll_totp(app, "alice", at=time.time() - 30)
    rp = flows.client("bank", minimum_acr="phrh")
    browser = flows.browser()

    page, _ = _authorize(browser, rp)
    page = browser.follow(browser.submit_login(page, "alice"))

    # Enrolling a passkey would not reach phrh without an attested device either: unmet.
    assert callback_params(page).params["error"] == "unmet_authentication_requirements"


def test_require_acr_values_makes_acr_values_essential(flows, app):
    flows.user("alice")
    enroll_totp(app, "alice", at=time.time() - 30)
    rp = flows.client("strict", require_acr_values=True)
    browser = flows.browser()
    flows.sign_in(browser, rp)

    page, _ = _authorize(browser, rp, acr_values="phrh")

    assert callback_params(page).params["error"] == "unmet_authentication_requirements"


def test_client_default_acr_values_apply_when_none_are_sent(flows, app):
    flows.user("alice")
    secret = enroll_totp(app, "alice", at=time.time() - 30)
    rp = flows.client("rp1", default_acr_values=["aal2"])
    browser = flows.browser()

    page, secrets = _authorize(browser, rp)
    page = browser.follow(browser.submit_login(page, "alice"))

    assert _claims(rp, _totp(browser, page, secret), secrets)["acr"] == "aal2"


def test_max_age_reauthenticates_with_password_and_factor(flows, app):
    flows.user("alice")
    secret = enroll_totp(app, "alice", at=time.time() - 30)
    rp = flows.client("rp1")
    browser = flows.browser()
    first, _ = _authorize(browser, rp, acr_values="aal2")
    first = _totp(browser, browser.follow(browser.submit_login(first, "alice")), secret)
    time.sleep(2)

    page, secrets = _authorize(browser, rp, acr_values="aal2", max_age="1")
    assert page_name(page.text) == "login"
    page = browser.follow(browser.submit_login(page, "alice"))
    if page_name(page.text) == "mfa-totp":
        # The code just used is spent; the next time step is within the ±1 window.
        code = pyotp.TOTP(secret).at(time.time() + 30)
        page = browser.follow(browser.post(form_action(page.text, "/mfa/verify"), {
            **hidden_inputs(page.text), "code": code}))
    claims = _claims(rp, page, secrets)

    assert claims["acr"] == "aal2"
    assert time.time() - claims["auth_time"] < 5
