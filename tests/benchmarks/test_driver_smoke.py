"""The benchmark driver end to end against a live server: a few flows, checked for
correctness (ID tokens verify against the JWKS, acr/amr after a TOTP sign-in, rotation).
Timings are never asserted here: performance lives in benchmarks/README.md."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest

pytest.importorskip("aiohttp", reason="the bench extra: pip install -e '.[test,bench]'")

from benchmarks.driver import RunConfig, run_scenario
from benchmarks.scenarios import SCENARIOS
from benchmarks.seed import PASSWORD, REDIRECT_URI
from benchmarks.target import TOTP_INTERVAL, Target
from tests.helpers.factors import enroll_totp

# Windows open at once (no warm-up): a handful of flows, each checked.
QUICK = RunConfig(concurrency=2, duration=0.8, warmup=0.0, request_timeout=10.0,
                  max_extra_warmup=0.0)
SINGLE = RunConfig(concurrency=1, duration=0.5, warmup=0.0, request_timeout=10.0,
                   max_extra_warmup=0.0)


@pytest.fixture
def target(app, live_server) -> Target:
    """The live server seeded like a benchmark instance, through the project's APIs."""
    from idp.oidc.clients import register_client
    from idp.users import create_user

    with app.app_context():
        for name in ("bench-0000", "bench-0001", "totp-00000"):
            create_user(username=name, password=PASSWORD, email=f"{name}@bench.test")
        rp = register_client(name="Benchmark RP", client_id="bench-rp",
                             redirect_uris=[REDIRECT_URI], first_party=True)
        rs = register_client(name="Benchmark RS", client_id="bench-rs", redirect_uris=[],
                             grant_types=["client_credentials"], scope="idp:introspect")
    secret = enroll_totp(app, "totp-00000")
    password = app.extensions["idp.settings"].password
    return Target.from_manifest({
        "kind": "stepup-idp", "issuer": live_server.url, "base_url": live_server.url,
        "client": {"client_id": "bench-rp", "client_secret": rp.secret},
        "resource_server": {"client_id": "bench-rs", "client_secret": rs.secret},
        "redirect_uri": REDIRECT_URI, "password": PASSWORD,
        "users": ["bench-0000", "bench-0001"],
        "totp_users": [{"username": "totp-00000", "secret": secret,
                        "last_step": int(time.time()) // TOTP_INTERVAL}],
        "password_params": {"time_cost": password.time_cost,
                            "memory_cost": password.memory_cost,
                            "parallelism": password.parallelism},
    })


def run(target: Target, scenario: str, config: RunConfig = QUICK) -> dict:
    return asyncio.run(run_scenario(target, SCENARIOS[scenario], config))


def test_sso_flow_and_refresh_end_to_end(target: Target) -> None:
    record = run(target, "sso-flow")
    # Every flow verified its ID token (RS256, JWKS, iss, aud, nonce) and matched userinfo.
    assert record["errors"] == 0, record["error_samples"]
    assert record["flows"] >= 1
    assert set(record["steps"]) >= {"authorize", "token", "verify-id-token", "userinfo",
                                    "(flow)"}
    assert record["target"] == "stepup-idp" and record["concurrency"] == 2

    # Each grant returned a new refresh token, used by the next one (rotation).
    record = run(target, "refresh", SINGLE)
    assert record["errors"] == 0, record["error_samples"]
    assert record["flows"] >= 1


def test_login_with_totp_reaches_aal2(target: Target) -> None:
    """Password then TOTP through the hosted pages with CSRF; the ID token says aal2."""
    record = run(target, "login", replace(SINGLE, duration=1.5))
    assert record["errors"] == 0, record["error_samples"]
    assert record["flows"] >= 1
    assert record["argon2_floor_logins_per_s"] > 0
