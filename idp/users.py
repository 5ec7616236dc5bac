"""User accounts: creation with validated input, disabling (which revokes their tokens)."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from idp import audit
from idp.authorize.login import password_hashing
from idp.extensions import db
from idp.factors.password import validate_new_password
from idp.models import User
from idp.oidc.tokens import revoke_user_tokens

USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,253}$")
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class UserError(ValueError):
    """Invalid user input; the message says what to fix."""


def create_user(*, username: str, password: str, email: str | None = None,
                name: str | None = None, email_verified: bool = False,
                actor: str = "cli") -> User:
    if not USERNAME_PATTERN.match(username):
        raise UserError("username: use letters, digits and . _ @ + - (at most 254)")
    if email is not None and not EMAIL_PATTERN.match(email):
        raise UserError("email: not an email address")
    reason = validate_new_password(password)
    if reason:
        raise UserError(f"password: {reason}")
    exists = db.session.scalar(select(User.id).where(func.lower(User.username) == username.lower()))
    if exists:
        raise UserError(f"username: {username!r} is taken")
    user = User(username=username, email=email, email_verified=email_verified, name=name,
                password_hash=password_hashing().hash(password))
    db.session.add(user)
    db.session.commit()
    audit.record("user.created", user_id=user.id, actor=actor)
    return user


def disable_user(username: str, actor: str = "cli") -> User:
    user = db.session.scalar(select(User).where(func.lower(User.username) == username.lower()))
    if user is None:
        raise UserError(f"no user {username!r}")
    user.disabled = True
    revoke_user_tokens(user.id)
    db.session.commit()
    audit.record("user.disabled", user_id=user.id, actor=actor)
    return user
