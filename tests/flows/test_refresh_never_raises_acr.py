"""A refresh never reports more than the grant it continues (DESIGN §3): a refresh token issued
at aal1 stays aal1 after the same browser session has stepped up for another authorization,
and every refreshed token keeps the original `auth_time` and `amr`."""

from __future__ import annotations

import time

import requests

from tests.helpers.factors import enroll_totp
from tests.helpers.rp import callback_params
from tests.helpers.stepup import answer_totp, authorize, id_token_claims


def _refresh(rp, refresh_token):
    response = requests.post(rp.issuer + "/token", auth=(rp.client_id, rp.client_secret),
                             data={"grant_type": "refresh_token",
                                   "refresh_token": refresh_token}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def _introspect(resource, token):
    """As a resource server would (a client with the ``idp:introspect`` scope, RFC 7662)."""
    response = requests.post(resource.issuer + "/introspect",
                             auth=(resource.client_id, resource.client_secret),
                             data={"token": token}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def test_an_aal1_grant_stays_aal1_after_the_session_steps_up(flows, app):
    flows.user("alice")
    secret = enroll_totp(app, "alice", steps_back=1)
    rp = flows.client("rp1")
    browser = flows.browser()
    first = flows.sign_in(browser, rp)
    assert first.claims["acr"] == "aal1"
    time.sleep(1)  # the step-up's auth_time is later than the sign-in's
    page, secrets = authorize(browser, rp, acr_values="aal2")
    stepped = id_token_claims(rp, answer_totp(browser, page, secret), secrets)
    assert stepped["acr"] == "aal2" and stepped["auth_time"] > first.claims["auth_time"]

    refreshed = _refresh(rp, first.token["refresh_token"])
    claims = rp.verify_id_token(refreshed["id_token"])
    resource = flows.client("api", grant_types=["client_credentials"], redirect_uris=[],
                            scope="idp:introspect")
    introspected = _introspect(resource, refreshed["access_token"])

    assert claims["acr"] == introspected["acr"] == "aal1"
    assert claims["amr"] == ["pwd"]
    assert claims["auth_time"] == introspected["auth_time"] == first.claims["auth_time"]


def test_a_stepped_up_grant_keeps_its_level_and_auth_time_across_refreshes(flows, app):
    flows.user("alice")
    secret = enroll_totp(app, "alice", steps_back=1)
    rp = flows.client("rp1")
    browser = flows.browser()
    flows.sign_in(browser, rp)
    page, secrets = authorize(browser, rp, acr_values="aal2")
    answered = answer_totp(browser, page, secret)
    token = rp.exchange(callback_params(answered).code, secrets["code_verifier"])
    original = rp.verify_id_token(token["id_token"], secrets["nonce"])

    once = _refresh(rp, token["refresh_token"])
    twice = _refresh(rp, once["refresh_token"])
    claims = rp.verify_id_token(twice["id_token"])

    assert claims["acr"] == original["acr"] == "aal2"
    assert claims["amr"] == original["amr"]
    assert claims["auth_time"] == original["auth_time"]
