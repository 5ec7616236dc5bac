"""Policy `enroll_during_login` and `allowed_factors` (DESIGN §5): enrollment is offered during
a sign-in only when policy allows it, and only allowed factors count."""

from __future__ import annotations

import pytest

from tests.helpers.factors import enroll_totp
from tests.helpers.rp import callback_params, page_name
from tests.helpers.stepup import essential_acr, first_page_after_login, id_token_claims


def test_enrollment_is_offered_when_no_requested_level_is_reachable(flows, app):
    flows.user("alice")
    rp = flows.client("rp1")

    page = first_page_after_login(flows.browser(), rp, acr_values="aal2")

    assert page_name(page.text) == "enroll-picker"


@pytest.mark.parametrize("app_overrides", [{"policy": {"enroll_during_login": False}}],
                         indirect=True)
def test_without_enroll_during_login_a_voluntary_request_gets_what_was_achieved(flows, app):
    flows.user("alice")
    rp = flows.client("rp1")
    browser = flows.browser()
    url, secrets = rp.authorize_url(acr_values="aal2")
    page = browser.follow(browser.submit_login(browser.follow(browser.get(url)), "alice"))

    assert id_token_claims(rp, page, secrets)["acr"] == "aal1"


@pytest.mark.parametrize("app_overrides", [{"policy": {"enroll_during_login": False}}],
                         indirect=True)
def test_without_enroll_during_login_an_essential_request_is_unmet(flows, app):
    flows.user("alice")
    rp = flows.client("rp1")

    page = first_page_after_login(flows.browser(), rp, claims=essential_acr("aal2"))

    assert callback_params(page).params["error"] == "unmet_authentication_requirements"


@pytest.mark.parametrize("app_overrides", [{"policy": {"enroll_during_login": False}}],
                         indirect=True)
def test_a_factor_left_out_of_allowed_factors_does_not_count(flows, app):
    """TOTP enrolled, then the operator allows passkeys only (the registry create_app builds
    from policy.allowed_factors at start): the TOTP credential no longer proves anything."""
    from idp.factors.registry import load_registry

    flows.user("alice")
    enroll_totp(app, "alice", steps_back=1)
    rp = flows.client("rp1")
    app.extensions["idp.factors"] = load_registry(["passkey"])

    page = first_page_after_login(flows.browser(), rp, claims=essential_acr("aal2"))

    assert callback_params(page).params["error"] == "unmet_authentication_requirements"
