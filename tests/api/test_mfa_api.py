"""Self-service MFA API (/api/v1/me): every endpoint's happy path and its error paths."""

from __future__ import annotations

import json
import re
import time

import pytest

from idp.extensions import db
from idp.models import Credential, RecoveryCode
from idp.oidc.tokens import unverified_claims as claims_of
from tests.api.conftest import totp_now
from tests.helpers.authenticator import SoftwareAuthenticator
from tests.helpers.codes import latest_code
from tests.helpers.factors import enroll_recovery_codes, enroll_totp


def enroll_via_api(api, token, factor_type="totp", **body):
    response = api.post("/me/factors", token, json={"factor_type": factor_type, **body})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


# -- authentication (RFC 6750) --------------------------------------------------------------

def test_missing_token_is_401_with_a_bare_challenge(api):
    response = api.http.get("/api/v1/me/factors")

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="stepup-idp"')
    assert "error=" not in response.headers["WWW-Authenticate"]
    assert response.get_json()["error"] == "invalid_token"


@pytest.mark.parametrize(("header", "status", "error"), [
    ("Bearer not.a.token", 401, "invalid_token"),
    ("Basic YWxpY2U6cHc=", 400, "invalid_request"),
    ("Bearer ", 400, "invalid_request"),
])
def test_bad_authorization_headers(api, header, status, error):
    response = api.http.get("/api/v1/me/factors", headers={"Authorization": header})

    assert response.status_code == status
    assert response.get_json()["error"] == error
    assert f'error="{error}"' in response.headers["WWW-Authenticate"]


def test_token_in_the_query_is_refused(api):
    api.user()
    token = api.user_token()["access_token"]

    response = api.http.get(f"/api/v1/me/factors?access_token={token}")

    assert response.status_code == 400


def test_token_without_the_mfa_scope_is_403_insufficient_scope(api):
    api.user()
    token = api.user_token(scope="openid profile")

    response = api.get("/me/factors", token)

    assert response.status_code == 403
    assert response.get_json()["error"] == "insufficient_scope"
    assert 'scope="mfa"' in response.headers["WWW-Authenticate"]


def test_client_credentials_token_is_not_a_user(api):
    response = api.get("/me/factors", api.admin_token())

    assert response.status_code == 403
    assert response.get_json()["error"] == "insufficient_scope"


def test_revoked_token_and_disabled_user_are_401(api, app):
    api.user()
    token = api.user_token()
    from idp.users import disable_user

    with app.app_context():
        disable_user("alice")

    response = api.get("/me/factors", token)

    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


# -- listing --------------------------------------------------------------------------------

def test_list_factors(api, app):
    api.user()
    token = api.user_token()
    assert api.get("/me/factors", token).get_json() == {
        "all": [], "totp": [], "phone": [], "email": [], "webauthn": []}

    enroll_totp(app, "alice")
    body = api.get("/me/factors", token).get_json()

    assert [f["type"] for f in body["all"]] == ["totp"]
    factor = body["totp"][0]
    assert factor["status"] == "verified" and factor["friendly_name"] == "Authenticator app"
    assert set(factor) == {"id", "type", "friendly_name", "status", "created_at",
                           "last_used_at"}
    assert body["phone"] == body["email"] == body["webauthn"] == []


# -- enrollment -----------------------------------------------------------------------------

def test_totp_enrollment_then_verify_returns_aal2_tokens(api):
    api.user()
    token = api.user_token()

    enrolled = enroll_via_api(api, token, "totp", friendly_name="My phone")

    assert enrolled["status"] == "unverified" and enrolled["friendly_name"] == "My phone"
    assert enrolled["totp"]["uri"].startswith("otpauth://totp/")
    assert enrolled["totp"]["qr_code"].startswith("data:image/svg+xml")
    assert re.fullmatch(r"[A-Z2-7]{32}", enrolled["totp"]["secret"])
    challenge = api.post(f"/me/factors/{enrolled['id']}/challenge", token).get_json()
    assert challenge["id"] == enrolled["challenge"]["id"]

    verified = api.post(f"/me/factors/{enrolled['id']}/verify", token, json={
        "challenge_id": challenge["id"], "code": totp_now(enrolled["totp"]["secret"])})

    assert verified.status_code == 200, verified.get_json()
    tokens = verified.get_json()
    claims = claims_of(tokens["access_token"])
    assert claims["acr"] == "aal2" and claims["amr"] == ["pwd", "otp", "mfa"]
    assert claims_of(tokens["id_token"])["acr"] == "aal2"
    assert tokens["refresh_token"] and tokens["token_type"] == "Bearer"
    listed = api.get("/me/factors", tokens).get_json()
    assert listed["totp"][0]["status"] == "verified"
    assert len(api.audit("mfa.factor_enrolled")) == 1


