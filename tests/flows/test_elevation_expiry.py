"""Elevation expires (DESIGN §3): when a level's max age passes the session falls back, and a
refresh never reports an acr above what still holds; auth_time stays the original."""

from __future__ import annotations

import copy
import time
from importlib import resources

import pyotp
import pytest
import requests
import yaml

from tests.helpers.factors import enroll_totp
from tests.helpers.rp import callback_params, form_action, hidden_inputs, page_name

SHORT = 3


def _short_aal2_ladder():
    defaults = yaml.safe_load(resources.files("idp").joinpath("config/default.yaml").read_text())
    levels = copy.deepcopy(defaults["acr"]["levels"])
    for level in levels:
        if level["name"] != "aal1":
            level["max_age"] = SHORT
    return {"acr": {"levels": levels}}


@pytest.fixture
def app_overrides():
    return _short_aal2_ladder()


def _step_up(flows, app, browser, rp, secret):
    url, secrets = rp.authorize_url(acr_values="aal2")
    page = browser.follow(browser.get(url))
    if page_name(page.text) == "login":
        page = browser.follow(browser.submit_login(page, "alice"))
    answered = browser.follow(browser.post(form_action(page.text, "/mfa/verify"), {
        **hidden_inputs(page.text), "code": pyotp.TOTP(secret).now()}))
    token = rp.exchange(callback_params(answered).code, secrets["code_verifier"])
    return token, rp.verify_id_token(token["id_token"], secrets["nonce"])


def test_refresh_after_the_aal2_max_age_reports_aal1(flows, app):
    flows.user("alice")
    secret = enroll_totp(app, "alice", steps_back=1)
    rp = flows.client("rp1")
    token, claims = _step_up(flows, app, flows.browser(), rp, secret)
    assert claims["acr"] == "aal2"

    time.sleep(SHORT + 1)
    response = requests.post(rp.issuer + "/token", auth=(rp.client_id, rp.client_secret),
                             data={"grant_type": "refresh_token",
                                   "refresh_token": token["refresh_token"]}, timeout=10)

    assert response.status_code == 200, response.text
    refreshed = rp.verify_id_token(response.json()["id_token"])
    assert refreshed["acr"] == "aal1"
    assert "mfa" not in refreshed["amr"]
    assert refreshed["auth_time"] == claims["auth_time"]
    introspected = requests.post(rp.issuer + "/introspect", auth=(rp.client_id, rp.client_secret),
                                 data={"token": response.json()["access_token"]},
                                 timeout=10).json()
    assert introspected["acr"] == "aal1"


def test_refresh_within_the_max_age_keeps_aal2(flows, app):
    flows.user("alice")
    secret = enroll_totp(app, "alice", steps_back=1)
    rp = flows.client("rp1")
    token, claims = _step_up(flows, app, flows.browser(), rp, secret)

    response = requests.post(rp.issuer + "/token", auth=(rp.client_id, rp.client_secret),
                             data={"grant_type": "refresh_token",
                                   "refresh_token": token["refresh_token"]}, timeout=10)

    refreshed = rp.verify_id_token(response.json()["id_token"])
    assert refreshed["acr"] == "aal2"
    assert refreshed["amr"] == claims["amr"]


def test_the_session_falls_back_and_asks_for_the_second_factor_again(flows, app):
    flows.user("alice")
    secret = enroll_totp(app, "alice", steps_back=1)
    rp = flows.client("rp1")
    browser = flows.browser()
    _step_up(flows, app, browser, rp, secret)

    time.sleep(SHORT + 1)
    plain = flows.sign_in(browser, rp)  # no acr requested: the session is aal1 now
    url, _ = rp.authorize_url(acr_values="aal2")
    again = browser.follow(browser.get(url))

    assert plain.claims["acr"] == "aal1"
    assert page_name(again.text) in ("mfa-totp", "login")
