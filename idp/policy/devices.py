"""Remembered devices (DESIGN §5 ``remember_device_days``).

After a second factor, the user may have this browser remembered: its signed ``idp_device``
cookie then stands in for the second factor on later sign-ins of that user on that device,
as an ``AuthEvent`` of method ``remembered_device`` (private amr value ``rdev``). That event is
never a WebAuthn assertion, so it reaches at most aal2 and never phr. Revocable on the account
page and the admin API; audited.
"""

from __future__ import annotations

import time

from sqlalchemy import select

from idp import audit
from idp.assurance import HAVE, AuthEvent
from idp.extensions import db
from idp.models import Device, User

METHOD = "remembered_device"
AMR = ("rdev",)
#: The strongest level a remembered device may stand in for.
MAX_LEVEL = "aal2"


def find(user: User, device_id: str | None) -> Device | None:
    if not device_id:
        return None
    return db.session.scalar(select(Device).where(Device.user_id == user.id,
                                                  Device.device_id == device_id))


def remember(user: User, device_id: str | None, days: int, client_id: str | None) -> bool:
    """Remember this browser for ``days``; False when there is no device to remember."""
    device = find(user, device_id)
    if device is None or days <= 0:
        return False
    device.remembered_until = int(time.time()) + days * 86400
    device.remembered_level = MAX_LEVEL
    audit.record("mfa.device_remembered", user_id=user.id, client_id=client_id,
                 device=device.id, days=days, commit=False)
    db.session.commit()
    return True


def forget(device: Device, actor: str | None = None) -> None:
    device.remembered_until = None
    device.remembered_level = None
    db.session.commit()
    audit.record("mfa.device_forgotten", user_id=device.user_id, device=device.id, actor=actor)


def remembered(user: User) -> list[Device]:
    now = int(time.time())
    return list(db.session.scalars(select(Device).where(
        Device.user_id == user.id, Device.remembered_until > now).order_by(
        Device.last_seen_at.desc())))


def remembered_event(device: Device | None, now: int) -> AuthEvent | None:
    """The stand-in proof this browser (its row for the signing-in user) gives, if it is
    remembered."""
    if device is None or not device.remembered_until or device.remembered_until <= now:
        return None
    return AuthEvent(method=METHOD, factor_id=f"device:{device.id}", amr=AMR, at=now,
                     properties={"remembered": True}, category=HAVE)
