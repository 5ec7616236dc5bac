"""``benchmarks/inprocess.py`` drives real flows through the test client: each scenario runs
a few flows against a seeded app and each flow checks its own answers (a code for the state it
sent, 200 from token and UserInfo, a refresh token that rotates, an ID token after password +
TOTP). No timing is asserted."""

from __future__ import annotations

import time

import pytest

from benchmarks.inprocess import SCENARIOS, InProcessClient, measure
from benchmarks.seed import PASSWORD, REDIRECT_URI
from benchmarks.target import TOTP_INTERVAL
from tests.helpers.factors import enroll_totp


@pytest.fixture
def rp(app) -> InProcessClient:
    from idp.oidc.clients import register_client
    from idp.users import create_user

    with app.app_context():
        for name in ("bench-0000", "totp-00000", "totp-00001"):
            create_user(username=name, password=PASSWORD, email=f"{name}@bench.test")
        registered = register_client(name="Benchmark RP", client_id="bench-rp",
                                     redirect_uris=[REDIRECT_URI], first_party=True)
    now_step = int(time.time()) // TOTP_INTERVAL
    totp_users = [{"username": name, "secret": enroll_totp(app, name), "last_step": now_step}
                  for name in ("totp-00000", "totp-00001")]
    client = InProcessClient(app, {
        "client": {"client_id": "bench-rp", "client_secret": registered.secret},
        "redirect_uri": REDIRECT_URI, "password": PASSWORD, "users": ["bench-0000"],
        "totp_users": totp_users})
    client.sign_in("bench-0000", PASSWORD)
    return client


@pytest.mark.parametrize("scenario", ["sso-flow", "refresh", "discovery"])
def test_machine_scenarios_run_their_flows(rp: InProcessClient, scenario: str) -> None:
    assert measure(SCENARIOS[scenario](rp), flows=3, warmup=1) >= 0


def test_login_signs_in_with_password_and_totp(rp: InProcessClient) -> None:
    flow = SCENARIOS["login"](rp)
    # Two users, each answering a step not used yet; a refused password or code, or a token
    # response without an ID token, raises inside the flow.
    flow()
    flow()
