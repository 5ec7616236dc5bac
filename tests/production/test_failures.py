"""Failure behaviour with real services (DESIGN §8), each started and stopped by these tests:
this suite's own Redis and PostgreSQL (tests/production/conftest.py), never the machine's
shared ones.

- Redis stopped mid-flow: interactive pages answer 503 with the error page, no one gets a level
  not proven, /token, JWKS and discovery keep working; once Redis is back the next sign-in works
  within 10 s, without restarting the IdP.
- PostgreSQL restarted (crash-like): requests meanwhile get 503 quickly (not 500, no hang);
  afterwards everything works and nothing acknowledged is lost.
- A worker SIGKILLed under load: only requests in flight fail; no code or recovery code is used
  twice; the master replaces the worker.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pyotp
import pytest
import requests

from tests.helpers.factors import enroll_recovery_codes, enroll_totp
from tests.helpers.rp import RelyingParty, choose_factor, form_action, hidden_inputs, page_name
from tests.production.http_flows import (
    admin_app,
    answer_recovery,
    answer_totp,
    browsers,
    code_from,
    create_client,
    create_user,
    exchange,
    password_sign_in,
    refresh,
    start,
    token_request,
)
from tests.production.services import IdpServer, free_port, wait_for

pytestmark = pytest.mark.slow

#: A request during an outage must be answered within this (connect timeouts are 2 s for Redis
#: and 5 s for PostgreSQL).
BOUNDED_SECONDS = 8.0
RECOVERY_SECONDS = 10.0


@dataclass
class Stack:
    deployment: Any
    server: IdpServer
    rp: RelyingParty
    totp_secret: str
    recovery_codes: list[str]

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture
def stack(deployment_factory) -> Stack:
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    deployment = deployment_factory(issuer)
    deployment.init()
    with admin_app(deployment.env) as admin:
        create_user(admin, "alice")
        secret = enroll_totp(admin, "alice", steps_back=1)
        codes = enroll_recovery_codes(admin, "alice")
        rp = create_client(admin, issuer)
    server = deployment.serve(workers=2, port=port)
    return Stack(deployment, server, rp, secret, codes)


def totp_challenge(browser: Any, page: requests.Response) -> requests.Response:
    """The TOTP challenge page, choosing TOTP on the factor picker if that is shown."""
    if page_name(page.text) == "mfa-picker":
        page = choose_factor(browser, page, "totp")
    assert page_name(page.text) == "mfa-totp", page.text[:300]
    return page


def timed(call: Any) -> tuple[Any, float]:
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def assert_unavailable_page(response: requests.Response, elapsed: float) -> None:
    assert response.status_code == 503, f"{response.status_code} {response.text[:300]}"
    assert page_name(response.text) == "error"
    assert 'data-error="temporarily_unavailable"' in response.text
    assert response.headers.get("Retry-After")
    assert not response.headers.get("Location"), "no redirect (and no code) during an outage"
    assert elapsed < BOUNDED_SECONDS, f"took {elapsed:.1f} s"


def audit_count(stack: Stack, event: str) -> int:
    from sqlalchemy import func, select

    from idp.extensions import db
    from idp.models import AuditEvent

    with admin_app(stack.deployment.env) as admin, admin.app_context():
        return int(db.session.scalar(select(func.count()).select_from(AuditEvent)
                                     .where(AuditEvent.type == event)) or 0)


# -- Redis -------------------------------------------------------------------------------------

def test_redis_outage_fails_closed_and_recovers_without_restart(stack, redis_server):
    rp, url = stack.rp, stack.url
    (user,) = browsers(url)

    # Before: an aal1 session with tokens, a code not yet redeemed, and three flows mid-way.
    signed_in = password_sign_in(user, rp, "alice")
    tokens = exchange(url, rp, code_from(signed_in), signed_in.flow_secrets["code_verifier"])
    pending, pending_secrets = start(user, rp)
    pending_code = code_from(pending)
    step_up = totp_challenge(user, start(user, rp, acr_values="aal2")[0])
    (other,) = browsers(url)
    login_page, _ = start(other, rp)
    assert page_name(login_page.text) == "login"
    jwks_before = requests.get(url + "/jwks", timeout=10).json()
    succeeded_before = audit_count(stack, "user.mfa_succeeded")

    redis_server.stop()
    try:
        # Interactive pages: 503 with the error page, quickly, never a code.
        answered, elapsed = timed(lambda: user.post(
            form_action(step_up.text, "/mfa/verify"),
            {**hidden_inputs(step_up.text), "code": pyotp.TOTP(stack.totp_secret).now()}))
        assert_unavailable_page(answered, elapsed)
        answered, elapsed = timed(lambda: other.submit_login(login_page, "alice"))
        assert_unavailable_page(answered, elapsed)
        fresh, elapsed = timed(lambda: start(browsers(url)[0], rp)[0])
        assert_unavailable_page(fresh, elapsed)
        again, elapsed = timed(lambda: start(user, rp)[0])
        assert_unavailable_page(again, elapsed)
        silent, elapsed = timed(lambda: start(user, rp, acr_values="aal2", prompt="none")[0])
        assert_unavailable_page(silent, elapsed)

        # Machine endpoints need no Redis.
        redeemed = exchange(url, rp, pending_code, pending_secrets["code_verifier"])
        assert redeemed["access_token"]
        refreshed = refresh(url, rp, tokens["refresh_token"])
        assert refreshed.status_code == 200, refreshed.text
        assert requests.get(url + "/jwks", timeout=10).json() == jwks_before
        discovery = requests.get(url + "/.well-known/openid-configuration", timeout=10)
        assert discovery.status_code == 200 and discovery.json()["issuer"] == rp.issuer
        userinfo = requests.get(url + "/userinfo", timeout=10, headers={
            "Authorization": f"Bearer {refreshed.json()['access_token']}"})
        assert userinfo.status_code == 200

        ready = requests.get(url + "/readyz", timeout=10)
        assert ready.status_code == 503
        assert ready.json()["failed"] == ["redis"]
        assert ready.json()["checks"]["database"] == "ok"
        assert requests.get(url + "/healthz", timeout=10).status_code == 200
    finally:
        redis_server.start()
    back = time.monotonic()

    # The next sign-in works within 10 s, same processes.
    def sign_in_works() -> bool:
        (fresh_user,) = browsers(url)
        try:
            result = password_sign_in(fresh_user, rp, "alice")
            code = code_from(result)
        except AssertionError:
            return False
        return bool(exchange(url, rp, code, result.flow_secrets["code_verifier"]))

    wait_for(sign_in_works, RECOVERY_SECONDS, "a sign-in after Redis came back",
             interval=0.5)
    assert time.monotonic() - back < RECOVERY_SECONDS
    assert requests.get(url + "/readyz", timeout=10).status_code == 200

    # Nobody holds a level not proven: the TOTP answer sent during the outage counted for
    # nothing, and the session (kept in Redis) is gone, so aal2 needs a sign-in and a proof.
    assert audit_count(stack, "user.mfa_succeeded") == succeeded_before
    page, _ = start(user, rp, acr_values="aal2")
    assert page_name(page.text) == "login", page.text[:300]
    proof = user.follow(user.submit_login(page, "alice"))
    assert page_name(proof.text) in ("mfa-totp", "mfa-picker")
    assert not proof.headers.get("Location")


# -- PostgreSQL --------------------------------------------------------------------------------

def _snapshot(postgres, database: str) -> dict[str, Any]:
    return {
        "users": postgres.query("SELECT id, username, password_hash, disabled FROM users "
                                "ORDER BY id", database=database),
        "credentials": postgres.query("SELECT id, method, status, counter, secret_encrypted "
                                      "FROM credentials ORDER BY id", database=database),
        "recovery_codes": postgres.query("SELECT id, used_at FROM recovery_codes ORDER BY id",
                                         database=database),
        "tokens": postgres.query("SELECT id, refresh_token_hash, rotated_at, revoked_at FROM "
                                 "tokens ORDER BY id", database=database),
        "keys": postgres.query("SELECT kid, state, private_jwk_encrypted FROM signing_keys "
                               "ORDER BY kid", database=database),
        "codes": postgres.query("SELECT code_hash, used_at FROM authorization_codes ORDER BY "
                                "code_hash", database=database),
    }


def test_postgres_restart_answers_503_meanwhile_and_loses_nothing(stack, postgres):
    rp, url = stack.rp, stack.url
    database = stack.deployment.env["IDP_DATABASE_URL"].rsplit("/", 1)[1]
    (user,) = browsers(url)

    # Acknowledged before the restart: a TOTP proof (counter), a used recovery code, a token
    # set with its refresh token, a user created with the CLI.
    step_up = password_sign_in(user, rp, "alice", acr_values="aal2")
    totp_at = time.time()
    totp_code = pyotp.TOTP(stack.totp_secret).at(totp_at)
    callback = user.follow(answer_totp(user, step_up, stack.totp_secret, at=totp_at))
    tokens = exchange(url, rp, code_from(callback), step_up.flow_secrets["code_verifier"])
    (second,) = browsers(url)
    step_up = password_sign_in(second, rp, "alice", acr_values="aal2", prompt="login")
    used_code = stack.recovery_codes[0]
    recovered = second.follow(answer_recovery(second, step_up, used_code))
    code_from(recovered)
    stack.deployment.idp("users", "create", "bob", "--password", "bob's long passphrase 1")
    (mid_flow,) = browsers(url)
    login_page, _ = start(mid_flow, rp)
    before = _snapshot(postgres, database)
    jwks_before = requests.get(url + "/jwks", timeout=10).json()

    postgres.stop("immediate")  # like a crash: recovery from the WAL at the next start
    statuses: list[int] = []
    try:
        fresh, elapsed = timed(lambda: start(browsers(url)[0], rp)[0])
        assert_unavailable_page(fresh, elapsed)
        statuses.append(fresh.status_code)
        answered, elapsed = timed(lambda: mid_flow.submit_login(login_page, "alice"))
        assert_unavailable_page(answered, elapsed)
        statuses.append(answered.status_code)
        refused, elapsed = timed(lambda: refresh(url, rp, tokens["refresh_token"]))
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"] == "temporarily_unavailable"
        assert elapsed < BOUNDED_SECONDS
        ready, elapsed = timed(lambda: requests.get(url + "/readyz", timeout=15))
        assert ready.status_code == 503 and ready.json()["failed"] == ["database"]
        assert ready.json()["checks"]["redis"] == "ok"
        assert elapsed < BOUNDED_SECONDS
        assert requests.get(url + "/healthz", timeout=10).status_code == 200
        for path in ("/.well-known/openid-configuration", "/jwks"):
            response, elapsed = timed(lambda p=path: requests.get(url + p, timeout=15))
            statuses.append(response.status_code)
            assert response.status_code in (200, 503), response.text[:200]
            assert elapsed < BOUNDED_SECONDS
    finally:
        postgres.start()
    assert 500 not in statuses

    wait_for(lambda: requests.get(url + "/readyz", timeout=10).status_code == 200,
             RECOVERY_SECONDS, "readiness after PostgreSQL came back", interval=0.5)
    assert _snapshot(postgres, database) == before
    assert requests.get(url + "/jwks", timeout=10).json() == jwks_before

    # Everything works again, with what was acknowledged before.
    refreshed = refresh(url, rp, tokens["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    (later,) = browsers(url)
    step_up = password_sign_in(later, rp, "alice", acr_values="aal2")
    replayed = answer_recovery(later, step_up, used_code)
    assert replayed.status_code == 400 and page_name(replayed.text) == "mfa-recovery_code"
    accepted = later.follow(answer_recovery(later, replayed, stack.recovery_codes[1]))
    code_from(accepted)
    (third,) = browsers(url)
    step_up = password_sign_in(third, rp, "alice", acr_values="aal2")
    reused = answer_totp(third, step_up, stack.totp_secret, at=totp_at)
    assert reused.status_code == 400 and "already used" in reused.text
    assert pyotp.TOTP(stack.totp_secret).at(totp_at) == totp_code
    (bob,) = browsers(url)
    code_from(bob.follow(bob.submit_login(start(bob, rp)[0], "bob", "bob's long passphrase 1")))


# -- a worker killed under load ----------------------------------------------------------------

CLIENT_THREADS = 8
CODES = 40


def _attempt(call: Any) -> int | str:
    """The status of one request, or the name of the connection error that ended it."""
    try:
        return call().status_code
    except requests.RequestException as exc:
        return type(exc).__name__


def test_worker_killed_under_load_fails_only_in_flight_requests(stack):
    rp, url, server = stack.rp, stack.url, stack.server
    (user,) = browsers(url)
    first = password_sign_in(user, rp, "alice")
    flows = [(code_from(first), first.flow_secrets["code_verifier"])]
    while len(flows) < CODES:
        page, flow_secrets = start(user, rp)
        flows.append((code_from(page), flow_secrets["code_verifier"]))
    # Two user agents per recovery code, both at the challenge: they answer at the same time.
    contenders = []
    for code in stack.recovery_codes[:3]:
        for _ in range(2):
            (agent,) = browsers(url)
            page = password_sign_in(agent, rp, "alice", acr_values="aal2", prompt="login")
            contenders.append((agent, page, code))

    def redeem(code: str, verifier: str) -> int | str:
        return _attempt(lambda: token_request(url, rp, {
            "grant_type": "authorization_code", "code": code, "redirect_uri": rp.redirect_uri,
            "code_verifier": verifier}))

    def use_recovery(agent: Any, page: Any, code: str) -> int | str:
        def call() -> requests.Response:
            return agent.follow(answer_recovery(agent, page, code))
        return _attempt(call)

    workers_before = server.worker_pids()
    assert len(workers_before) == 2
    done = threading.Event()
    completed = [0]
    lock = threading.Lock()

    def counted(fn: Any, *args: Any) -> Any:
        result = fn(*args)
        with lock:
            completed[0] += 1
        return result

    def killer() -> None:
        deadline = time.monotonic() + 30
        while completed[0] < CODES // 4 and time.monotonic() < deadline and not done.is_set():
            time.sleep(0.005)
        os.kill(workers_before[0], signal.SIGKILL)

    kill_thread = threading.Thread(target=killer, daemon=True)
    kill_thread.start()
    with ThreadPoolExecutor(CLIENT_THREADS) as pool:
        code_results = [(pool.submit(counted, redeem, c, v), pool.submit(counted, redeem, c, v))
                        for c, v in flows]
        recovery_results = [(code, pool.submit(counted, use_recovery, agent, page, code))
                            for agent, page, code in contenders]
        extra = [pool.submit(counted, _attempt,
                             lambda: requests.get(url + "/jwks", timeout=15))
                 for _ in range(20)]
        outcomes = [(a.result(timeout=120), b.result(timeout=120)) for a, b in code_results]
        recovery = [(code, f.result(timeout=120)) for code, f in recovery_results]
        others = [f.result(timeout=120) for f in extra]
    done.set()
    kill_thread.join(35)

    every = [o for pair in outcomes for o in pair] + [r for _, r in recovery] + others
    failures = [o for o in every if isinstance(o, str)]
    assert not [o for o in every if isinstance(o, int) and o >= 500], every
    # Only what was in flight in the killed worker fails: at most one request per client thread.
    assert len(failures) <= CLIENT_THREADS, failures

    # No code redeemed twice, whatever the kill interrupted; retry what the kill cut off.
    for (code, verifier), pair in zip(flows, outcomes, strict=True):
        wins = [o for o in pair if o == 200]
        assert len(wins) <= 1, pair
        if not wins and any(isinstance(o, str) for o in pair):
            retry = redeem(code, verifier)
            assert retry in (200, 400)
    tokens_per_code = _tokens_per_code(stack)
    assert all(count <= 1 for count in tokens_per_code.values()), tokens_per_code
    # No recovery code accepted twice (a success ends at the client's redirect URI: 302).
    for code in stack.recovery_codes[:3]:
        accepted = [r for c, r in recovery if c == code and r == 302]
        assert len(accepted) <= 1, recovery
    used = _used_recovery_codes(stack)
    assert used <= 3

    # The master replaced the worker; the server is ready.
    wait_for(lambda: len(server.worker_pids()) == 2 and workers_before[0] not in
             server.worker_pids(), 20, "a replacement worker")
    assert requests.get(url + "/readyz", timeout=10).status_code == 200
    # The killed worker's counts survive in the multi-process metrics.
    text = requests.get(url + "/metrics", timeout=10).text
    answered = sum(float(v) for v in re.findall(
        r'idp_http_requests_total\{endpoint="oidc\.token",method="POST",status="\d+"\} (\S+)',
        text))
    token_answers = sum(1 for o in (x for pair in outcomes for x in pair) if isinstance(o, int))
    assert answered >= token_answers


def _tokens_per_code(stack: Stack) -> dict[str, int]:
    from sqlalchemy import func, select

    from idp.extensions import db
    from idp.models import Token

    with admin_app(stack.deployment.env) as admin, admin.app_context():
        rows = db.session.execute(select(Token.code_hash, func.count()).where(
            Token.code_hash.is_not(None)).group_by(Token.code_hash)).all()
        return {code_hash: int(count) for code_hash, count in rows}


def _used_recovery_codes(stack: Stack) -> int:
    from sqlalchemy import func, select

    from idp.extensions import db
    from idp.models import RecoveryCode

    with admin_app(stack.deployment.env) as admin, admin.app_context():
        return int(db.session.scalar(select(func.count()).select_from(RecoveryCode).where(
            RecoveryCode.used_at.is_not(None))) or 0)
