"""Authorization codes and issued tokens.

A code stores a snapshot of the authentication context (acr, amr, auth_time, sid, nonce) taken
when it was issued; the token endpoint reads only this snapshot (DESIGN §4.6). Codes, refresh
tokens and client secrets are stored as SHA-256 hashes, never in clear.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from idp.extensions import db
from idp.models._types import JSONType, new_id, now_ts


class AuthorizationCode(db.Model):
    __tablename__ = "authorization_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.client_id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    redirect_uri: Mapped[str] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(Text)
    nonce: Mapped[str | None] = mapped_column(Text)
    code_challenge: Mapped[str] = mapped_column(String(128))
    code_challenge_method: Mapped[str] = mapped_column(String(10))
    acr: Mapped[str | None] = mapped_column(String(200))
    amr: Mapped[list] = mapped_column(JSONType, default=list)
    auth_time: Mapped[int] = mapped_column(BigInteger)
    sid: Mapped[str | None] = mapped_column(String(64))
    claims: Mapped[dict | None] = mapped_column(JSONType)
    acr_expiry: Mapped[dict | None] = mapped_column(JSONType)
    issued_at: Mapped[int] = mapped_column(BigInteger, default=now_ts)
    expires_at: Mapped[int] = mapped_column(BigInteger)
    # Set once, by a conditional UPDATE, when the code is redeemed; a second redemption
    # finds it set and revokes every token issued from this code (RFC 6749 §4.1.2).
    used_at: Mapped[int | None] = mapped_column(BigInteger)


class Token(db.Model):
    """One issued access token and, optionally, its refresh token.

    ``family_id`` links every token descended from one authorization (code or first refresh);
    reuse of a rotated refresh token revokes the whole family (RFC 9700 §4.14.2).
    """

    __tablename__ = "tokens"
    __table_args__ = (
        Index("ix_tokens_family", "family_id"),
        Index("ix_tokens_user", "user_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    jti: Mapped[str] = mapped_column(String(64), unique=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.client_id", ondelete="CASCADE"))
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    scope: Mapped[str] = mapped_column(Text, default="")
    family_id: Mapped[str] = mapped_column(String(32))
    code_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    refresh_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    acr: Mapped[str | None] = mapped_column(String(200))
    amr: Mapped[list] = mapped_column(JSONType, default=list)
    auth_time: Mapped[int | None] = mapped_column(BigInteger)
    sid: Mapped[str | None] = mapped_column(String(64))
    # The authorization request's ``claims`` parameter (OIDC Core §5.5), for UserInfo.
    claims: Mapped[dict | None] = mapped_column(JSONType)
    # When each level of the original authentication stops holding: refresh never reports
    # more than still holds (DESIGN §3).
    acr_expiry: Mapped[dict | None] = mapped_column(JSONType)
    issued_at: Mapped[int] = mapped_column(BigInteger, default=now_ts)
    access_expires_at: Mapped[int] = mapped_column(BigInteger)
    refresh_expires_at: Mapped[int | None] = mapped_column(BigInteger)
    # Set when this token's refresh token was exchanged for a new one.
    rotated_at: Mapped[int | None] = mapped_column(BigInteger)
    revoked_at: Mapped[int | None] = mapped_column(BigInteger)
