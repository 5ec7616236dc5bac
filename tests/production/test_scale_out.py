"""Scale-out (DESIGN §8): two ``idp serve`` processes (two gunicorn workers each) on different
ports share this suite's PostgreSQL and Redis, as two replicas behind a load balancer would.

One user agent signs in on A, steps up on B, its client redeems the code on A and refreshes on
B; a key rotation made next to A is served by B, and B signs with the new key.
"""

from __future__ import annotations

import time

import pytest
import requests

from idp.oidc.keys import CACHE_SECONDS
from tests.helpers.factors import enroll_totp
from tests.helpers.rp import page_name
from tests.production.http_flows import (
    admin_app,
    answer_totp,
    browsers,
    code_from,
    create_client,
    create_user,
    exchange,
    jwks,
    password_sign_in,
    refresh,
    verify_id_token,
)
from tests.production.services import free_port

pytestmark = pytest.mark.slow


def test_flow_spans_two_servers_and_key_rotation_reaches_both(deployment_factory):
    port_a = free_port()
    issuer = f"http://127.0.0.1:{port_a}"
    deployment = deployment_factory(issuer)
    deployment.init()
    server_a = deployment.serve(workers=2, port=port_a)
    server_b = deployment.serve(workers=2)
    assert server_a.url != server_b.url

    with admin_app(deployment.env) as admin:
        create_user(admin, "alice")
        secret = enroll_totp(admin, "alice", steps_back=1)
        rp = create_client(admin, issuer)

    # Rotate first (through the CLI on the shared database, as an operator next to A would):
    # every process picks the change up within the key cache's lifetime, checked at the end.
    before_rotation = {k["kid"] for k in jwks(server_b.url)["keys"]}
    rotation = deployment.idp("keys", "rotate", "--alg", "RS256")
    rotated_at = time.monotonic()  # committed by now
    assert "RS256: active" in rotation

    on_a, on_b = browsers(server_a.url, server_b.url)

    # Login on A: the password, then A sends the browser to the step-up prompt.
    after_login = password_sign_in(on_a, rp, "alice", acr_values="aal2")
    flow_secrets = after_login.flow_secrets
    assert page_name(after_login.text) in ("mfa-totp", "mfa-picker"), after_login.text[:300]

    # Step-up on B: the same interaction and session, served by the other process.
    resumed = on_b.get(after_login.url.replace(server_a.url, server_b.url)
                       if after_login.url.startswith(server_a.url) else
                       after_login.url)
    assert resumed.status_code == 200, resumed.text[:300]
    assert page_name(resumed.text) in ("mfa-totp", "mfa-picker")
    callback = on_b.follow(answer_totp(on_b, resumed, secret))
    code = code_from(callback)

    # Token on A.
    tokens = exchange(server_a.url, rp, code, flow_secrets["code_verifier"])
    claims, _ = verify_id_token(tokens["id_token"], jwks(server_a.url), issuer, rp.client_id)
    assert claims["acr"] == "aal2"
    assert claims["nonce"] == flow_secrets["nonce"]

    # Refresh on B: same user and level, a new refresh token.
    refreshed = refresh(server_b.url, rp, tokens["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    new_tokens = refreshed.json()
    assert new_tokens["refresh_token"] != tokens["refresh_token"]
    claims_b, _ = verify_id_token(new_tokens["id_token"], jwks(server_b.url), issuer,
                                  rp.client_id)
    assert claims_b["sub"] == claims["sub"] and claims_b["acr"] == "aal2"

    # UserInfo on A with B's access token.
    userinfo = requests.get(server_a.url + "/userinfo", timeout=10,
                            headers={"Authorization": f"Bearer {new_tokens['access_token']}"})
    assert userinfo.status_code == 200 and userinfo.json()["sub"] == claims["sub"]

    # The rotation, served by both once their caches have turned over.
    time.sleep(max(0.0, rotated_at + CACHE_SECONDS + 1 - time.monotonic()))
    keys_a = {k["kid"] for k in jwks(server_a.url)["keys"]}
    keys_b = {k["kid"] for k in jwks(server_b.url)["keys"]}
    assert keys_a == keys_b
    assert keys_b - before_rotation, "the newly pre-published key is not served by B"
    assert before_rotation <= keys_b, "the retired key must stay published"

    from idp.extensions import db
    from idp.models import SigningKey

    with admin_app(deployment.env) as admin, admin.app_context():
        active = db.session.query(SigningKey).filter_by(alg="RS256", state="active").one().kid
    again = refresh(server_b.url, rp, new_tokens["refresh_token"])
    assert again.status_code == 200, again.text
    _, kid = verify_id_token(again.json()["id_token"], jwks(server_a.url), issuer, rp.client_id)
    assert kid == active, "B does not sign with the rotated-in key"

    # A refresh token spent on B is spent on A too (a replay is refused, RFC 9700 §4.14.2).
    replay = refresh(server_a.url, rp, tokens["refresh_token"])
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
