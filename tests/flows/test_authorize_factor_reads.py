"""The authorization endpoint reads the user's factors only when the session falls short of
the level it must reach (DESIGN §4.2-4.4): single sign-on at a level the session already holds
costs no credentials query, a step-up still finds the factor that reaches the level."""

from __future__ import annotations

from tests.helpers.factors import enroll_totp
from tests.helpers.rp import callback_params, page_name
from tests.helpers.sql import selects_from


def test_single_sign_on_without_an_acr_request_reads_no_factors(flows, app):
    flows.user("alice")
    enroll_totp(app, "alice", steps_back=1)
    rp = flows.client("rp1")
    browser = flows.browser()
    flows.sign_in(browser, rp)

    url, _ = rp.authorize_url()
    with selects_from(app, "credentials") as reads:
        callback = callback_params(browser.follow(browser.get(url)))
    assert callback.code
    assert reads == []


def test_a_request_the_session_already_satisfies_reads_no_factors(flows, app):
    flows.user("alice")
    enroll_totp(app, "alice", steps_back=1)
    rp = flows.client("rp1")
    browser = flows.browser()
    flows.sign_in(browser, rp)

    url, secrets = rp.authorize_url(acr_values="aal1 aal2")
    with selects_from(app, "credentials") as reads:
        callback = callback_params(browser.follow(browser.get(url)))
    assert reads == []
    claims = rp.verify_id_token(rp.exchange(callback.code, secrets["code_verifier"])["id_token"],
                                secrets["nonce"])
    assert claims["acr"] == "aal1"


def test_a_step_up_reads_the_factors_and_offers_the_one_that_reaches_the_level(flows, app):
    flows.user("alice")
    enroll_totp(app, "alice", steps_back=1)
    rp = flows.client("rp1")
    browser = flows.browser()
    flows.sign_in(browser, rp)

    url, _ = rp.authorize_url(acr_values="aal2 aal1")
    with selects_from(app, "credentials") as reads:
        page = browser.follow(browser.get(url))
    assert page_name(page.text) == "mfa-totp", page.text[:400]
    assert reads
