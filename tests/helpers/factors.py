"""Enrolling factors for tests through the real service (no shortcuts into the tables)."""

from __future__ import annotations

from typing import Any

import pyotp
from sqlalchemy import select

from idp.extensions import db
from idp.factors.service import MfaService
from idp.models import Credential, User


def enroll_totp(app: Any, username: str, at: int | None = None) -> str:
    """Enroll and verify TOTP for ``username``; returns the base32 secret."""
    with app.test_request_context():
        user = db.session.scalar(select(User).where(User.username == username))
        service = MfaService()
        started = service.begin_enrollment(user, "totp", {})
        secret = started.step.display.data["secret"]
        code = pyotp.TOTP(secret).at(at) if at else pyotp.TOTP(secret).now()
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
