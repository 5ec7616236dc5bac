"""Enrolling factors for tests through the real service (no shortcuts into the tables)."""

from __future__ import annotations

import time
from typing import Any

import pyotp
from sqlalchemy import select

from idp.extensions import db
from idp.factors.service import MfaService
from idp.models import Credential, User


def enroll_totp(app: Any, username: str, steps_back: int = 0) -> str:
    """Enroll and verify TOTP for ``username``; returns the base32 secret.

    ``steps_back=1`` enrolls with the previous time step's code, leaving the current step's
    code unused for a sign-in right after (each step is accepted once). The time is read
    right before verifying: read earlier (before the enrollment began), a 30 s boundary could
    pass in between and put the code two steps back, outside the accepted window."""
    with app.test_request_context():
        user = db.session.scalar(select(User).where(User.username == username))
        service = MfaService()
        started = service.begin_enrollment(user, "totp", {})
        secret = started.step.display.data["secret"]
        code = pyotp.TOTP(secret).at(time.time() - steps_back * pyotp.TOTP(secret).interval)
        service.finish_enrollment(user, started.id, {"code": code})
        return secret


def enroll_recovery_codes(app: Any, username: str) -> list[str]:
    with app.test_request_context():
        user = db.session.scalar(select(User).where(User.username == username))
        started = MfaService().begin_enrollment(user, "recovery_code", {})
        return list(started.step.display.data["codes"])


def credentials(app: Any, username: str) -> list[Credential]:
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == username))
        return list(db.session.scalars(select(Credential).where(Credential.user_id == user.id)))
