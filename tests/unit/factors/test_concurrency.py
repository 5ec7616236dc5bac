"""Secrets that prove something work once, even under concurrent use (DESIGN §6; run on
PostgreSQL in CI): a recovery code used by 50 requests at once, a TOTP code by several."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pyotp
import pytest
from sqlalchemy import func, select

from idp.extensions import db
from idp.factors.base import FactorRejected
from idp.factors.service import MfaService
from idp.models import Credential, RecoveryCode, User
from tests.helpers.factors import enroll_recovery_codes, enroll_totp


@pytest.fixture
def app_overrides():
    # Keep throttling out of the way: this is about atomicity, not rate limits.
    return {"mfa": {"max_failures_per_factor": 1000}, "login": {"max_failures_per_ip": 1000}}


def _race(app, username, method, answer, attempts):
    """``attempts`` threads start a challenge, meet at a barrier, then answer at once."""
    barrier = threading.Barrier(attempts)

    def one() -> str:
        with app.test_request_context():
            user = db.session.scalar(select(User).where(User.username == username))
            service = MfaService()
            credential = next(c for c in service.credentials(user) if c.method == method)
            started = service.begin_challenge(user, credential)
            user_id = user.id
            # Give the connection back while waiting: 50 threads share a smaller pool.
            db.session.close()
            barrier.wait(timeout=60)
            user = db.session.get(User, user_id)
            try:
                service.verify_challenge(user, started.id, answer)
                return "ok"
            except FactorRejected as exc:
                return exc.reason
            finally:
                db.session.remove()

    with ThreadPoolExecutor(max_workers=attempts) as pool:
        return [f.result(timeout=120) for f in [pool.submit(one) for _ in range(attempts)]]


def test_fifty_concurrent_uses_of_one_recovery_code_succeed_once(flows, app):
    flows.user("alice")
    enroll_totp(app, "alice", steps_back=1)
    codes = enroll_recovery_codes(app, "alice")

    outcomes = _race(app, "alice", "recovery_code", {"code": codes[0]}, 50)

    assert outcomes.count("ok") == 1, outcomes
    assert set(outcomes) == {"ok", "invalid_code"}
    with app.app_context():
        used = db.session.scalar(select(func.count()).select_from(RecoveryCode).where(
            RecoveryCode.used_at.is_not(None)))
    assert used == 1


def test_concurrent_answers_with_one_totp_code_succeed_once(flows, app):
    flows.user("alice")
    secret = enroll_totp(app, "alice", steps_back=1)
    code = pyotp.TOTP(secret).now()

    outcomes = _race(app, "alice", "totp", {"code": code}, 8)

    assert outcomes.count("ok") == 1, outcomes
    assert set(outcomes) == {"ok", "replayed"}
    with app.app_context():
        credential = db.session.scalar(select(Credential).where(Credential.method == "totp"))
    assert credential.counter == int(time.time()) // 30 or credential.counter == \
        int(time.time()) // 30 - 1
