"""Primary sign-in with a password: throttled, audited, without user enumeration."""

from __future__ import annotations

import time
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import func, select

from idp import audit
from idp.assurance import AuthEvent
from idp.extensions import db, settings, store
from idp.factors.password import PasswordHashing, password_event
from idp.models import User
from idp.throttle import Limit, Throttle

GENERIC_FAILURE = "Incorrect username or password."


@dataclass(frozen=True)
class PrimaryLogin:
    user: User
    event: AuthEvent
    #: Failed attempts on the account just before this success (policy signal).
    recent_failures: int = 0


class LoginFailed(Exception):
    """Wrong username or password; the message never says which."""


def password_hashing() -> PasswordHashing:
    hashing = current_app.extensions.get("idp.password_hashing")
    if hashing is None:
        cfg = settings().password
        hashing = PasswordHashing(cfg.time_cost, cfg.memory_cost, cfg.parallelism)
        current_app.extensions["idp.password_hashing"] = hashing
    return hashing


def login_limits(username: str, ip: str) -> tuple[Limit, Limit]:
    cfg = settings().login
    return (
        Limit(f"login:user:{username.lower()}", cfg.max_failures_per_account, cfg.failure_window,
              cfg.base_delay, cfg.max_delay),
        Limit(f"login:ip:{ip}", cfg.max_failures_per_ip, cfg.failure_window, cfg.base_delay,
              cfg.max_delay),
    )


def find_user(username: str) -> User | None:
    if not username:
        return None
    return db.session.scalar(select(User).where(func.lower(User.username) == username.lower()))


def authenticate_password(username: str, password: str, limits: tuple[Limit, ...],
                          client_id: str | None = None) -> PrimaryLogin:
    """The user whose password this is and what it proved; raises LoginFailed or
    TooManyRequests."""
    attempt = Throttle(store.current).begin(*limits)  # counted as a failure until it succeeds
    user = find_user(username)
    usable = user is not None and not user.disabled
    result = password_hashing().check(user.password_hash if usable else None, password)  # type: ignore[union-attr]
    if not result.ok or user is None or not usable:
        audit.record("user.login_failed", user_id=user.id if user else None,
                     client_id=client_id, method="password",
                     reason="disabled" if user is not None and user.disabled else "credentials")
        raise LoginFailed(GENERIC_FAILURE)
    recent_failures = attempt.failures_before(limits[0])
    attempt.succeeded(limits[0])
    if result.new_hash:
        user.password_hash = result.new_hash
    # Joins the caller's transaction: finish_primary_login commits it with the session's
    # sign-in (idp/audit.py); the failure above commits on its own.
    audit.record("user.login_succeeded", user_id=user.id, client_id=client_id, method="password",
                 commit=False)
    return PrimaryLogin(user, password_event(user.id, int(time.time())), recent_failures)
