"""Signing keys. Private JWKs are encrypted at rest (``idp/crypto.py``)."""

from __future__ import annotations

from sqlalchemy import BigInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from idp.extensions import db
from idp.models._types import JSONType, now_ts

#: Lifecycle: next (published, not signing) -> active (signing) -> retired (published until
#: every token it signed has expired) -> removed from the JWKS.
KEY_STATES = ("next", "active", "retired")


class SigningKey(db.Model):
    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    alg: Mapped[str] = mapped_column(String(10), index=True)
    state: Mapped[str] = mapped_column(String(10), index=True)
    private_jwk_encrypted: Mapped[str] = mapped_column(Text)
    public_jwk: Mapped[dict] = mapped_column(JSONType)
    created_at: Mapped[int] = mapped_column(BigInteger, default=now_ts)
    activated_at: Mapped[int | None] = mapped_column(BigInteger)
    retired_at: Mapped[int | None] = mapped_column(BigInteger)
    # After this time the key is no longer published (every token it signed has expired).
    expires_at: Mapped[int | None] = mapped_column(BigInteger)
