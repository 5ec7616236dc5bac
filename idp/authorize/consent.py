"""Consents the user gave clients that are not first-party."""

from __future__ import annotations

import time

from sqlalchemy import select

from idp.extensions import db
from idp.models import Client, Consent, User


def has_consent(user: User | None, client: Client, scope: str) -> bool:
    if user is None:
        return False
    consent = db.session.scalar(
        select(Consent).where(Consent.user_id == user.id, Consent.client_id == client.client_id))
    return consent is not None and set(scope.split()) <= set(consent.scope.split())


def grant_consent(user: User, client: Client, scope: str) -> None:
    consent = db.session.scalar(
        select(Consent).where(Consent.user_id == user.id, Consent.client_id == client.client_id))
    if consent is None:
        db.session.add(Consent(user_id=user.id, client_id=client.client_id, scope=scope,
                               granted_at=int(time.time())))
    else:
        consent.scope = " ".join(sorted(set(consent.scope.split()) | set(scope.split())))
        consent.granted_at = int(time.time())
    db.session.commit()
