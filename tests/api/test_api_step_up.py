"""The API step-up round trip (DESIGN §7): a real sign-in gives an aal1 token; GET /aal says
aal2 is next; challenge → verify answers a new token set with acr=aal2, which a resource
server protected by ``idp.resource.require_acr("aal2")`` accepts; refresh keeps what holds."""

from __future__ import annotations

import time

import pyotp
import pytest
import requests
from flask import Flask, g

from idp.extensions import db
from idp.models import Token
from idp.oidc.tokens import unverified_claims
from idp.resource import require_acr
from tests.helpers.factors import enroll_totp


def _resource_server(issuer):
    api = Flask("test-api")
    api.config["IDP_ISSUER"] = issuer
    api.config["IDP_AUDIENCE"] = "rp1"  # the IdP's default access-token aud: the client id

    @api.post("/transfers")
    @require_acr("aal2")
    def transfer():
        return {"acr": g.access_token["acr"], "sub": g.access_token["sub"]}

    return api.test_client()


def _call(base, method, path, token, **kw):
    return requests.request(method, f"{base}/api/v1{path}", timeout=10,
                            headers={"Authorization": f"Bearer {token}"}, **kw)


@pytest.fixture
def signed_in(flows, app):
    """alice with TOTP, signed in with her password only (aal1), token scope openid mfa."""
    user_id = flows.user("alice")
    secret = enroll_totp(app, "alice", steps_back=1)
    rp = flows.client("rp1", scope="openid profile email mfa")
    result = flows.sign_in(flows.browser(), rp, scope="openid mfa")
    assert result.claims["acr"] == "aal1"
    return rp, result.token, secret, user_id


def test_aal1_token_steps_up_to_aal2_through_the_api(signed_in):
    rp, token, secret, user_id = signed_in
    resource = _resource_server(rp.issuer)
    access = token["access_token"]
    assert resource.post("/transfers", headers={
        "Authorization": f"Bearer {access}"}).status_code == 401

    level = _call(rp.issuer, "GET", "/me/aal", access).json()
    assert (level["current_level"], level["next_level"]) == ("aal1", "aal2")
    factor = _call(rp.issuer, "GET", "/me/factors", access).json()["totp"][0]
    challenge = _call(rp.issuer, "POST", f"/me/factors/{factor['id']}/challenge", access).json()
    verified = _call(rp.issuer, "POST", f"/me/factors/{factor['id']}/verify", access,
                     json={"challenge_id": challenge["id"],
                           "code": pyotp.TOTP(secret).now()})

    assert verified.status_code == 200, verified.text
    stepped = verified.json()
    allowed = resource.post("/transfers", headers={
        "Authorization": f"Bearer {stepped['access_token']}"})
    assert allowed.status_code == 200, allowed.get_json()
    assert allowed.get_json() == {"acr": "aal2", "sub": user_id}
    claims = unverified_claims(stepped["access_token"])
    before = unverified_claims(access)
    assert claims["amr"] == ["pwd", "otp", "mfa"]
    assert claims["auth_time"] >= before["auth_time"]
    assert claims["sid"] == before["sid"] and claims["client_id"] == "rp1"
    assert claims["scope"] == "openid mfa"
    id_token = rp.verify_id_token(stepped["id_token"])
    assert id_token["acr"] == "aal2" and id_token["sub"] == user_id
    level = _call(rp.issuer, "GET", "/me/aal", stepped["access_token"]).json()
    assert level["current_level"] == "aal2"


def test_the_stepped_up_refresh_token_keeps_aal2_and_joins_the_grant(signed_in, app):
    rp, token, secret, _ = signed_in
    access = token["access_token"]
    factor = _call(rp.issuer, "GET", "/me/factors", access).json()["totp"][0]
    stepped = _call(rp.issuer, "POST", f"/me/factors/{factor['id']}/challenge_and_verify",
                    access, json={"code": pyotp.TOTP(secret).now()}).json()

    refreshed = requests.post(rp.issuer + "/token", data={
        "grant_type": "refresh_token", "refresh_token": stepped["refresh_token"]},
        auth=(rp.client_id, rp.client_secret), timeout=10)

    assert refreshed.status_code == 200, refreshed.text
    assert unverified_claims(refreshed.json()["access_token"])["acr"] == "aal2"
    with app.app_context():
        families = {t.family_id for t in db.session.query(Token)}
    assert len(families) == 1  # one grant: revoking it revokes the stepped-up tokens too


def test_an_aged_out_authentication_cannot_be_stepped_up(signed_in, app):
    rp, token, secret, _ = signed_in
    access = token["access_token"]
    factor = _call(rp.issuer, "GET", "/me/factors", access).json()["totp"][0]
    with app.app_context():
        row = db.session.query(Token).one()
        row.acr_expiry = {"aal1": int(time.time()) - 1}
        db.session.commit()

    response = _call(rp.issuer, "POST", f"/me/factors/{factor['id']}/challenge_and_verify",
                     access, json={"code": pyotp.TOTP(secret).now()})

    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_a_password_older_than_aal2_allows_is_not_raised(signed_in, app):
    """The ladder counts the original proof with its real age: a password from two days ago
    plus a fresh TOTP is not aal2 (both must be within aal2's 24 h)."""
    rp, token, secret, _ = signed_in
    access = token["access_token"]
    factor = _call(rp.issuer, "GET", "/me/factors", access).json()["totp"][0]
    two_days_ago = int(time.time()) - 2 * 86400
    with app.app_context():
        row = db.session.query(Token).one()
        row.auth_time = two_days_ago
        row.acr_expiry = {"aal1": two_days_ago + 30 * 86400}
        db.session.commit()

    response = _call(rp.issuer, "POST", f"/me/factors/{factor['id']}/challenge_and_verify",
                     access, json={"code": pyotp.TOTP(secret).now()})

    assert response.status_code == 200
    assert unverified_claims(response.json()["access_token"])["acr"] == "aal1"
