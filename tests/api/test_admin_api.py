"""Admin API (/api/v1/admin): users, factors, MFA reset, devices, clients, audit query."""

from __future__ import annotations

import time

import pytest
import requests

from idp.extensions import db
from idp.models import Credential, Device, RecoveryCode
from tests.helpers.factors import enroll_recovery_codes, enroll_totp
from tests.helpers.rp import callback_params

# -- authentication -------------------------------------------------------------------------

def test_admin_api_needs_a_token(api):
    response = api.http.get("/api/v1/admin/users")

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="stepup-idp", scope="idp:admin"'


def test_a_users_token_is_not_an_admin_token(api):
    api.user()

    response = api.get("/admin/users", api.user_token(scope="openid mfa"))

    assert response.status_code == 403
    assert response.get_json()["error"] == "insufficient_scope"


def test_a_client_without_idp_admin_is_refused(api):
    api.admin_client("reader", scope="idp:introspect")

    response = api.get("/admin/users", api.admin_token("reader", scope="idp:introspect"))

    assert response.status_code == 403
    assert 'scope="idp:admin"' in response.headers["WWW-Authenticate"]


def test_taking_the_scope_away_takes_effect_at_once(api, app):
    token = api.admin_token()
    from idp.models import Client

    with app.app_context():
        db.session.get(Client, "ops").scope = "openid"
        db.session.commit()

    assert api.get("/admin/users", token).status_code == 403


# -- users ----------------------------------------------------------------------------------

def test_create_get_and_list_users(api):
    token = api.admin_token()

    created = api.post("/admin/users", token, json={
        "username": "carol", "password": "a long enough password", "email": "c@example.test",
        "name": "Carol", "email_verified": True})

    assert created.status_code == 201
    user = created.get_json()
    assert user["username"] == "carol" and user["email_verified"] and not user["disabled"]
    assert api.get(f"/admin/users/{user['id']}", token).get_json() == user
    listed = api.get("/admin/users?email=C@EXAMPLE.TEST", token).get_json()
    assert [u["id"] for u in listed["data"]] == [user["id"]]
    assert listed["next_cursor"] is None
    created_events = api.audit("user.created")
    assert created_events[-1].actor == "client:ops"


@pytest.mark.parametrize(("body", "status", "field"), [
    ({"username": "-bad", "password": "a long enough password"}, 422, "username"),
    ({"username": "dave", "password": "short"}, 422, "password"),
    ({"username": "dave", "password": "a long enough password", "email": "nope"}, 422,
     "email"),
    ({"username": "dave"}, 422, "password"),
    ({"username": "dave", "password": "a long enough password", "role": "x"}, 422, "role"),
])
def test_create_user_validation(api, body, status, field):
    response = api.post("/admin/users", api.admin_token(), json=body)

    assert response.status_code == status
    assert response.get_json()["field"] == field


def test_duplicate_username_is_409(api):
    api.user("alice")

    response = api.post("/admin/users", api.admin_token(), json={
        "username": "ALICE", "password": "a long enough password"})

    assert response.status_code == 409


def test_user_pagination_is_stable_newest_first(api, app):
    from idp.models import User

    ids = [api.user(f"user{i}") for i in range(5)]
    with app.app_context():  # same second for all: the id breaks the tie
        for user_id in ids:
            db.session.get(User, user_id).created_at = 1_700_000_000
        db.session.commit()
    token = api.admin_token()

    first = api.get("/admin/users?limit=2", token).get_json()
    api.user("latecomer")  # newer than everything: must not shift the next pages
    second = api.get(f"/admin/users?limit=2&cursor={first['next_cursor']}", token).get_json()
    third = api.get(f"/admin/users?limit=2&cursor={second['next_cursor']}", token).get_json()

    seen = [u["id"] for page in (first, second, third) for u in page["data"]]
    assert seen == sorted(ids, reverse=True)
    assert third["next_cursor"] is None


