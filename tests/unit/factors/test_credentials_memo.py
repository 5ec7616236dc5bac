"""``MfaService.credentials`` is read once per request and still follows every change made
in it (idp/factors/credential_memo.py; benchmarks/README.md, session 2)."""

from __future__ import annotations

import pyotp
from sqlalchemy import select, update

from idp.extensions import db
from idp.factors.service import MfaService
from idp.models import Credential, User
from tests.helpers.sql import selects_from


def methods(credentials: list[Credential]) -> list[str]:
    return [c.method for c in credentials]


def test_read_once_then_refreshed_by_each_change(flows, app):
    flows.user("alice")
    with app.test_request_context():
        user = db.session.scalar(select(User).where(User.username == "alice"))
        service = MfaService()
        with selects_from(app, "credentials") as selects:
            assert service.credentials(user) == []
            assert service.credentials(user) == []
            assert service.real_credentials(user) == []
        assert len(selects) == 1

        started = service.begin_enrollment(user, "totp", {})
        assert service.credentials(user) == []  # unverified
        assert methods(service.credentials(user, verified_only=False)) == ["totp"]
        code = pyotp.TOTP(started.step.display.data["secret"]).now()
        service.finish_enrollment(user, started.id, {"code": code})
        assert methods(service.credentials(user)) == ["totp"]

        # A change not yet flushed is seen (the query's autoflush would have seen it too).
        credential = service.credentials(user)[0]
        credential.status = "unverified"
        assert service.credentials(user) == []
        db.session.rollback()
        assert methods(service.credentials(user)) == ["totp"]

        # A bulk UPDATE of the table within the transaction.
        db.session.execute(update(Credential).where(Credential.user_id == user.id)
                           .values(status="unverified"))
        assert service.credentials(user) == []
        db.session.rollback()

        # Removal.
        service.remove(user, service.credentials(user)[0])
        assert service.credentials(user, verified_only=False) == []


def test_a_caller_changing_the_returned_list_does_not_change_the_memo(flows, app):
    flows.user("alice")
    with app.test_request_context():
        user = db.session.scalar(select(User).where(User.username == "alice"))
        service = MfaService()
        service.credentials(user).append(Credential(id="x", method="totp"))
        assert service.credentials(user) == []
