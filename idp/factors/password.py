"""Password factor: argon2id via argon2-cffi (the only module importing it).

Parameters are pinned by configuration (``password.*``; OWASP: m=19 MiB, t=2, p=1). A stored
hash made with other parameters is re-hashed on the next successful sign-in.
"""

from __future__ import annotations

from dataclasses import dataclass

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from idp.assurance import KNOW, AuthEvent

METHOD = "password"
AMR = ("pwd",)
#: Longest password accepted; longer input is rejected before hashing (argon2 cost is bounded).
MAX_PASSWORD_LENGTH = 1024
MIN_PASSWORD_LENGTH = 8


@dataclass(frozen=True)
class PasswordCheck:
    ok: bool
    new_hash: str | None = None  # set when the stored hash should be replaced (parameters changed)


class PasswordHashing:
    """argon2id hashing with the configured parameters."""

    def __init__(self, time_cost: int, memory_cost: int, parallelism: int) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism,
            hash_len=32, salt_len=16, type=Type.ID,
        )
        # Verified against when the user is unknown, so both paths cost one argon2 check
        # (no user enumeration by timing).
        self._dummy_hash = self._hasher.hash("stepup-idp dummy password")

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def check(self, stored_hash: str | None, password: str) -> PasswordCheck:
        if len(password) > MAX_PASSWORD_LENGTH:
            return PasswordCheck(False)
        target = stored_hash or self._dummy_hash
        try:
            self._hasher.verify(target, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return PasswordCheck(False)
        if stored_hash is None:
            return PasswordCheck(False)
        if self._hasher.check_needs_rehash(stored_hash):
            return PasswordCheck(True, self._hasher.hash(password))
        return PasswordCheck(True)


def password_event(user_id: str, at: int) -> AuthEvent:
    """What a correct password proves (DESIGN §3: amr ``pwd``)."""
    return AuthEvent(method=METHOD, factor_id=f"password:{user_id}", amr=AMR, at=at,
                     category=KNOW)


def validate_new_password(password: str) -> str | None:
    """A reason the password is unacceptable, or None (NIST SP 800-63B-4 §3.1.1.2)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"Use at least {MIN_PASSWORD_LENGTH} characters."
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"Use at most {MAX_PASSWORD_LENGTH} characters."
    return None
