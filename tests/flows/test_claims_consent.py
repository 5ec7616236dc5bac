"""Claims asked for by name (the ``claims`` parameter, OIDC Core §5.5) are released only with
the user's consent (clients that are not first-party) and only within the client's registered
scopes; a claim not released is omitted, essential or not (§5.5.1), never an error."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import requests
from sqlalchemy import select

from idp.extensions import db
from idp.models import Consent
from tests.flows.test_consent import consent_page, direct_outcome
from tests.helpers.rp import callback_params

#: Beyond scope=openid: name in the ID token (essential), email and username from UserInfo,
#: and an acr request that must keep working as before.
CLAIMS = json.dumps({
    "id_token": {"name": {"essential": True}, "acr": {"values": ["aal1"]}},
    "userinfo": {"email": None, "preferred_username": None, "unknown_claim": None},
})


def userinfo(rp: Any, token: dict[str, Any]) -> dict[str, Any]:
    response = requests.get(rp.issuer + "/userinfo", timeout=10, headers={
        "Authorization": f"Bearer {token['access_token']}"})
    assert response.status_code == 200, response.text
    return response.json()


def listed_claims(page: requests.Response) -> list[str]:
    return re.findall(r'data-claim="([^"]+)"', page.text)


def finish(browser: Any, rp: Any, page: requests.Response, secrets_: dict[str, str],
           claims: list[str] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Allow on the consent page (ticking ``claims``); the ID token claims and UserInfo."""
    callback = callback_params(browser.follow(browser.submit_consent(page, "allow", claims)))
    token = rp.exchange(callback.code, secrets_["code_verifier"])
    return rp.verify_id_token(token["id_token"], secrets_["nonce"]), userinfo(rp, token)


def stored(app: Any, user_id: str, client_id: str) -> tuple[list[str], list[str]]:
    with app.app_context():
        consent = db.session.scalar(select(Consent).where(
            Consent.user_id == user_id, Consent.client_id == client_id))
        assert consent is not None
        return list(consent.claims or []), list(consent.rejected_claims or [])


def test_consent_page_lists_claims_requested_by_name_and_releases_them(flows, app):
    user_id = flows.user("alice")
    rp = flows.client("rp2", first_party=False)
    browser = flows.browser()

    page, secrets_ = consent_page(flows, browser, rp, scope="openid", claims=CLAIMS)

    assert listed_claims(page) == ["name", "email", "preferred_username"]
    assert re.findall(r'data-scope="([^"]+)"', page.text) == []
    id_token, info = finish(browser, rp, page, secrets_)
    assert id_token["name"] == "Alice"
    assert id_token["acr"] == "aal1"
    assert info == {"sub": user_id, "email": "alice@example.test", "preferred_username": "alice"}
    assert stored(app, user_id, "rp2") == (["email", "name", "preferred_username"], [])


def test_only_the_claims_the_user_ticked_are_released(flows, app):
    user_id = flows.user("alice")
    rp = flows.client("rp2", first_party=False)
    browser = flows.browser()
    page, secrets_ = consent_page(flows, browser, rp, scope="openid", claims=CLAIMS)

    id_token, info = finish(browser, rp, page, secrets_, claims=["email"])

    # The essential name claim is declined: omitted, not an error (OIDC Core §5.5.1).
    assert "name" not in id_token
    assert id_token["acr"] == "aal1"
    assert info == {"sub": user_id, "email": "alice@example.test"}
    assert stored(app, user_id, "rp2") == (["email"], ["name", "preferred_username"])
    # The decision is remembered: the same request gets a code without a page, and the
    # declined claims stay unreleased.
    params, again = direct_outcome(browser, rp, scope="openid", claims=CLAIMS)
    token = rp.exchange(params["code"], again["code_verifier"])
    assert "name" not in rp.verify_id_token(token["id_token"], again["nonce"])
    assert userinfo(rp, token) == {"sub": user_id, "email": "alice@example.test"}


def test_consent_to_scopes_does_not_cover_claims_asked_for_later(flows, app):
    user_id = flows.user("alice")
    rp = flows.client("rp2", first_party=False)
    browser = flows.browser()
    page, secrets_ = consent_page(flows, browser, rp, scope="openid")
    assert listed_claims(page) == []
    finish(browser, rp, page, secrets_)

    # Without consent for email, prompt=none cannot release it (OIDC Core §3.1.2.6).
    claims = json.dumps({"userinfo": {"email": None}})
    params, _ = direct_outcome(browser, rp, scope="openid", claims=claims, prompt="none")
    assert params["error"] == "consent_required" and "code" not in params
    # Interactively, the consent page asks for exactly that claim.
    page, secrets_ = consent_page(flows, browser, rp, scope="openid", claims=claims)
    assert listed_claims(page) == ["email"]
    _, info = finish(browser, rp, page, secrets_)
    assert info == {"sub": user_id, "email": "alice@example.test"}


def test_claims_covered_by_a_consented_scope_need_no_new_consent(flows):
    user_id = flows.user("alice")
    rp = flows.client("rp2", first_party=False)
    browser = flows.browser()
    page, secrets_ = consent_page(flows, browser, rp, scope="openid email")
    finish(browser, rp, page, secrets_)

    claims = json.dumps({"id_token": {"email": None}})
    params, again = direct_outcome(browser, rp, scope="openid", claims=claims, prompt="none")

    token = rp.exchange(params["code"], again["code_verifier"])
    assert rp.verify_id_token(token["id_token"], again["nonce"])["email"] == \
        "alice@example.test"
    assert userinfo(rp, token) == {"sub": user_id}


@pytest.mark.parametrize("first_party", [True, False])
def test_claims_never_exceed_the_clients_registered_scopes(flows, first_party):
    """A client registered without ``email`` gets no email by naming it in claims."""
    user_id = flows.user("alice")
    rp = flows.client("rp3", first_party=first_party, scope="openid profile")
    claims = json.dumps({"id_token": {"email": {"essential": True}, "name": None},
                         "userinfo": {"email_verified": None, "email": None}})
    browser = flows.browser()
    if first_party:
        result = flows.sign_in(browser, rp, scope="openid", claims=claims)
        id_token, token = result.claims, result.token
        info = userinfo(rp, token)
    else:
        page, secrets_ = consent_page(flows, browser, rp, scope="openid", claims=claims)
        assert listed_claims(page) == ["name"]
        id_token, info = finish(browser, rp, page, secrets_)

    assert id_token["name"] == "Alice"
    assert "email" not in id_token
    assert info == {"sub": user_id}
