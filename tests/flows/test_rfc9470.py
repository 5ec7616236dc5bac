"""RFC 9470 round trip: the resource server challenges, the RP steps the user up, the retry
succeeds (idp.resource.require_acr)."""

from __future__ import annotations

import re

import pyotp
from flask import Flask, g

from idp.resource import require_acr
from tests.helpers.factors import enroll_totp
from tests.helpers.rp import callback_params, form_action, hidden_inputs, page_name


def _resource_server(issuer):
    api = Flask("test-api")
    api.config["IDP_ISSUER"] = issuer
    api.config["IDP_AUDIENCE"] = "rp1"  # the IdP's default access-token aud: the client id

    @api.post("/transfers")
    @require_acr("aal2", max_age=300)
    def transfer():
        return {"ok": True, "sub": g.access_token["sub"], "acr": g.access_token["acr"]}

    return api.test_client()


def _challenge_params(header):
    return dict(re.findall(r'(\w+)="?([^",]*)"?', header))


def test_insufficient_token_gets_a_challenge_then_step_up_succeeds(flows, app):
    flows.user("alice")
    secret = enroll_totp(app, "alice", steps_back=1)
    rp = flows.client("rp1")
    api = _resource_server(rp.issuer)
    browser = flows.browser()
    first = flows.sign_in(browser, rp)

    denied = api.post("/transfers", headers={
        "Authorization": f"Bearer {first.token['access_token']}"})

    assert denied.status_code == 401
    challenge = _challenge_params(denied.headers["WWW-Authenticate"])
    assert challenge["error"] == "insufficient_user_authentication"
    assert challenge["acr_values"] == "aal2"
    assert challenge["max_age"] == "300"

    url, secrets = rp.authorize_url(acr_values=challenge["acr_values"],
                                    max_age=challenge["max_age"])
    page = browser.follow(browser.get(url))
    assert page_name(page.text) == "mfa-totp"
    answered = browser.follow(browser.post(form_action(page.text, "/mfa/verify"), {
        **hidden_inputs(page.text), "code": pyotp.TOTP(secret).now()}))
    token = rp.exchange(callback_params(answered).code, secrets["code_verifier"])

    allowed = api.post("/transfers", headers={"Authorization": f"Bearer {token['access_token']}"})
    assert allowed.status_code == 200
    assert allowed.get_json()["acr"] == "aal2"


def test_missing_forged_and_foreign_tokens_are_rejected(flows):
    flows.user("alice")
    rp = flows.client("rp1")
    api = _resource_server(rp.issuer)
    token = flows.sign_in(flows.browser(), rp).token["access_token"]
    header, payload, signature = token.split(".")

    missing = api.post("/transfers")
    forged = api.post("/transfers", headers={
        "Authorization": f"Bearer {header}.{payload}.{signature[::-1]}"})
    id_token = api.post("/transfers", headers={
        "Authorization": f"Bearer {flows.sign_in(flows.browser(), rp).token['id_token']}"})

    assert missing.status_code == 401
    assert "error=" not in missing.headers["WWW-Authenticate"]
    assert forged.status_code == 401 and 'error="invalid_token"' in forged.headers[
        "WWW-Authenticate"]
    assert id_token.status_code == 401 and 'error="invalid_token"' in id_token.headers[
        "WWW-Authenticate"]
