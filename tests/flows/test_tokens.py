"""Token endpoint behaviours: JWT access tokens (RFC 9068), refresh rotation, client
credentials, introspection (RFC 7662) and revocation (RFC 7009)."""

from __future__ import annotations

import time

import pytest
import requests
from joserfc import jwt
from sqlalchemy import select, update

from idp.crypto import sha256_hex
from idp.extensions import db
from idp.models import Token


def _post(rp, path, data, auth=None):
    auth = auth if auth is not None else (rp.client_id, rp.client_secret)
    return requests.post(rp.issuer + path, data=data, auth=auth, timeout=10)


def test_access_token_is_an_rfc9068_jwt_with_the_authentication_snapshot(flows):
    user_id = flows.user("alice")
    rp = flows.client("rp1")
    result = flows.sign_in(flows.browser(), rp)

    decoded = jwt.decode(result.token["access_token"], rp.jwks(), algorithms=["ES256"])

    assert decoded.header["typ"] == "at+jwt"
    # ES256 for access tokens (keys.access_token_alg, default), RS256 for the ID token.
    assert decoded.header["alg"] == "ES256"
    assert jwt.decode(result.token["id_token"], rp.jwks(),
                      algorithms=["RS256"]).header["alg"] == "RS256"
    assert decoded.header["kid"]
    claims = decoded.claims
    assert claims["iss"] == rp.issuer
    assert claims["sub"] == user_id
    assert claims["client_id"] == "rp1"
    assert claims["aud"] == "rp1"
    assert set(claims["scope"].split()) == {"openid", "profile", "email"}
    assert claims["jti"]
    assert claims["exp"] > claims["iat"]
    assert claims["acr"] == result.claims["acr"] == "aal1"
    assert claims["amr"] == result.claims["amr"] == ["pwd"]
    assert claims["auth_time"] == result.claims["auth_time"]
    assert claims["sid"] == result.claims["sid"]


@pytest.mark.parametrize("app_overrides", [{"keys": {"access_token_alg": "RS256"}}])
def test_access_tokens_can_be_signed_with_rs256(flows):
    flows.user("alice")
    rp = flows.client("rp1")
    result = flows.sign_in(flows.browser(), rp)

    decoded = jwt.decode(result.token["access_token"], rp.jwks(), algorithms=["RS256"])

    assert (decoded.header["alg"], decoded.header["typ"]) == ("RS256", "at+jwt")
    userinfo = requests.get(rp.issuer + "/userinfo", timeout=10, headers={
        "Authorization": f"Bearer {result.token['access_token']}"})
    assert userinfo.status_code == 200


def test_refresh_rotates_and_keeps_the_original_authentication(flows):
    flows.user("alice")
    rp = flows.client("rp1")
    first = flows.sign_in(flows.browser(), rp)

    response = _post(rp, "/token", {"grant_type": "refresh_token",
                                    "refresh_token": first.token["refresh_token"]})

    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"
    refreshed = response.json()
    assert refreshed["refresh_token"] != first.token["refresh_token"]
    assert refreshed["token_type"].lower() == "bearer"
    claims = rp.verify_id_token(refreshed["id_token"])
    for name in ("iss", "sub", "aud", "auth_time", "acr", "amr", "sid"):
        assert claims[name] == first.claims[name], name
    assert "nonce" not in claims
    # The old refresh token is spent; its reuse revokes the whole family.
    reuse = _post(rp, "/token", {"grant_type": "refresh_token",
                                 "refresh_token": first.token["refresh_token"]})
    assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"
    after = _post(rp, "/token", {"grant_type": "refresh_token",
                                 "refresh_token": refreshed["refresh_token"]})
    assert after.status_code == 400 and after.json()["error"] == "invalid_grant"


def test_refresh_token_is_bound_to_its_client(flows):
    flows.user("alice")
    rp1 = flows.client("rp1")
    rp2 = flows.client("rp2")
    token = flows.sign_in(flows.browser(), rp1).token

    stolen = _post(rp2, "/token", {"grant_type": "refresh_token",
                                   "refresh_token": token["refresh_token"]})

    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
    # The rightful client can still use it: a foreign presentation does not burn it.
    assert _post(rp1, "/token", {"grant_type": "refresh_token",
                                 "refresh_token": token["refresh_token"]}).status_code == 200


def test_an_expired_refresh_token_is_refused_without_revoking_the_grant(flows, app):
    flows.user("alice")
    rp = flows.client("rp1")
    first = flows.sign_in(flows.browser(), rp)
    with app.app_context():
        db.session.execute(update(Token).where(Token.refresh_token_hash == sha256_hex(
            first.token["refresh_token"])).values(refresh_expires_at=int(time.time()) - 1))
        db.session.commit()

    expired = _post(rp, "/token", {"grant_type": "refresh_token",
                                   "refresh_token": first.token["refresh_token"]})

    assert expired.status_code == 400 and expired.json()["error"] == "invalid_grant"
    # Expiry is not reuse: the grant's access token still works.
    userinfo = requests.get(rp.issuer + "/userinfo", timeout=10, headers={
        "Authorization": f"Bearer {first.token['access_token']}"})
    assert userinfo.status_code == 200, userinfo.text
    with app.app_context():
        row = db.session.scalar(select(Token).where(Token.refresh_token_hash == sha256_hex(
            first.token["refresh_token"])))
        assert row.rotated_at is None and row.revoked_at is None


