"""Recovery codes (NIST SP 800-63B-4 look-up secrets).

Ten codes of 80 bits each from ``secrets``, shown once, stored as keyed hashes, each usable
exactly once (an atomic conditional UPDATE). One ``Credential`` row stands for the set so that
recovery codes list, count and unenroll like any factor; the codes live in ``recovery_codes``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, func, select, update

from idp.assurance import HAVE, AuthEvent
from idp.crypto import derive_key
from idp.extensions import db
from idp.factors.base import Display, FactorEnv, FactorRejected, InputField, Step, event_for
from idp.models import Credential, RecoveryCode, User

CODE_COUNT = 10
CODE_BYTES = 10  # 80 bits each (≥ 64 required)
LOW_REMAINING = 2
HASH_PURPOSE = "recovery-codes"
CODE_FIELD = InputField("code", "Recovery code", inputmode="text",
                        pattern=r"[A-Za-z0-9 \-]{16,24}", maxlength=24)


def format_code(raw: bytes) -> str:
    text = base64.b32encode(raw).decode("ascii").rstrip("=").lower()
    return "-".join(text[i:i + 4] for i in range(0, len(text), 4))


def normalise(code: str) -> str:
    return "".join(ch for ch in code.lower() if ch.isalnum())


def code_hash(master_secret: str, code: str) -> str:
    key = derive_key(master_secret, HASH_PURPOSE)
    return hmac.new(key, normalise(code).encode(), hashlib.sha256).hexdigest()


def issue_codes(master_secret: str, user_id: str, now: int) -> list[str]:
    """Replace the user's codes with a fresh set (not committed); returns them in clear."""
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    codes = [format_code(secrets.token_bytes(CODE_BYTES)) for _ in range(CODE_COUNT)]
    for code in codes:
        db.session.add(RecoveryCode(user_id=user_id, code_hash=code_hash(master_secret, code),
                                    created_at=now))
    return codes


def remaining(user_id: str) -> int:
    return int(db.session.scalar(
        select(func.count()).select_from(RecoveryCode)
        .where(RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None))) or 0)


class RecoveryCodeFactor:
    #: A backup factor: issued after the first real factor, not enrolled on its own, and
    #: meaningless once no real factor is left (MfaService.offer_backup / remove).
    backup = True
    method = "recovery_code"
    label = "Recovery code"
    amr = ("lookup",)
    category = HAVE
    strength = 5
    templates = {"enroll": "factors/recovery_codes.html"}

    def available_for(self, user: User) -> bool:
        return True

    def begin_enrollment(self, env: FactorEnv, user: User, credential: Credential,
                         params: Mapping[str, str]) -> Step:
        codes = issue_codes(env.master_secret, user.id, env.now())
        credential.status = "verified"  # nothing to prove: the user saw them once
        return Step(state={}, display=Display(
            title="Save your recovery codes",
            instructions="Each code works once. Keep them somewhere safe: they let you in if "
                         "you lose your other factors. They are shown only now.",
            data={"codes": codes}))

    def finish_enrollment(self, env: FactorEnv, user: User, credential: Credential,
                          state: Mapping[str, Any], response: Mapping[str, str]) -> AuthEvent:
        raise FactorRejected("not_applicable")

    def begin_challenge(self, env: FactorEnv, user: User, credential: Credential) -> Step:
        left = remaining(user.id)
        return Step(state={}, display=Display(
            title="Use a recovery code",
            instructions="Enter one of the recovery codes you saved when you set up "
                         "two-step sign-in.",
            fields=(CODE_FIELD,), data={"remaining": left}))

    def verify(self, env: FactorEnv, user: User, credential: Credential,
               state: Mapping[str, Any], response: Mapping[str, str]) -> AuthEvent:
        code = normalise(response.get("code", ""))
        if len(code) < 16 or len(code) > 24:
            raise FactorRejected("malformed_code", "Enter a recovery code.")
        now = env.now()
        used = db.session.execute(
            update(RecoveryCode)
            .where(RecoveryCode.user_id == user.id,
                   RecoveryCode.code_hash == code_hash(env.master_secret, code),
                   RecoveryCode.used_at.is_(None))
            .values(used_at=now))
        db.session.commit()
        if used.rowcount != 1:
            raise FactorRejected("invalid_code", "That recovery code is not valid.")
        if env.settings.mfa.recovery_codes_rotate_on_use:
            # Auth0's behaviour (NIST SP 800-63B-4 §4.2.1.1 allows it): a used code is replaced
            # by a fresh one, shown once.
            replacement = format_code(secrets.token_bytes(CODE_BYTES))
            db.session.add(RecoveryCode(user_id=user.id, created_at=now,
                                        code_hash=code_hash(env.master_secret, replacement)))
            db.session.commit()
            env.revealed["recovery_codes"] = [replacement]
        return event_for(self, credential, now)

    def expected_event(self, credential: Credential, now: int) -> AuthEvent:
        return event_for(self, credential, now)
