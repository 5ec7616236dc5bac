"""Consent for clients that are not first-party: asked once, remembered, forced by
prompt=consent, and never assumed under prompt=none (OIDC Core §3.1.2.4, §3.1.2.6)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from sqlalchemy import select

from idp.extensions import db
from idp.models import Consent
from tests.helpers.rp import CALLBACK, Browser, callback_params, page_name


def consent_page(flows: Any, browser: Browser, rp: Any,
                 **params: Any) -> tuple[requests.Response, dict[str, str]]:
    """Authorize and sign in if asked; returns the consent page and the request's secrets."""
    url, secrets_ = rp.authorize_url(**params)
    response = browser.follow(browser.get(url))
    if page_name(response.text) == "login":
        response = browser.follow(browser.submit_login(response, "alice"))
    assert page_name(response.text) == "consent", (response.status_code, response.text[:500])
    return response, secrets_


def direct_outcome(browser: Browser, rp: Any, **params: Any) -> tuple[dict[str, str],
                                                                        dict[str, str]]:
    """An authorization request answered without any page: the callback's parameters."""
    url, secrets_ = rp.authorize_url(**params)
    response = browser.get(url)
    location = response.headers.get("Location", "")
    assert response.status_code == 302 and location.startswith(CALLBACK), (
        response.status_code, location, response.text[:300])
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}, secrets_


def consents(app: Any, user_id: str, client_id: str) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(select(Consent.scope).where(
            Consent.user_id == user_id, Consent.client_id == client_id)))


def test_third_party_client_asks_for_consent_once(flows, app):
    user_id = flows.user("alice")
    rp = flows.client("rp2", first_party=False)
    browser = flows.browser()

    page, secrets_ = consent_page(flows, browser, rp)

    assert set(re.findall(r'data-scope="([^"]+)"', page.text)) == {"profile", "email"}
    assert "alice" in page.text
    callback = callback_params(browser.follow(browser.submit_consent(page, "allow")))
    assert callback.params["state"] == secrets_["state"]
    token = rp.exchange(callback.code, secrets_["code_verifier"])
    assert rp.verify_id_token(token["id_token"], secrets_["nonce"])["sub"] == user_id
    assert consents(app, user_id, "rp2") == ["openid profile email"]
    # Same browser, same client: straight back with a code, no page.
    again, again_secrets = direct_outcome(browser, rp)
    assert again["code"]
    assert again["state"] == again_secrets["state"]


def test_denied_consent_returns_access_denied_to_the_client(flows, app):
    user_id = flows.user("alice")
    rp = flows.client("rp2", first_party=False)
    browser = flows.browser()
    page, secrets_ = consent_page(flows, browser, rp)

    callback = callback_params(browser.follow(browser.submit_consent(page, "deny")))

    assert callback.params["error"] == "access_denied"
    assert callback.params["state"] == secrets_["state"]
    assert callback.params["iss"] == rp.issuer
    assert "code" not in callback.params
    assert consents(app, user_id, "rp2") == []
    # Nothing was remembered: the next request asks again.
    consent_page(flows, browser, rp)


def test_prompt_consent_asks_again_after_consent_was_given(flows):
    flows.user("alice")
    rp = flows.client("rp2", first_party=False)
    browser = flows.browser()
    page, _ = consent_page(flows, browser, rp)
    callback_params(browser.follow(browser.submit_consent(page, "allow")))

    again, _ = consent_page(flows, browser, rp, prompt="consent")

    assert set(re.findall(r'data-scope="([^"]+)"', again.text)) == {"profile", "email"}


@pytest.mark.parametrize(("consented", "expected"), [
    (False, "consent_required"),
    (True, None),
])
def test_prompt_none_needs_consent_already_given(flows, consented, expected):
    flows.user("alice")
    first_party = flows.client("rp1")
    third_party = flows.client("rp2", first_party=False)
    browser = flows.browser()
    flows.sign_in(browser, first_party)  # a session, no consent for rp2 yet
    if consented:
        page, _ = consent_page(flows, browser, third_party)
        callback_params(browser.follow(browser.submit_consent(page, "allow")))

    params, secrets_ = direct_outcome(browser, third_party, prompt="none")

    assert params["state"] == secrets_["state"]
    assert params["iss"] == third_party.issuer
    if expected is None:
        assert params["code"] and "error" not in params
    else:
        assert params["error"] == expected and "code" not in params


def test_first_party_client_never_asks_for_consent(flows, app):
    user_id = flows.user("alice")
    rp = flows.client("rp1", first_party=True)
    browser = flows.browser()
    url, secrets_ = rp.authorize_url()
    login = browser.follow(browser.get(url))

    after_login = browser.follow(browser.submit_login(login, "alice"))

    callback = callback_params(after_login)  # straight to the client, no consent page
    assert callback.params["state"] == secrets_["state"]
    assert callback.code
    assert consents(app, user_id, "rp1") == []