def test_enrolling_another_factor_needs_aal2(api, app):
    api.user()
    enroll_totp(app, "alice", steps_back=1)
    aal1 = api.user_token()

    denied = api.post("/me/factors", aal1, json={"factor_type": "email"})

    assert denied.status_code == 403
    assert denied.get_json()["error"] == "insufficient_aal"
    assert 'acr_values="aal2"' in denied.headers["WWW-Authenticate"]
    aal2 = api.user_token(methods=("password", "totp"))
    assert api.post("/me/factors", aal2, json={"factor_type": "email"}).status_code == 201


def test_duplicate_friendly_name_is_409(api, app):
    api.user()
    enroll_totp(app, "alice")
    token = api.user_token(methods=("password", "totp"))

    response = api.post("/me/factors", token, json={"factor_type": "email",
                                                    "friendly_name": "Authenticator app"})

    assert response.status_code == 409
    assert response.get_json()["error"] == "conflict"


def test_restarting_an_unfinished_enrollment_keeps_its_name_free(api):
    api.user()
    token = api.user_token()
    first = enroll_via_api(api, token, "totp", friendly_name="Phone")
    second = enroll_via_api(api, token, "totp", friendly_name="Phone")

    assert first["id"] != second["id"]
    assert [f["id"] for f in api.get("/me/factors", token).get_json()["all"]] == [second["id"]]


def test_phone_enrollment_sends_a_code_and_verifies_the_number(api, app):
    api.user()
    token = api.user_token()

    enrolled = enroll_via_api(api, token, "phone", phone="+4915112345678")
    assert enrolled["phone"]["sent_to"].endswith("78")
    code = latest_code(app, "+4915112345678")
    verified = api.post(f"/me/factors/{enrolled['id']}/verify", token, json={
        "challenge_id": enrolled["challenge"]["id"], "code": code})

    assert verified.status_code == 200
    assert claims_of(verified.get_json()["access_token"])["amr"] == ["pwd", "sms", "mfa"]
    from idp.models import User

    with app.app_context():
        user = db.session.get(User, api.user_id("alice"))
        assert user.phone_number == "+4915112345678" and user.phone_number_verified


def test_email_enrollment_and_challenge(api, app):
    api.user()
    token = api.user_token()
    enrolled = enroll_via_api(api, token, "email")
    api.post(f"/me/factors/{enrolled['id']}/verify", token, json={
        "challenge_id": enrolled["challenge"]["id"],
        "code": latest_code(app, "alice@example.test")})
    from idp.extensions import store
    from idp.factors.codes import cooldown_key

    with app.app_context():
        store.current.delete(cooldown_key(api.user_id("alice"), "email"))

    challenge = api.post(f"/me/factors/{enrolled['id']}/challenge", token)

    assert challenge.status_code == 200
    assert challenge.get_json()["type"] == "email"
    # email does not count toward aal2 by default: the proof stays at aal1
    verified = api.post(f"/me/factors/{enrolled['id']}/verify", token, json={
        "challenge_id": challenge.get_json()["id"],
        "code": latest_code(app, "alice@example.test")})
    assert claims_of(verified.get_json()["access_token"])["acr"] == "aal1"


def test_code_resend_cooldown_is_429_with_retry_after(api, app):
    api.user()
    token = api.user_token()
    enroll_via_api(api, token, "phone", phone="+4915112345678")

    again = api.post("/me/factors", token, json={"factor_type": "phone",
                                                 "phone": "+4915112345678"})

    assert again.status_code == 429
    assert int(again.headers["Retry-After"]) >= 1


