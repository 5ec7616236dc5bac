"""SMS and email codes in tests: read them from the console outbox, enroll through the real
service (no shortcuts into the tables)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from idp.delivery import outbox
from idp.extensions import db, store
from idp.factors.codes import cooldown_key
from idp.factors.service import MfaService
from idp.models import User

CODE = re.compile(r"\b([0-9]{6})\b")


def code_in(message: str) -> str:
    match = CODE.search(message)
    assert match, f"no code in {message!r}"
    return match.group(1)


def latest_code(app: Any, recipient: str) -> str:
    """The code in the newest message the console transport kept for ``recipient``."""
    with app.app_context():
        box = outbox(recipient)
        assert box, f"nothing sent to {recipient}"
        return code_in(box[-1]["message"])


def sent_count(app: Any, recipient: str) -> int:
    with app.app_context():
        return len(outbox(recipient))


def _enroll(app: Any, username: str, method: str, params: dict[str, str],
            recipient: str | None, messages: Callable[[str], list[str]] | None = None) -> str:
    with app.test_request_context():
        user = db.session.scalar(select(User).where(User.username == username))
        service = MfaService()
        started = service.begin_enrollment(user, method, params)
        to = recipient or user.email
        sent = messages(to) if messages else [m["message"] for m in outbox(to)]
        code = code_in(sent[-1])
        proven = service.finish_enrollment(user, started.id, {"code": code})
        # Enrolling just sent a code: let the test's first challenge send another at once.
        store.current.delete(cooldown_key(user.id, method))
        return proven.credential.id


def enroll_sms(app: Any, username: str, phone: str = "+4915112345678",
               messages: Callable[[str], list[str]] | None = None) -> str:
    """Enroll and verify SMS for ``username``; returns the credential id. ``messages``
    reads what was sent to a number when the transport is not the console."""
    return _enroll(app, username, "sms", {"phone": phone}, phone, messages)


def enroll_email(app: Any, username: str) -> str:
    """Enroll and verify email codes (to the address on file); returns the credential id."""
    return _enroll(app, username, "email", {}, None)
