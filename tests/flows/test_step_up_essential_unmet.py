"""Essential acr that cannot be met → `error=unmet_authentication_requirements` to the RP
(OpenID Connect Core Error Code unmet_authentication_requirements 1.0; OIDC Core §5.5.1.1)."""

from __future__ import annotations

import json

from tests.helpers.factors import enroll_totp
from tests.helpers.rp import callback_params
from tests.helpers.stepup import answer_totp, authorize, essential_acr, id_token_claims


def test_essential_unmet_is_an_error_to_the_client(flows, app):
    flows.user("alice")
    enroll_totp(app, "alice", steps_back=1)
    rp = flows.client("rp1")
    browser = flows.browser()
    flows.sign_in(browser, rp)

    page, secrets = authorize(browser, rp, claims=essential_acr("phrh"))
    params = callback_params(page).params

    assert params["error"] == "unmet_authentication_requirements"
    assert params["state"] == secrets["state"]
    assert "code" not in params


def test_essential_with_only_unknown_values_fails(flows, app):
    flows.user("alice")
    rp = flows.client("rp1")
    browser = flows.browser()
    flows.sign_in(browser, rp)

    page, _ = authorize(browser, rp, claims=essential_acr("urn:gold"))

    assert callback_params(page).params["error"] == "unmet_authentication_requirements"


def test_essential_claim_with_a_single_value_is_met_by_stepping_up(flows, app):
    flows.user("alice")
    secret = enroll_totp(app, "alice", steps_back=1)
    rp = flows.client("rp1")
    browser = flows.browser()
    flows.sign_in(browser, rp)
    request = json.dumps({"id_token": {"acr": {"essential": True, "value": "aal2"}}})

    page, secrets = authorize(browser, rp, claims=request)

    assert id_token_claims(rp, answer_totp(browser, page, secret), secrets)["acr"] == "aal2"


def test_require_acr_values_makes_a_clients_acr_values_essential(flows, app):
    """Per-client `require_acr_values: true` (RFC 9470 strictness without `claims`)."""
    flows.user("alice")
    enroll_totp(app, "alice", steps_back=1)
    rp = flows.client("strict", require_acr_values=True)
    browser = flows.browser()
    flows.sign_in(browser, rp)

    page, _ = authorize(browser, rp, acr_values="phrh")

    assert callback_params(page).params["error"] == "unmet_authentication_requirements"