def test_bad_cursor_and_limit_are_422(api):
    token = api.admin_token()

    assert api.get("/admin/users?cursor=garbage", token).get_json()["field"] == "cursor"
    assert api.get("/admin/users?limit=0", token).get_json()["field"] == "limit"
    assert api.get("/admin/users?limit=x", token).status_code == 422


def test_unknown_user_is_404(api):
    token = api.admin_token()

    assert api.get("/admin/users/" + "0" * 32, token).status_code == 404
    assert api.get("/admin/users/nope", token).status_code == 404


def test_disable_revokes_tokens_and_enable_restores_sign_in(api):
    user_id = api.user()
    user_token = api.user_token()
    token = api.admin_token()

    disabled = api.post(f"/admin/users/{user_id}/disable", token)

    assert disabled.status_code == 200 and disabled.get_json()["disabled"]
    assert api.get("/me/factors", user_token).status_code == 401
    enabled = api.post(f"/admin/users/{user_id}/enable", token)
    assert enabled.get_json()["disabled"] is False
    assert api.get("/me/factors", api.user_token()).status_code == 200


def test_delete_user(api, app):
    user_id = api.user()
    enroll_totp(app, "alice")
    api.user_token()
    token = api.admin_token()

    assert api.delete(f"/admin/users/{user_id}", token).status_code == 204
    assert api.get(f"/admin/users/{user_id}", token).status_code == 404
    with app.app_context():
        assert db.session.query(Credential).count() == 0
    assert api.audit("user.deleted")[0].actor == "client:ops"


# -- factors and MFA reset ------------------------------------------------------------------

def test_list_and_remove_a_users_factor(api, app):
    user_id = api.user()
    enroll_totp(app, "alice")
    token = api.admin_token()

    factors = api.get(f"/admin/users/{user_id}/factors", token).get_json()["data"]
    removed = api.delete(f"/admin/users/{user_id}/factors/{factors[0]['id']}", token)

    assert [f["type"] for f in factors] == ["totp"]
    assert removed.status_code == 204
    event = api.audit("mfa.factor_removed")[0]
    assert event.actor == "client:ops" and event.user_id == user_id
    assert api.delete(f"/admin/users/{user_id}/factors/{factors[0]['id']}",
                      token).status_code == 404


def test_mfa_reset_removes_factors_and_ends_sessions_and_tokens(flows, app, api):
    user_id = api.user("alice")
    secret = enroll_totp(app, "alice", steps_back=1)
    enroll_recovery_codes(app, "alice")
    rp = flows.client("rp1")
    browser = flows.browser()
    signed_in = flows.sign_in(browser, rp)
    refresh_token = signed_in.token["refresh_token"]
    with app.app_context():
        db.session.add(Device(user_id=user_id, device_id="d" * 32,
                              remembered_until=int(time.time()) + 3600,
                              remembered_level="aal2"))
        db.session.commit()
    del secret

    reset = api.post(f"/admin/users/{user_id}/mfa/reset", api.admin_token())

    assert reset.status_code == 200, reset.get_json()
    body = reset.get_json()
    assert body["factors_removed"] == 2 and body["recovery_codes_removed"] == 10
    assert body["devices_forgotten"] == 1 and body["tokens_revoked"] >= 1
    with app.app_context():
        assert db.session.query(Credential).count() == 0
        assert db.session.query(RecoveryCode).count() == 0
    # The refresh token is dead...
    refreshed = requests.post(rp.issuer + "/token", data={
        "grant_type": "refresh_token", "refresh_token": refresh_token},
        auth=(rp.client_id, rp.client_secret), timeout=10)
    assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"
    # ...and so is the browser's session: prompt=none cannot sign in silently any more.
    url, _ = rp.authorize_url(prompt="none")
    silent = callback_params(browser.follow(browser.get(url)))
    assert silent.params["error"] == "login_required"
    event = api.audit("mfa.factor_admin_reset")[0]
    assert event.actor == "client:ops" and event.user_id == user_id


