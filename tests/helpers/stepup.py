"""Steps shared by the step-up and policy flow tests (one behaviour per test file)."""

from __future__ import annotations

import json
from typing import Any

import pyotp
import requests

from tests.helpers.rp import (
    Browser,
    RelyingParty,
    callback_params,
    form_action,
    hidden_inputs,
    page_name,
)


def authorize(browser: Browser, rp: RelyingParty,
              **params: Any) -> tuple[requests.Response, dict[str, str]]:
    """Start an authorization request; the first page (or callback) and the RP's secrets."""
    url, secrets = rp.authorize_url(**params)
    return browser.follow(browser.get(url)), secrets


def answer_totp(browser: Browser, page: requests.Response, secret: str,
                at: float | None = None) -> requests.Response:
    """Answer the TOTP challenge shown on ``page`` (asserting that it is one)."""
    assert page_name(page.text) == "mfa-totp", page.text[:300]
    totp = pyotp.TOTP(secret)
    code = totp.at(at) if at is not None else totp.now()
    return browser.follow(browser.post(form_action(page.text, "/mfa/verify"), {
        **hidden_inputs(page.text), "code": code}))


def id_token_claims(rp: RelyingParty, response: requests.Response,
                    secrets: dict[str, str]) -> dict[str, Any]:
    """Redeem the code on the callback ``response``; the verified ID token's claims."""
    token = rp.exchange(callback_params(response).code, secrets["code_verifier"])
    return rp.verify_id_token(token["id_token"], secrets["nonce"])


def essential_acr(*values: str) -> str:
    """A ``claims`` parameter asking for an essential acr (OIDC Core §5.5.1.1)."""
    return json.dumps({"id_token": {"acr": {"essential": True, "values": list(values)}}})


def first_page_after_login(browser: Browser, rp: RelyingParty, username: str = "alice",
                           password: str | None = None, **params: Any) -> requests.Response:
    """Authorize, sign in with the password if asked, and return the page that follows."""
    page, _ = authorize(browser, rp, **params)
    if page_name(page.text) == "login":
        args = (page, username) if password is None else (page, username, password)
        page = browser.follow(browser.submit_login(*args))
    return page


def policy_rules(*rules: dict[str, Any]) -> dict[str, Any]:
    """App overrides with these adaptive rules."""
    return {"policy": {"rules": list(rules)}}
