"""End users."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Index, Integer, String, func, literal_column
from sqlalchemy.orm import Mapped, mapped_column

from idp.extensions import db
from idp.models._types import new_id, now_ts


class User(db.Model):
    __tablename__ = "users"
    # Sign-in looks users up case-insensitively (idp/users.py); without this expression index
    # every password sign-in scans the table (547 ms at 1 M users, benchmarks/README.md). It
    # also makes case-insensitive uniqueness a database guarantee.
    __table_args__ = (
        Index("uq_users_username_lower", func.lower(literal_column("username")), unique=True),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    username: Mapped[str] = mapped_column(String(254), unique=True, index=True)
    email: Mapped[str | None] = mapped_column(String(254), index=True)
    email_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    name: Mapped[str | None] = mapped_column(String(200))
    given_name: Mapped[str | None] = mapped_column(String(100))
    family_name: Mapped[str | None] = mapped_column(String(100))
    phone_number: Mapped[str | None] = mapped_column(String(20))
    phone_number_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    password_hash: Mapped[str | None] = mapped_column(String(200))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    # Policy signals: the country of the previous sign-in, and sign-ins made without a
    # second factor while enforcement is required (for grace_logins).
    last_country: Mapped[str | None] = mapped_column(String(2))
    logins_without_mfa: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[int] = mapped_column(BigInteger, default=now_ts)
    updated_at: Mapped[int] = mapped_column(BigInteger, default=now_ts, onupdate=now_ts)

    def get_user_id(self) -> str:
        return self.id

    def __repr__(self) -> str:
        return f"<User {self.username}>"
