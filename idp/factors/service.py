"""Running factors: enrollment and challenge lifecycles, throttling, audit.

Hosted pages and the JSON APIs both go through :class:`MfaService`; factors themselves only
prove things. Enrollment and challenge state lives in the store (single use, with a TTL);
failures are throttled per user and factor and per IP (NIST SP 800-63B-4 §3.2.2).
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import current_app, request
from sqlalchemy import select, update
from sqlalchemy.orm.attributes import set_committed_value

from idp import audit, metrics
from idp.assurance import AuthEvent, Ladder
from idp.crypto import SecretBox
from idp.errors import NotFound, TooManyRequests
from idp.extensions import db, settings, store
from idp.factors import credential_memo
from idp.factors.base import (
    Display,
    Factor,
    FactorEnv,
    FactorRejected,
    FactorUnavailable,
    InputField,
    Step,
)
from idp.factors.registry import FactorRegistry
from idp.models import Credential, User
from idp.throttle import Limit, Throttle

CHALLENGE_PREFIX = "challenge:"
ENROLL_PREFIX = "enroll:"
SECRETS_PURPOSE = "factor-secrets"


@dataclass(frozen=True)
class Started:
    """An enrollment or challenge waiting for the user's answer."""

    id: str
    credential: Credential
    factor: Factor
    step: Step
    expires_at: int


@dataclass(frozen=True)
class Proven:
    credential: Credential
    event: AuthEvent
    #: Shown to the user once after success (FactorEnv.revealed).
    revealed: dict[str, Any] = dataclasses.field(default_factory=dict)


def registry() -> FactorRegistry:
    return current_app.extensions["idp.factors"]


def _advance_counter(credential: Credential, value: int) -> bool:
    """Atomically move a credential's counter forward (and stamp its use); False if another
    request got there.

    One conditional UPDATE, committed with the rest of the verification (``verify_challenge``,
    the passkey sign-in): the row it changed stays locked until that commit, so a concurrent
    request's UPDATE waits for it and then finds the counter already moved (PostgreSQL re-checks
    the WHERE after the lock; SQLite has a single writer). The values are set as the loaded
    state so the ORM does not flush them a second time.
    """
    used_at = int(time.time())
    result = db.session.execute(
        update(Credential).where(Credential.id == credential.id, Credential.counter < value)
        .values(counter=value, last_used_at=used_at),
        execution_options={"synchronize_session": False})
    if result.rowcount == 1:  # type: ignore[attr-defined]
        set_committed_value(credential, "counter", value)
        set_committed_value(credential, "last_used_at", used_at)
        return True
    return False


def factor_env() -> FactorEnv:
    cfg = settings()
    from idp.delivery import deliver

    return FactorEnv(
        store=store.current,
        secrets=SecretBox(current_app.config["SECRET_KEY"], SECRETS_PURPOSE),
        master_secret=current_app.config["SECRET_KEY"],
        settings=cfg,
        now=lambda: int(time.time()),
        deliver=deliver,
        advance_counter=_advance_counter,
        rp_id=cfg.webauthn.rp_id or _hostname(cfg.issuer),
        origin=cfg.webauthn.origin or cfg.issuer,
        product_name=cfg.branding.product_name,
    )


def _hostname(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).hostname or "localhost"


def _limits(user: User, method: str) -> tuple[Limit, Limit]:
    cfg = settings().mfa
    ip = request.remote_addr if request else ""
    return (
        Limit(f"mfa:{user.id}:{method}", cfg.max_failures_per_factor, cfg.failure_window,
              cfg.base_delay, cfg.max_delay),
        Limit(f"mfa:ip:{ip}", settings().login.max_failures_per_ip, cfg.failure_window,
              cfg.base_delay, cfg.max_delay),
    )


