"""The demo resource server (examples/resource_server): body validation, the bearer token
checks and the RFC 9470 challenge of ``POST /transfers``.

Most tests pin a JWKS (the ``JWKS`` setting) and mint RFC 9068 access tokens with a test key;
the last one takes real tokens from a live IdP, whose JWKS the server fetches by discovery.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from examples.resource_server import create_app
from idp.resource import ResourceServerConfigError
from tests.helpers.factors import enroll_totp
from tests.helpers.rp import callback_params, form_action, hidden_inputs, page_name

ISSUER = "https://idp.test"
KEY = ECKey.generate_key("P-256", parameters={"kid": "rs-test"}, private=True)


def access_token(key: ECKey = KEY, typ: str = "at+jwt", **overrides: Any) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "sub": "user-123", "aud": "demo-rp", "client_id": "demo-rp",
              "iat": now, "exp": now + 300, "jti": "jti-1", "acr": "aal2",
              "amr": ["pwd", "otp"], "auth_time": now - 10}
    claims.update(overrides)
    return jwt.encode({"alg": "ES256", "kid": key.kid, "typ": typ},
                      {k: v for k, v in claims.items() if v is not None}, key)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def challenge_params(header: str) -> dict[str, str]:
    return dict(re.findall(r'(\w+)="?([^",]*)"?', header))


@pytest.fixture
def rs_app() -> Flask:
    return create_app({"TESTING": True, "ISSUER": ISSUER, "AUDIENCE": "demo-rp",
                       "JWKS": KeySet([KEY]).as_dict(private=False)}, environ={})


@pytest.fixture
def api(rs_app: Flask) -> FlaskClient:
    return rs_app.test_client()


# --- configuration --------------------------------------------------------------------------

def test_issuer_and_audience_come_from_config_then_environment() -> None:
    defaults = create_app({"AUDIENCE": "api"}, environ={})
    assert defaults.config["IDP_ISSUER"] == "http://localhost:5000"
    assert defaults.config["IDP_AUDIENCE"] == "api"
    from_env = create_app(environ={"DEMO_RS_ISSUER": "https://env.test",
                                   "DEMO_RS_AUDIENCE": "api"})
    assert from_env.config["IDP_ISSUER"] == "https://env.test"
    assert from_env.config["IDP_AUDIENCE"] == "api"
    assert create_app({"ISSUER": "https://dict.test"},
                      environ={"DEMO_RS_ISSUER": "https://env.test",
                               "DEMO_RS_AUDIENCE": "api"}).config[
        "IDP_ISSUER"] == "https://dict.test"


def test_without_an_audience_the_server_does_not_start() -> None:
    """RFC 9068 §4: the audience check is not optional (idp.resource)."""
    with pytest.raises(ResourceServerConfigError, match="IDP_AUDIENCE"):
        create_app(environ={})
    with pytest.raises(ResourceServerConfigError):
        create_app({"JWKS": KeySet([KEY]).as_dict(private=False)}, environ={})


def test_index_describes_the_requirement(api: FlaskClient) -> None:
    body = api.get("/").get_json()
    assert body["issuer"] == ISSUER
    assert body["endpoints"]["POST /transfers"]["requires"] == {"acr": "aal2", "max_age": 300}


# --- tokens and the step-up challenge ---------------------------------------------------------

def test_a_sufficient_token_gets_a_receipt(api: FlaskClient) -> None:
    now = int(time.time())
    response = api.post("/transfers", json={"amount": 12.5, "to": "  Bob  "},
                        headers=bearer(access_token(auth_time=now - 20)))
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "done"
    assert body["amount"] == 12.5 and body["to"] == "Bob"
    assert body["by"] == "user-123" and body["acr"] == "aal2" and body["auth_time"] == now - 20
    assert re.fullmatch(r"[0-9a-f]{16}", body["id"])
    assert response.headers["Cache-Control"] == "no-store"


def test_a_stronger_acr_is_accepted(api: FlaskClient) -> None:
    response = api.post("/transfers", json={"amount": 1, "to": "Bob"},
                        headers=bearer(access_token(acr="phr")))
    assert response.status_code == 200
    assert response.get_json()["acr"] == "phr"
    assert response.get_json()["amount"] == 1


def test_a_missing_token_gets_a_bare_bearer_challenge(api: FlaskClient) -> None:
    response = api.post("/transfers", json={"amount": 1, "to": "Bob"})
    assert response.status_code == 401
    header = response.headers["WWW-Authenticate"]
    assert header.startswith("Bearer ")
    assert "error=" not in header  # RFC 6750 §3.1: no error code without a token


@pytest.mark.parametrize("token", [
    "not-a-jwt",
    access_token(key=ECKey.generate_key("P-256", parameters={"kid": "rs-test"}, private=True)),
    access_token(typ="JWT"),  # an ID token, say
    access_token(iss="https://evil.test"),
    access_token(exp=int(time.time()) - 3600),
], ids=["malformed", "foreign-key", "not-at+jwt", "other-issuer", "expired"])
def test_invalid_tokens_are_rejected(api: FlaskClient, token: str) -> None:
    response = api.post("/transfers", json={"amount": 1, "to": "Bob"}, headers=bearer(token))
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert response.get_json()["error"] == "invalid_token"


@pytest.mark.parametrize("overrides", [
    {"acr": "aal1"},
    {"acr": None},
    {"acr": "aal2", "auth_time": int(time.time()) - 3600},
    {"acr": "aal2", "auth_time": None},
], ids=["aal1", "no-acr", "stale-auth-time", "no-auth-time"])
def test_insufficient_authentication_gets_the_rfc9470_challenge(
        api: FlaskClient, overrides: dict[str, Any]) -> None:
    response = api.post("/transfers", json={"amount": 1, "to": "Bob"},
                        headers=bearer(access_token(**overrides)))
    assert response.status_code == 401
    params = challenge_params(response.headers["WWW-Authenticate"])
    assert params["error"] == "insufficient_user_authentication"
    assert params["acr_values"] == "aal2"
    assert params["max_age"] == "300"
    assert response.get_json()["error"] == "insufficient_user_authentication"


def test_the_audience_is_checked() -> None:
    api = create_app({"ISSUER": ISSUER, "AUDIENCE": "payments-api",
                      "JWKS": KeySet([KEY]).as_dict(private=False)}, environ={}).test_client()
    body = {"amount": 1, "to": "Bob"}
    assert api.post("/transfers", json=body,
                    headers=bearer(access_token())).status_code == 401
    assert api.post("/transfers", json=body, headers=bearer(
        access_token(aud=["demo-rp", "payments-api"]))).status_code == 200


def test_authentication_is_checked_before_the_body(api: FlaskClient) -> None:
    response = api.post("/transfers", data="{", content_type="application/json",
                        headers=bearer(access_token(acr="aal1")))
    assert response.status_code == 401


# --- the request body -------------------------------------------------------------------------

@pytest.mark.parametrize(("body", "message"), [
    ("not json", "JSON object"),
    ("[1, 2]", "JSON object"),
    ("null", "JSON object"),
    ('{"to": "Bob"}', "'amount' must be a number"),
    ('{"amount": "12", "to": "Bob"}', "'amount' must be a number"),
    ('{"amount": true, "to": "Bob"}', "'amount' must be a number"),
    ('{"amount": NaN, "to": "Bob"}', "finite"),
    ('{"amount": Infinity, "to": "Bob"}', "finite"),
    ('{"amount": 1e400, "to": "Bob"}', "finite"),
    ('{"amount": 0, "to": "Bob"}', "positive"),
    ('{"amount": -5, "to": "Bob"}', "positive"),
    ('{"amount": 10000.01, "to": "Bob"}', "at most 10000"),
    ('{"amount": 1e20, "to": "Bob"}', "at most 10000"),
    ('{"amount": ' + "9" * 5000 + ', "to": "Bob"}', "JSON object"),
    ('{"amount": 1.005, "to": "Bob"}', "2 decimals"),
    ('{"amount": 1}', "'to' must be a non-empty string"),
    ('{"amount": 1, "to": "   "}', "'to' must be a non-empty string"),
    ('{"amount": 1, "to": 42}', "'to' must be a non-empty string"),
    ('{"amount": 1, "to": "' + "x" * 65 + '"}', "at most 64 characters"),
    ('{"amount": 1, "to": "Bob\\u0000"}', "control characters"),
])
def test_malformed_bodies_get_400(api: FlaskClient, body: str, message: str) -> None:
    response = api.post("/transfers", data=body, content_type="application/json",
                        headers=bearer(access_token()))
    assert response.status_code == 400
    error = response.get_json()
    assert error["error"] == "invalid_request"
    assert message in error["error_description"]


def test_the_largest_amount_and_recipient_are_accepted(api: FlaskClient) -> None:
    response = api.post("/transfers", json={"amount": 10000, "to": "x" * 64},
                        headers=bearer(access_token()))
    assert response.status_code == 200
    assert response.get_json()["amount"] == 10000


def test_a_form_encoded_body_gets_400(api: FlaskClient) -> None:
    response = api.post("/transfers", data={"amount": "1", "to": "Bob"},
                        headers=bearer(access_token()))
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"


@pytest.mark.parametrize(("method", "path", "kwargs", "status"), [
    ("GET", "/transfers", {}, 405),
    ("POST", "/elsewhere", {}, 404),
    ("POST", "/transfers", {"data": "x" * 20_000, "content_type": "application/json"}, 413),
])
def test_other_errors_are_json(api: FlaskClient, method: str, path: str,
                               kwargs: dict[str, Any], status: int) -> None:
    response = api.open(path, method=method, headers=bearer(access_token()), **kwargs)
    assert response.status_code == status
    assert response.is_json
    assert response.get_json()["error"]


# --- against the real IdP ---------------------------------------------------------------------

def test_tokens_from_the_live_idp_step_up_then_pass(flows: Any, app: Any) -> None:
    flows.user("alice")
    secret = enroll_totp(app, "alice", steps_back=1)
    rp = flows.client("rp1")
    api = create_app({"ISSUER": rp.issuer, "AUDIENCE": "rp1"}, environ={}).test_client()
    browser = flows.browser()
    first = flows.sign_in(browser, rp)
    body = {"amount": 25, "to": "Bob"}

    denied = api.post("/transfers", json=body, headers=bearer(first.token["access_token"]))
    assert denied.status_code == 401
    challenge = challenge_params(denied.headers["WWW-Authenticate"])
    assert challenge["error"] == "insufficient_user_authentication"

    url, secrets = rp.authorize_url(acr_values=challenge["acr_values"],
                                    max_age=challenge["max_age"])
    page = browser.follow(browser.get(url))
    assert page_name(page.text) == "mfa-totp"
    answered = browser.follow(browser.post(form_action(page.text, "/mfa/verify"), {
        **hidden_inputs(page.text), "code": pyotp.TOTP(secret).now()}))
    token = rp.exchange(callback_params(answered).code, secrets["code_verifier"])

    allowed = api.post("/transfers", json=body, headers=bearer(token["access_token"]))
    assert allowed.status_code == 200
    assert allowed.get_json()["acr"] == "aal2"
    assert allowed.get_json()["by"] == first.claims["sub"]


@pytest.mark.parametrize(("configured", "expected"), [
    ([], "demo-rp"), (["https://api.test", "https://b.test"], "https://api.test"),
])
def test_idp_demo_gives_the_resource_server_the_tokens_audience(configured: list[str],
                                                                expected: str) -> None:
    """``idp demo`` passes DEMO_RS_AUDIENCE: what the IdP puts in the demo RP's tokens."""
    from idp.config import load_settings
    from idp.demo import DEMO_CLIENT_ID, demo_audience

    settings = load_settings({"tokens": {"access_token_audience": configured}}, environ={})
    assert demo_audience(settings) == expected
    assert DEMO_CLIENT_ID == "demo-rp"
    app = create_app(environ={"DEMO_RS_AUDIENCE": demo_audience(settings)})
    assert app.config["IDP_AUDIENCE"] == expected