def test_webauthn_enrollment_and_assertion(api, app):
    api.user()
    token = api.user_token()
    origin = app.extensions["idp.settings"].issuer
    device = SoftwareAuthenticator()

    enrolled = enroll_via_api(api, token, "webauthn", friendly_name="Laptop")
    created = device.create(enrolled["webauthn"]["options"], origin)
    first = api.post(f"/me/factors/{enrolled['id']}/verify", token, json={
        "challenge_id": enrolled["challenge"]["id"], "credential": created})
    assert first.status_code == 200, first.get_json()

    challenge = api.post(f"/me/factors/{enrolled['id']}/challenge", token).get_json()
    assertion = device.get(challenge["webauthn"]["options"], origin)
    second = api.post(f"/me/factors/{enrolled['id']}/verify", token, json={
        "challenge_id": challenge["id"], "credential": assertion})

    assert second.status_code == 200, second.get_json()
    claims = claims_of(second.get_json()["access_token"])
    assert claims["acr"] == "phr"
    assert {"pwd", "pop", "mfa"} <= set(claims["amr"])


# -- request validation ---------------------------------------------------------------------

@pytest.mark.parametrize(("body", "field"), [
    ({"factor_type": "phone"}, "phone"),
    ({"factor_type": "totp", "phone": "+4915112345678"}, "phone"),
    ({"factor_type": "sms"}, "factor_type"),
    ({}, "factor_type"),
    ({"factor_type": "totp", "colour": "red"}, "colour"),
    ({"factor_type": "totp", "friendly_name": "   "}, "friendly_name"),
    ({"factor_type": "totp", "friendly_name": "x" * 101}, "friendly_name"),
    ({"factor_type": "totp", "friendly_name": 7}, "friendly_name"),
    ({"factor_type": "totp", "friendly_name": "a\u0000b"}, "friendly_name"),
    ({"factor_type": "phone", "phone": "12345"}, "phone"),
])
def test_validation_errors_name_the_field(api, body, field):
    api.user()
    token = api.user_token()

    response = api.post("/me/factors", token, json=body)

    assert response.status_code == 422, response.get_json()
    error = response.get_json()
    assert error["error"] == "validation_failed" and error["field"] == field
    assert error["error_description"].startswith(f"{field}:")


@pytest.mark.parametrize(("data", "content_type", "status"), [
    ("factor_type=totp", "application/x-www-form-urlencoded", 415),
    ('{"factor_type": "totp"}', "text/plain", 415),
    ('{"factor_type": "totp"', "application/json", 400),
    ('["totp"]', "application/json", 400),
    ('{"factor_type": "totp", "factor_type": "email"}', "application/json", 400),
    ('{"factor_type": NaN}', "application/json", 400),
    ("\xff", "application/json", 400),
    ('{"factor_type": "' + "x" * 20000 + '"}', "application/json", 413),
])
def test_bodies_must_be_small_strict_json(api, data, content_type, status):
    api.user()
    token = api.user_token()

    response = api.http.post("/api/v1/me/factors", data=data.encode("latin-1"),
                             headers={**api.bearer(token), "Content-Type": content_type})

    assert response.status_code == status
    assert set(response.get_json()) == {"error", "error_description"}


# -- challenges -----------------------------------------------------------------------------

def _totp_user(api, app):
    api.user()
    secret = enroll_totp(app, "alice", steps_back=1)
    token = api.user_token()
    factor = api.get("/me/factors", token).get_json()["totp"][0]
    return secret, token, factor


def test_wrong_code_is_422_and_a_challenge_works_once(api, app):
    secret, token, factor = _totp_user(api, app)
    challenge = api.post(f"/me/factors/{factor['id']}/challenge", token).get_json()

    wrong = api.post(f"/me/factors/{factor['id']}/verify", token,
                     json={"challenge_id": challenge["id"], "code": "000000"
                           if totp_now(secret) != "000000" else "111111"})
    right = api.post(f"/me/factors/{factor['id']}/verify", token,
                     json={"challenge_id": challenge["id"], "code": totp_now(secret)})
    replay = api.post(f"/me/factors/{factor['id']}/verify", token,
                      json={"challenge_id": challenge["id"], "code": totp_now(secret, 30)})

    assert wrong.status_code == 422 and wrong.get_json()["error"] == "verification_failed"
    assert right.status_code == 200
    assert replay.status_code == 422 and replay.get_json()["error"] == "challenge_expired"
    assert len(api.audit("user.mfa_failed")) == 1
    assert len(api.audit("user.mfa_succeeded")) == 1