class MfaService:
    """Enrollment and verification of factors for one user at a time."""

    def __init__(self, factors: FactorRegistry | None = None) -> None:
        self.factors = factors or registry()

    # -- credentials -------------------------------------------------------------------------

    def credentials(self, user: User, verified_only: bool = True) -> list[Credential]:
        """The user's credentials in the registry's order, oldest first per method; read once
        per request while nothing changes them (:mod:`idp.factors.credential_memo`)."""
        memo = credential_memo.memo()
        key = (user.id, verified_only, id(self.factors))
        if memo is not None and key in memo and not credential_memo.pending(db.session()):
            return list(memo[key])
        found = self._query_credentials(user, verified_only)
        if memo is not None:
            memo[key] = found
        return list(found)

    def _query_credentials(self, user: User, verified_only: bool) -> list[Credential]:
        query = select(Credential).where(Credential.user_id == user.id)
        if verified_only:
            query = query.where(Credential.status == "verified")
        rows = [c for c in db.session.scalars(query) if c.method in self.factors]
        order = {m: i for i, m in enumerate(self.factors.methods)}
        return sorted(rows, key=lambda c: (order[c.method], c.created_at))

    def credential(self, user: User, credential_id: str) -> Credential:
        credential = db.session.get(Credential, credential_id or "")
        if credential is None or credential.user_id != user.id \
                or credential.method not in self.factors:
            raise NotFound("No such factor.")
        return credential

    def factor(self, method: str) -> Factor:
        factor = self.factors.get(method)
        if factor is None:
            raise NotFound(f"Unknown factor {method!r}.")
        return factor

    # -- reachability (which levels can this user reach, and with what) ----------------------

    def expected_events(self, user: User, now: int) -> list[AuthEvent]:
        return [self.factor(c.method).expected_event(c, now) for c in self.credentials(user)]

    def reachable(self, ladder: Ladder, user: User, events: list[AuthEvent],
                  now: int) -> frozenset[str]:
        """Levels satisfiable with the session's events plus every enrolled factor."""
        return ladder.evaluate([*events, *self.expected_events(user, now)], now).satisfied

    def options(self, ladder: Ladder, user: User, events: list[AuthEvent], target: str,
                now: int) -> list[Credential]:
        """Enrolled credentials that, proven now, would bring the session to ``target``
        (DESIGN §4.4: only the missing proof is asked for)."""
        level = ladder.resolve(target)
        assert level is not None
        useful = []
        for credential in self.credentials(user):
            expected = self.factor(credential.method).expected_event(credential, now)
            kept = [e for e in events if e.method != expected.method]
            if level.name in ladder.evaluate([*kept, expected], now).satisfied:
                useful.append(credential)
        return useful

    # -- backup factors (recovery codes) and what can be enrolled ------------------------------

    def is_backup(self, method: str) -> bool:
        return bool(getattr(self.factors.get(method), "backup", False))

    def enrollable(self, user: User) -> list[Factor]:
        """Factors the user can set up directly (not backup factors), most secure first."""
        return [f for f in self.factors
                if not getattr(f, "backup", False) and f.available_for(user)]

    def real_credentials(self, user: User) -> list[Credential]:
        """Verified credentials that are not backup factors."""
        return [c for c in self.credentials(user) if not self.is_backup(c.method)]

    def levels_by_enrolling(self, ladder: Ladder, user: User, events: list[AuthEvent],
                            now: int) -> dict[str, frozenset[str]]:
        """For each factor the user may enroll *during sign-in*: the levels they would reach by
        adding it now. Only a user without any real factor may (NIST SP 800-63B-4 §4.1.2:
        binding a further authenticator needs an authentication with an existing one, which
        the account page asks for); anyone else gets nothing here. Factors that do not count
        (email codes by default) do not block it."""
        if any(ladder.counts_method(c.method) for c in self.real_credentials(user)):
            return {}
        base = [*events, *self.expected_events(user, now)]
        reached = {}
        for factor in self.enrollable(user):
            candidate = factor.expected_event(
                Credential(id="new", method=factor.method, data={}, counter=0), now)
            reached[factor.method] = ladder.evaluate([*base, candidate], now).satisfied
        return reached

    def offer_backup(self, user: User) -> Started | None:
        """After a real factor is set up: issue backup codes if the user has none yet."""
        backup = next((f for f in self.factors if getattr(f, "backup", False)), None)
        if backup is None or any(self.is_backup(c.method) for c in self.credentials(user)):
            return None
        return self.begin_enrollment(user, backup.method, {})

    def regenerate_backup(self, user: User) -> Started:
        """Replace the backup codes (the caller made sure of a fresh second factor)."""
        backup = next((f for f in self.factors if getattr(f, "backup", False)), None)
        if backup is None or not self.real_credentials(user):
            raise FactorUnavailable("Set up another factor first.")
        started = self.begin_enrollment(user, backup.method, {})
        audit.record("mfa.backup_codes_regenerated", user_id=user.id)
        return started

    # -- enrollment --------------------------------------------------------------------------

    def begin_enrollment(self, user: User, method: str, params: Mapping[str, str],
                         name: str | None = None) -> Started:
        factor = self.factor(method)
        if not factor.available_for(user):
            raise FactorUnavailable(f"{factor.label} is not available for this account.")
        # An unfinished enrollment of the same kind is replaced.
        for stale in db.session.scalars(select(Credential).where(
                Credential.user_id == user.id, Credential.method == method,
                Credential.status == "unverified")):
            db.session.delete(stale)
        if self.is_backup(method):  # a new set replaces the old one
            for old in db.session.scalars(select(Credential).where(
                    Credential.user_id == user.id, Credential.method == method)):
                db.session.delete(old)
        db.session.flush()
        credential = Credential(user_id=user.id, method=method,
                                name=self._unique_name(user, name or factor.label),
                                status="unverified", data={}, counter=0,
                                created_at=int(time.time()))
        db.session.add(credential)
        env = factor_env()
        try:
            step = factor.begin_enrollment(env, user, credential, params)
        except (FactorRejected, FactorUnavailable):
            db.session.rollback()
            raise
        db.session.commit()
        if credential.verified:
            self._enrolled(user, credential)
        return self._park(ENROLL_PREFIX, user, credential, factor, step)

    def finish_enrollment(self, user: User, enrollment_id: str,
                          response: Mapping[str, str]) -> Proven:
        parked = self._load(ENROLL_PREFIX, user, enrollment_id)
        credential = self.credential(user, parked["credential_id"])
        factor = self.factor(credential.method)
        proven = self._check(user, factor, credential, parked, ENROLL_PREFIX + enrollment_id,
                             lambda env: factor.finish_enrollment(
                                 env, user, credential, parked["state"], response))
        credential.status = "verified"
        credential.last_used_at = proven.event.at
        db.session.commit()
        self._enrolled(user, credential)
        return proven

    def _enrolled(self, user: User, credential: Credential) -> None:
        audit.record("mfa.factor_enrolled", user_id=user.id, factor_type=credential.method,
                     factor_id=credential.id)

    def _unique_name(self, user: User, wanted: str) -> str:
        taken = set(db.session.scalars(select(Credential.name).where(
            Credential.user_id == user.id)))
        if wanted not in taken:
            return wanted
        n = 2
        while f"{wanted} {n}" in taken:
            n += 1
        return f"{wanted} {n}"

    # -- challenges --------------------------------------------------------------------------

    def begin_challenge(self, user: User, credential: Credential) -> Started:
        if not credential.verified:
            raise NotFound("That factor is not set up yet.")
        factor = self.factor(credential.method)
        step = factor.begin_challenge(factor_env(), user, credential)
        metrics.mfa_challenge_started(credential.method)
        return self._park(CHALLENGE_PREFIX, user, credential, factor, step)

    def verify_challenge(self, user: User, challenge_id: str, response: Mapping[str, str],
                         client_id: str | None = None) -> Proven:
        parked = self._load(CHALLENGE_PREFIX, user, challenge_id)
        credential = self.credential(user, parked["credential_id"])
        factor = self.factor(credential.method)
        proven = self._check(user, factor, credential, parked, CHALLENGE_PREFIX + challenge_id,
                             lambda env: factor.verify(env, user, credential, parked["state"],
                                                       response),
                             client_id=client_id)
        credential.last_used_at = proven.event.at
        # The proof, its counter and its audit rows in one transaction (idp/audit.py).
        audit.record("user.mfa_succeeded", user_id=user.id, client_id=client_id,
                     factor_type=credential.method, factor_id=credential.id, commit=False)
        if credential.method == "recovery_code":
            from idp.factors.recovery_codes import remaining

            audit.record("mfa.recovery_code_used", user_id=user.id, client_id=client_id,
                         remaining=remaining(user.id), commit=False)
        db.session.commit()
        return proven

    # -- shared mechanics --------------------------------------------------------------------

    def _park(self, prefix: str, user: User, credential: Credential, factor: Factor,
              step: Step) -> Started:
        ttl = settings().mfa.challenge_ttl
        started_id = secrets.token_urlsafe(24)
        expires_at = int(time.time()) + ttl
        # The display may hold a secret (a TOTP seed during enrollment): sealed at rest.
        sealed = factor_env().secrets.encrypt(
            json.dumps(dataclasses.asdict(step.display)).encode())
        store.current.put(prefix + started_id, {
            "user_id": user.id, "credential_id": credential.id, "state": step.state,
            "display": sealed, "attempts": 0, "expires_at": expires_at}, ttl)
        return Started(started_id, credential, factor, step, expires_at)

    def pending_challenge(self, user: User, challenge_id: str) -> Started | None:
        """A challenge still waiting for an answer, to show again after a wrong one (without
        starting a new challenge, so no new code is sent)."""
        return self._pending(CHALLENGE_PREFIX, user, challenge_id)

    def pending_enrollment(self, user: User, enrollment_id: str) -> Started | None:
        """An enrollment still waiting for an answer, to show again after a wrong one (for
        SMS/email: without sending another code)."""
        return self._pending(ENROLL_PREFIX, user, enrollment_id)

    def resend_challenge(self, user: User, challenge_id: str) -> Started:
        """A new challenge (a new code) for the pending challenge's credential; the pending
        one is discarded so only the newest code works (DESIGN §6). The failure count per user
        and factor is kept: a new code does not reset it.

        Raises FactorRejected when the challenge is gone, TooManyRequests while the factor is
        throttled, FactorUnavailable from the factor (cooldown, send cap, delivery failed;
        the pending challenge then stays usable).
        """
        parked = self._load(CHALLENGE_PREFIX, user, challenge_id)
        credential = self.credential(user, parked["credential_id"])
        Throttle(store.current).check(*_limits(user, credential.method))
        started = self.begin_challenge(user, credential)
        store.current.delete(CHALLENGE_PREFIX + challenge_id[:64])
        return started

    def _pending(self, prefix: str, user: User, started_id: str) -> Started | None:
        parked = store.current.get(prefix + (started_id or "")[:64])
        if parked is None or parked["user_id"] != user.id:
            return None
        credential = self.credential(user, parked["credential_id"])
        shown = json.loads(factor_env().secrets.decrypt(parked["display"]))
        display = Display(title=shown["title"], instructions=shown["instructions"],
                          fields=tuple(InputField(**f) for f in shown["fields"]),
                          data=shown["data"])
        return Started(started_id, credential, self.factor(credential.method),
                       Step(parked["state"], display), int(parked["expires_at"]))

    def _load(self, prefix: str, user: User, started_id: str) -> dict[str, Any]:
        parked = store.current.get(prefix + (started_id or "")[:64])
        if parked is None or parked["user_id"] != user.id:
            raise FactorRejected("expired_challenge",
                                 "This step expired. Start again to get a new one.")
        return parked

    def _check(self, user: User, factor: Factor, credential: Credential,
               parked: dict[str, Any], key: str, attempt: Any,
               client_id: str | None = None) -> Proven:
        limits = _limits(user, factor.method)
        reserved = Throttle(store.current).begin(*limits)  # a failure until it succeeds
        try:
            env = factor_env()
            event = attempt(env)
        except FactorRejected as exc:
            parked["attempts"] = int(parked["attempts"]) + 1
            if parked["attempts"] >= settings().mfa.max_attempts_per_challenge:
                store.current.delete(key)
            else:
                left = store.current.ttl(key) or 1
                store.current.put(key, parked, left)
            db.session.rollback()
            audit.record("user.mfa_failed", user_id=user.id, client_id=client_id,
                         factor_type=factor.method, factor_id=credential.id, reason=exc.reason)
            if exc.reason == "clone_suspected":
                audit.record("mfa.clone_suspected", user_id=user.id, client_id=client_id,
                             factor_type=factor.method, factor_id=credential.id)
            raise
        # Single use: the first success consumes the challenge.
        if store.current.pop(key) is None:
            raise FactorRejected("expired_challenge", "This step expired. Start again.")
        reserved.succeeded(limits[0])
        return Proven(credential, event, env.revealed)

    def remove(self, user: User, credential: Credential, actor: str | None = None) -> None:
        """Unenroll; when the last real factor goes, backup codes go too (nothing left to
        recover)."""
        self._delete(user, credential, actor)
        if not self.is_backup(credential.method) and not self.real_credentials(user):
            for leftover in self.credentials(user, verified_only=False):
                self._delete(user, leftover, actor)

    def _delete(self, user: User, credential: Credential, actor: str | None) -> None:
        if credential.method == "recovery_code":
            from idp.models import RecoveryCode

            for code in db.session.scalars(select(RecoveryCode).where(
                    RecoveryCode.user_id == user.id)):
                db.session.delete(code)
        db.session.delete(credential)
        db.session.commit()
        audit.record("mfa.factor_removed", user_id=user.id, factor_type=credential.method,
                     factor_id=credential.id, actor=actor)


__all__ = ["FactorRejected", "FactorUnavailable", "MfaService", "Proven", "Started",
           "TooManyRequests"]