def test_a_session_started_after_the_reset_is_valid(flows, app, api):
    user_id = api.user("alice")
    rp = flows.client("rp1")
    api.post(f"/admin/users/{user_id}/mfa/reset", api.admin_token())
    time.sleep(1.1)  # sessions signed in during the reset's second are ended too
    browser = flows.browser()
    flows.sign_in(browser, rp)

    url, _ = rp.authorize_url(prompt="none")
    silent = callback_params(browser.follow(browser.get(url)))

    assert "code" in silent.params


# -- remembered devices ---------------------------------------------------------------------

def test_list_and_forget_remembered_devices(api, app):
    user_id = api.user()
    with app.app_context():
        device = Device(user_id=user_id, device_id="d" * 32, label="Firefox on Linux",
                        remembered_until=int(time.time()) + 3600, remembered_level="aal2")
        db.session.add(device)
        db.session.commit()
        device_id = device.id
    token = api.admin_token()

    listed = api.get(f"/admin/users/{user_id}/devices", token).get_json()["data"]
    forgotten = api.delete(f"/admin/users/{user_id}/devices/{device_id}", token)

    assert [d["label"] for d in listed] == ["Firefox on Linux"]
    assert forgotten.status_code == 204
    assert api.get(f"/admin/users/{user_id}/devices", token).get_json()["data"] == []
    assert api.delete(f"/admin/users/{user_id}/devices/{device_id}", token).status_code == 404
    assert api.audit("mfa.device_forgotten")[0].actor == "client:ops"


# -- clients --------------------------------------------------------------------------------

def test_client_lifecycle(api):
    token = api.admin_token()

    created = api.post("/admin/clients", token, json={
        "name": "Shop", "redirect_uris": ["https://shop.example/cb"],
        "scope": "openid email mfa", "minimum_acr": "aal2"})
    assert created.status_code == 201, created.get_json()
    client = created.get_json()
    secret = client.pop("client_secret")
    assert secret and client["minimum_acr"] == "aal2"
    client_id = client["client_id"]
    assert api.get(f"/admin/clients/{client_id}", token).get_json() == client
    assert client_id in [c["client_id"] for c in api.get("/admin/clients", token).get_json()[
        "data"]]

    updated = api.patch(f"/admin/clients/{client_id}", token, json={
        "redirect_uris": ["https://shop.example/cb2"], "default_acr_values": ["phr", "aal2"],
        "default_max_age": 600, "require_acr_values": True})
    assert updated.status_code == 200
    assert updated.get_json()["redirect_uris"] == ["https://shop.example/cb2"]
    assert updated.get_json()["default_acr_values"] == ["phr", "aal2"]

    api.secrets[client_id] = secret
    rotated = api.post(f"/admin/clients/{client_id}/secret", token).get_json()
    assert rotated["client_secret"] != secret

    assert api.delete(f"/admin/clients/{client_id}", token).status_code == 204
    assert api.get(f"/admin/clients/{client_id}", token).status_code == 404
    assert [e.type for e in api.audit("client.created")] == ["client.created"]


def test_rotated_secret_replaces_the_old_one(api):
    token = api.admin_token()
    created = api.post("/admin/clients", token, json={
        "name": "Batch", "grant_types": ["client_credentials"], "scope": "idp:introspect"})
    client_id, old = created.get_json()["client_id"], created.get_json()["client_secret"]

    new = api.post(f"/admin/clients/{client_id}/secret", token).get_json()["client_secret"]

    api.secrets[client_id] = old
    with pytest.raises(AssertionError):
        api.admin_token(client_id, scope="idp:introspect")
    api.secrets[client_id] = new
    assert api.admin_token(client_id, scope="idp:introspect")


