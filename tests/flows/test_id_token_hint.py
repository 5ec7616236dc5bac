"""id_token_hint (OIDC Core §3.1.2.1): a hint naming another user than the signed-in one
never yields tokens for either of them."""

from __future__ import annotations

from tests.helpers.rp import callback_params, page_name


def test_hint_for_another_user_forces_login_and_rejects_the_wrong_one(flows):
    flows.user("alice")
    flows.user("bob")
    rp = flows.client("rp1")
    alice_token = flows.sign_in(flows.browser(), rp, username="alice").token
    browser = flows.browser()
    flows.sign_in(browser, rp, username="bob")

    url, _ = rp.authorize_url(id_token_hint=alice_token["id_token"])
    page = browser.follow(browser.get(url))
    assert page_name(page.text) == "login"  # bob's session does not satisfy alice's hint

    # Signing in as bob again still does not match the hint: error, no code for anyone.
    answer = browser.follow(browser.submit_login(page, "bob"))
    params = callback_params(answer).params
    assert params["error"] == "login_required"
    assert "code" not in params


def test_hint_for_another_user_with_prompt_none_is_login_required(flows):
    flows.user("alice")
    flows.user("bob")
    rp = flows.client("rp1")
    alice_token = flows.sign_in(flows.browser(), rp, username="alice").token
    browser = flows.browser()
    flows.sign_in(browser, rp, username="bob")

    url, secrets = rp.authorize_url(id_token_hint=alice_token["id_token"], prompt="none")
    params = callback_params(browser.follow(browser.get(url))).params

    assert params["error"] == "login_required"
    assert params["state"] == secrets["state"]
    assert "code" not in params


def test_hint_for_another_user_then_signing_in_as_that_user_succeeds(flows):
    alice_id = flows.user("alice")
    flows.user("bob")
    rp = flows.client("rp1")
    alice_token = flows.sign_in(flows.browser(), rp, username="alice").token
    browser = flows.browser()
    flows.sign_in(browser, rp, username="bob")

    result = flows.sign_in(browser, rp, username="alice", id_token_hint=alice_token["id_token"])

    assert result.claims["sub"] == alice_id


def test_hint_issued_to_another_client_is_rejected(flows):
    flows.user("alice")
    rp1 = flows.client("rp1")
    rp2 = flows.client("rp2")
    browser = flows.browser()
    token = flows.sign_in(browser, rp1).token

    url, _ = rp2.authorize_url(id_token_hint=token["id_token"], prompt="none")
    params = callback_params(browser.follow(browser.get(url))).params

    assert params["error"] == "invalid_request"
    assert "code" not in params


def test_forged_hint_is_rejected(flows):
    flows.user("alice")
    rp = flows.client("rp1")
    browser = flows.browser()
    token = flows.sign_in(browser, rp).token
    header, payload, signature = token["id_token"].split(".")
    forged = ".".join([header, payload, signature[::-1]])

    url, _ = rp.authorize_url(id_token_hint=forged, prompt="none")
    params = callback_params(browser.follow(browser.get(url))).params

    assert params["error"] == "invalid_request"
