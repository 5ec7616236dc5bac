"""Enrolled factors (credentials) and recovery codes.

Secrets (TOTP/HOTP seeds) are encrypted at rest (``idp/crypto.py``); public material
(WebAuthn public keys, phone numbers) lives in ``data``. ``counter`` holds what must move
forward atomically: the last accepted TOTP time step, the next HOTP counter, the WebAuthn
sign count.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from idp.extensions import db
from idp.models._types import JSONType, new_id, now_ts

CREDENTIAL_STATES = ("unverified", "verified")


class Credential(db.Model):
    __tablename__ = "credentials"
    __table_args__ = (
        UniqueConstraint("user_id", "name", name="uq_credentials_user_name"),
        Index("ix_credentials_user", "user_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    method: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(12), default="unverified")
    secret_encrypted: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict] = mapped_column(JSONType, default=dict)
    counter: Mapped[int] = mapped_column(BigInteger, default=0)
    # WebAuthn credential id (base64url), unique: passwordless sign-in finds the user by it.
    lookup_key: Mapped[str | None] = mapped_column(String(1400), unique=True)
    created_at: Mapped[int] = mapped_column(BigInteger, default=now_ts)
    last_used_at: Mapped[int | None] = mapped_column(BigInteger)

    @property
    def verified(self) -> bool:
        return self.status == "verified"


class RecoveryCode(db.Model):
    """One single-use recovery code, stored as a keyed hash (HMAC-SHA256 with a key derived
    from the master secret; NIST SP 800-63B-4 §3.1.2.1)."""

    __tablename__ = "recovery_codes"
    __table_args__ = (Index("ix_recovery_codes_user", "user_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[int] = mapped_column(BigInteger, default=now_ts)
    used_at: Mapped[int | None] = mapped_column(BigInteger)
