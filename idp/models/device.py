"""Browsers a user has signed in from (the ``new_device`` signal; remembered devices)."""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from idp.extensions import db
from idp.models._types import new_id, now_ts


class Device(db.Model):
    __tablename__ = "devices"
    __table_args__ = (UniqueConstraint("user_id", "device_id", name="uq_devices_user_device"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # The random id in the browser's signed ``idp_device`` cookie.
    device_id: Mapped[str] = mapped_column(String(64))
    label: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[int] = mapped_column(BigInteger, default=now_ts)
    last_seen_at: Mapped[int] = mapped_column(BigInteger, default=now_ts)
    # "Remember this device": a second factor is not asked again up to this level and time.
    remembered_until: Mapped[int | None] = mapped_column(BigInteger)
    remembered_level: Mapped[str | None] = mapped_column(String(200))