def test_a_challenge_of_another_factor_is_refused(api, app):
    secret, token, factor = _totp_user(api, app)
    aal2 = api.user_token(methods=("password", "totp"))
    other = enroll_via_api(api, aal2, "email")
    challenge = api.post(f"/me/factors/{factor['id']}/challenge", token).get_json()

    response = api.post(f"/me/factors/{other['id']}/verify", token, json={
        "challenge_id": challenge["id"], "code": totp_now(secret)})

    assert response.status_code == 422
    assert response.get_json()["error"] == "challenge_expired"


@pytest.mark.parametrize("app_overrides", [{"mfa": {"challenge_ttl": 1}}])
def test_challenges_expire(api, app):
    secret, token, factor = _totp_user(api, app)
    challenge = api.post(f"/me/factors/{factor['id']}/challenge", token).get_json()
    time.sleep(2.1)

    response = api.post(f"/me/factors/{factor['id']}/verify", token, json={
        "challenge_id": challenge["id"], "code": totp_now(secret)})

    assert response.status_code == 422
    assert response.get_json()["error"] == "challenge_expired"


@pytest.mark.parametrize(("body", "field"), [
    ({"challenge_id": "abc"}, "code"),
    ({"challenge_id": "abc", "code": "123456", "credential": {}}, "code"),
    ({"code": "123456"}, "challenge_id"),
    ({"challenge_id": "a/b", "code": "123456"}, "challenge_id"),
])
def test_verify_body_errors(api, app, body, field):
    _, token, factor = _totp_user(api, app)

    response = api.post(f"/me/factors/{factor['id']}/verify", token, json=body)

    assert response.status_code == 422
    assert response.get_json()["field"] == field


def test_unknown_factor_is_404(api):
    api.user()
    token = api.user_token()

    assert api.post("/me/factors/" + "0" * 32 + "/challenge", token).status_code == 404
    assert api.post("/me/factors/not-an-id/challenge", token).status_code == 404


def test_another_users_factor_is_404(api, app):
    api.user()
    api.user("bob")
    enroll_totp(app, "bob")
    bob = api.user_token("bob")
    factor = api.get("/me/factors", bob).get_json()["all"][0]

    response = api.post(f"/me/factors/{factor['id']}/challenge", api.user_token("alice"))

    assert response.status_code == 404


def test_challenge_and_verify_totp(api, app):
    secret, token, factor = _totp_user(api, app)

    response = api.post(f"/me/factors/{factor['id']}/challenge_and_verify", token,
                        json={"code": totp_now(secret)})

    assert response.status_code == 200
    assert claims_of(response.get_json()["access_token"])["acr"] == "aal2"


def test_challenge_and_verify_finishes_a_totp_enrollment(api):
    api.user()
    token = api.user_token()
    enrolled = enroll_via_api(api, token, "totp")

    response = api.post(f"/me/factors/{enrolled['id']}/challenge_and_verify", token,
                        json={"code": totp_now(enrolled["totp"]["secret"])})

    assert response.status_code == 200
    assert api.get("/me/factors", token).get_json()["totp"][0]["id"] == enrolled["id"]


def test_challenge_and_verify_is_for_totp_only(api, app):
    api.user()
    token = api.user_token()
    enrolled = enroll_via_api(api, token, "email")

    response = api.post(f"/me/factors/{enrolled['id']}/challenge_and_verify", token,
                        json={"code": "123456"})

    assert response.status_code == 409


@pytest.mark.parametrize("app_overrides", [{"mfa": {"max_failures_per_factor": 2,
                                                    "base_delay": 30}}])
def test_repeated_failures_are_throttled_with_retry_after(api, app):
    secret, token, factor = _totp_user(api, app)
    wrong = "000000" if totp_now(secret) != "000000" else "111111"
    statuses = []
    for _ in range(3):
        response = api.post(f"/me/factors/{factor['id']}/challenge_and_verify", token,
                            json={"code": wrong})
        statuses.append(response.status_code)

    assert statuses == [422, 422, 429]
    assert int(response.headers["Retry-After"]) >= 1
    # The hosted pages share the counter (same store key as the MFA pages).
    with app.app_context():
        from idp.extensions import store

        assert store.current.ttl(f"lock:mfa:{api.user_id('alice')}:totp")