def test_public_client_uses_pkce_without_a_secret(flows):
    flows.user("alice")
    rp = flows.client("spa", auth_method="none")
    assert rp.client_secret is None

    result = flows.sign_in(flows.browser(), rp)

    assert result.claims["aud"] == ["spa"]
    refreshed = requests.post(rp.issuer + "/token", timeout=10, data={
        "grant_type": "refresh_token", "refresh_token": result.token["refresh_token"],
        "client_id": "spa"})
    assert refreshed.status_code == 200, refreshed.text


def test_client_credentials_issues_a_machine_token_without_refresh(flows):
    rp = flows.client("svc", grant_types=["client_credentials"], redirect_uris=[],
                      scope="idp:introspect")

    response = _post(rp, "/token", {"grant_type": "client_credentials",
                                    "scope": "idp:introspect"})

    assert response.status_code == 200, response.text
    body = response.json()
    assert "refresh_token" not in body and "id_token" not in body
    claims = jwt.decode(body["access_token"], rp.jwks(), algorithms=["ES256"]).claims
    assert claims["sub"] == "svc" and claims["client_id"] == "svc"
    assert "acr" not in claims and "auth_time" not in claims


def test_introspection_reports_acr_amr_auth_time_to_a_resource_server(flows):
    user_id = flows.user("alice")
    rp = flows.client("rp1")
    resource = flows.client("api", grant_types=["client_credentials"], redirect_uris=[],
                            scope="idp:introspect")
    result = flows.sign_in(flows.browser(), rp)

    body = _post(resource, "/introspect", {"token": result.token["access_token"]}).json()

    assert body["active"] is True
    assert body["sub"] == user_id
    assert body["client_id"] == "rp1"
    assert body["acr"] == "aal1" and body["amr"] == ["pwd"]
    assert body["auth_time"] == result.claims["auth_time"]
    assert body["iss"] == rp.issuer
    refresh = _post(resource, "/introspect", {"token": result.token["refresh_token"],
                                              "token_type_hint": "refresh_token"}).json()
    assert refresh["active"] is True and refresh["token_type"] == "refresh_token"


def test_introspection_hides_other_clients_tokens(flows):
    flows.user("alice")
    rp = flows.client("rp1")
    other = flows.client("rp2")
    token = flows.sign_in(flows.browser(), rp).token

    assert _post(other, "/introspect", {"token": token["access_token"]}).json() == {
        "active": False}
    assert _post(rp, "/introspect", {"token": token["access_token"]}).json()["active"] is True


def test_revoking_an_access_token_stops_userinfo(flows):
    flows.user("alice")
    rp = flows.client("rp1")
    token = flows.sign_in(flows.browser(), rp).token
    bearer = {"Authorization": f"Bearer {token['access_token']}"}
    assert requests.get(rp.issuer + "/userinfo", headers=bearer, timeout=10).status_code == 200

    response = _post(rp, "/revoke", {"token": token["access_token"],
                                     "token_type_hint": "access_token"})

    assert response.status_code == 200
    after = requests.get(rp.issuer + "/userinfo", headers=bearer, timeout=10)
    assert after.status_code == 401
    assert 'error="invalid_token"' in after.headers["WWW-Authenticate"]
    # RFC 7009 §2.1 lets the server revoke the refresh token issued with it too; we do.
    assert _post(rp, "/token", {"grant_type": "refresh_token",
                                "refresh_token": token["refresh_token"]}).status_code == 400


def test_revoking_a_refresh_token_revokes_its_grant(flows):
    flows.user("alice")
    rp = flows.client("rp1")
    token = flows.sign_in(flows.browser(), rp).token

    assert _post(rp, "/revoke", {"token": token["refresh_token"]}).status_code == 200

    bearer = {"Authorization": f"Bearer {token['access_token']}"}
    assert requests.get(rp.issuer + "/userinfo", headers=bearer, timeout=10).status_code == 401
    assert _post(rp, "/token", {"grant_type": "refresh_token",
                                "refresh_token": token["refresh_token"]}).status_code == 400


def test_a_client_cannot_revoke_another_clients_token(flows):
    flows.user("alice")
    rp = flows.client("rp1")
    other = flows.client("rp2")
    token = flows.sign_in(flows.browser(), rp).token

    assert _post(other, "/revoke", {"token": token["access_token"]}).status_code == 200

    bearer = {"Authorization": f"Bearer {token['access_token']}"}
    assert requests.get(rp.issuer + "/userinfo", headers=bearer, timeout=10).status_code == 200


def test_disabling_a_user_revokes_their_tokens(flows, app):
    flows.user("alice")
    rp = flows.client("rp1")
    token = flows.sign_in(flows.browser(), rp).token
    from idp.users import disable_user

    with app.app_context():
        disable_user("alice")

    bearer = {"Authorization": f"Bearer {token['access_token']}"}
    assert requests.get(rp.issuer + "/userinfo", headers=bearer, timeout=10).status_code == 401
    assert _post(rp, "/token", {"grant_type": "refresh_token",
                                "refresh_token": token["refresh_token"]}).status_code == 400