@pytest.mark.parametrize(("body", "field"), [
    ({"name": "x", "redirect_uris": ["https://a.example/cb#frag"]}, "redirect_uris[0]"),
    ({"name": "x", "redirect_uris": []}, "redirect_uris"),
    ({"name": "x", "redirect_uris": ["https://a.example"], "minimum_acr": "gold"},
     "minimum_acr"),
    ({"name": "x", "grant_types": ["client_credentials"],
      "token_endpoint_auth_method": "none"}, "token_endpoint_auth_method"),
    ({"name": "x", "grant_types": ["implicit"]}, "grant_types[0]"),
    ({"name": "x", "scope": "openid  email"}, "scope"),
    ({"redirect_uris": ["https://a.example"]}, "name"),
])
def test_create_client_validation(api, body, field):
    response = api.post("/admin/clients", api.admin_token(), json=body)

    assert response.status_code == 422
    assert response.get_json()["field"] == field


def test_a_client_cannot_delete_or_demote_itself(api):
    token = api.admin_token()

    assert api.delete("/admin/clients/ops", token).status_code == 409
    assert api.patch("/admin/clients/ops", token, json={"scope": "openid"}).status_code == 409
    assert api.post("/admin/clients", token, json={
        "name": "dup", "client_id": "app", "redirect_uris": ["https://a.example"]}
    ).status_code == 409


def test_public_clients_have_no_secret_to_rotate(api):
    token = api.admin_token()
    created = api.post("/admin/clients", token, json={
        "name": "SPA", "redirect_uris": ["https://spa.example/cb"],
        "token_endpoint_auth_method": "none"}).get_json()

    assert created["client_secret"] is None
    assert api.post(f"/admin/clients/{created['client_id']}/secret", token).status_code == 409


# -- audit ----------------------------------------------------------------------------------

def test_every_admin_call_is_audited_with_the_client_as_actor(api):
    token = api.admin_token()
    api.get("/admin/users", token)
    api.get("/admin/users/" + "0" * 32, token)

    calls = api.audit("admin.api_call")

    assert [(c.data["method"], c.data["status"]) for c in calls] == [("GET", 200),
                                                                      ("GET", 404)]
    assert {c.actor for c in calls} == {"client:ops"}
    assert {c.client_id for c in calls} == {"ops"}


def test_audit_query_filters_and_pages_newest_first(api, app):
    from idp import audit

    with app.app_context():
        for i in range(5):
            audit.record("user.login_failed", user_id="u1", client_id="app", attempt=i)
        audit.record("user.login_succeeded", user_id="u2", client_id="app")
    token = api.admin_token()

    first = api.get("/admin/audit-events?type=user.login_failed&limit=2", token).get_json()
    with app.app_context():
        audit.record("user.login_failed", user_id="u1", client_id="app", attempt=99)
    second = api.get("/admin/audit-events?type=user.login_failed&limit=2&cursor="
                     + first["next_cursor"], token).get_json()
    third = api.get("/admin/audit-events?type=user.login_failed&limit=2&cursor="
                    + second["next_cursor"], token).get_json()

    attempts = [e["data"]["attempt"] for p in (first, second, third) for e in p["data"]]
    assert attempts == [4, 3, 2, 1, 0]
    assert third["next_cursor"] is None
    by_user = api.get("/admin/audit-events?user_id=u2", token).get_json()["data"]
    assert [e["type"] for e in by_user] == ["user.login_succeeded"]
    now = int(time.time())
    assert api.get(f"/admin/audit-events?client_id=app&until={now - 3600}",
                   token).get_json()["data"] == []
    recent = api.get(f"/admin/audit-events?client_id=app&since={now - 3600}",
                     token).get_json()["data"]
    assert len(recent) == 7


@pytest.mark.parametrize("query", ["since=-1", "until=soon", "limit=101", "cursor=AAAA",
                                   "type=" + "x" * 65])
def test_audit_query_validation(api, query):
    response = api.get(f"/admin/audit-events?{query}", api.admin_token())

    assert response.status_code == 422
    assert response.get_json()["field"] == query.split("=")[0]


def test_deleting_a_client_takes_its_tokens_with_it(api):
    api.user()
    user_token = api.user_token()

    assert api.delete("/admin/clients/app", api.admin_token()).status_code == 204
    assert api.get("/me/factors", user_token).status_code == 401