# -- unenroll -------------------------------------------------------------------------------

def test_removing_a_verified_factor_needs_aal2(api, app):
    _, token, factor = _totp_user(api, app)

    denied = api.delete(f"/me/factors/{factor['id']}", token)

    assert denied.status_code == 403
    assert denied.get_json()["error"] == "insufficient_aal"
    assert "max_age=900" in denied.headers["WWW-Authenticate"]


def test_removing_the_last_factor_removes_recovery_codes(api, app):
    _, _, factor = _totp_user(api, app)
    enroll_recovery_codes(app, "alice")
    aal2 = api.user_token(methods=("password", "totp"))

    response = api.delete(f"/me/factors/{factor['id']}", aal2)

    assert response.status_code == 204
    with app.app_context():
        assert db.session.query(Credential).count() == 0
        assert db.session.query(RecoveryCode).count() == 0
    removed = api.audit("mfa.factor_removed")
    assert {e.data["factor_type"] for e in removed} == {"totp", "recovery_code"}
    assert all(e.actor == api.user_id("alice") for e in removed)


def test_an_unverified_factor_can_be_removed_at_aal1(api):
    api.user()
    token = api.user_token()
    enrolled = enroll_via_api(api, token, "totp")

    assert api.delete(f"/me/factors/{enrolled['id']}", token).status_code == 204


def test_a_stale_aal2_is_not_enough(api, app):
    _, _, factor = _totp_user(api, app)
    stale = api.user_token(methods=("password", "totp"), at=int(time.time()) - 3600)

    response = api.delete(f"/me/factors/{factor['id']}", stale)

    assert response.status_code == 403


# -- assurance level ------------------------------------------------------------------------

def test_aal_without_factors(api):
    api.user()
    token = api.user_token()

    body = api.get("/me/aal", token).get_json()

    assert body["current_level"] == "aal1" and body["next_level"] == "aal1"
    assert [m["method"] for m in body["current_authentication_methods"]] == ["password"]


def test_aal_with_a_second_factor(api, app):
    _, token, _ = _totp_user(api, app)

    body = api.get("/me/aal", token).get_json()
    aal2 = api.get("/me/aal", api.user_token(methods=("password", "totp"))).get_json()

    assert (body["current_level"], body["next_level"]) == ("aal1", "aal2")
    assert (aal2["current_level"], aal2["next_level"]) == ("aal2", "aal2")
    assert {m["method"] for m in aal2["current_authentication_methods"]} == {"password",
                                                                             "totp"}


# -- recovery codes -------------------------------------------------------------------------

def test_regenerate_recovery_codes(api, app):
    _, aal1, _ = _totp_user(api, app)
    old = enroll_recovery_codes(app, "alice")

    denied = api.post("/me/recovery-codes", aal1)
    response = api.post("/me/recovery-codes", api.user_token(methods=("password", "totp")))

    assert denied.status_code == 403
    assert response.status_code == 201
    codes = response.get_json()["recovery_codes"]
    assert len(codes) == 10 and not set(codes) & set(old)
    assert len(api.audit("mfa.backup_codes_regenerated")) == 1


def test_recovery_codes_need_another_factor(api):
    api.user()

    response = api.post("/me/recovery-codes", api.user_token())

    assert response.status_code == 409


def test_a_recovery_code_proves_a_factor(api, app):
    _, token, _ = _totp_user(api, app)
    codes = enroll_recovery_codes(app, "alice")
    factor = next(f for f in api.get("/me/factors", token).get_json()["all"]
                  if f["type"] == "recovery_code")
    challenge = api.post(f"/me/factors/{factor['id']}/challenge", token).get_json()

    response = api.post(f"/me/factors/{factor['id']}/verify", token, json={
        "challenge_id": challenge["id"], "code": codes[0]})

    assert response.status_code == 200
    claims = claims_of(response.get_json()["access_token"])
    assert claims["acr"] == "aal2" and "lookup" in claims["amr"]
    assert json.dumps(claims)  # serialisable
