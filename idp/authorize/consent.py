"""Consents the user gave clients that are not first-party.

A consent covers scopes (OIDC Core §5.4) and, separately, claims the ``claims`` parameter asks
for by name (§5.5) beyond those scopes: a request for ``email`` under ``scope=openid`` needs
the user's word for ``email`` just as ``scope=email`` does. The user may decline such claims
one by one; a declined claim is remembered (not asked again) and never released, which §5.5.1
allows: an unavailable claim is omitted, whether essential or voluntary.

Whatever the consent, a claim is released only if the client is registered for the scope that
covers it (:func:`idp.oidc.claims.allowed_for_client`).
"""

from __future__ import annotations

import time

from sqlalchemy import select

from idp.extensions import db
from idp.models import Client, Consent, User
from idp.oidc.claims import allowed_for_client, covered_by_scope, requested_user_claims
from idp.oidc.client_cache import ClientRecord

#: The registration row, or its cached snapshot (what the pipeline and the pages hold).
AnyClient = Client | ClientRecord


def _consent(user: User, client: AnyClient) -> Consent | None:
    return db.session.scalar(
        select(Consent).where(Consent.user_id == user.id, Consent.client_id == client.client_id))


def allowed_claims(client: AnyClient, claims_request: dict | None) -> list[str]:
    """User claims the request names that the client may receive at all."""
    return allowed_for_client(requested_user_claims(claims_request), client.scope or "")


def claims_to_consent(client: AnyClient, scope: str, claims_request: dict | None) -> list[str]:
    """The claims the consent page asks about one by one: named in the claims parameter,
    allowed for the client and not already covered by a requested scope."""
    covered = covered_by_scope(scope)
    return [name for name in allowed_claims(client, claims_request) if name not in covered]


def has_consent(user: User | None, client: AnyClient, scope: str,
                claims: list[str] | tuple[str, ...] = ()) -> bool:
    """The user approved every scope in ``scope`` and decided on every claim in ``claims``
    (released or declined) for this client."""
    if user is None:
        return False
    consent = _consent(user, client)
    if consent is None or not set(scope.split()) <= set(consent.scope.split()):
        return False
    decided = covered_by_scope(consent.scope) | set(consent.claims or ()) \
        | set(consent.rejected_claims or ())
    return set(claims) <= decided


def released_claims(user: User, client: AnyClient, claims_request: dict | None) -> set[str]:
    """The claims named in the claims parameter that may be released to ``client``: every
    allowed one for a first-party client, else those the user's consent covers (by scope or
    by name)."""
    allowed = allowed_claims(client, claims_request)
    if client.first_party:
        return set(allowed)
    consent = _consent(user, client)
    if consent is None:
        return set()
    consented = covered_by_scope(consent.scope) | set(consent.claims or ())
    return {name for name in allowed if name in consented}


def grant_consent(user: User, client: AnyClient, scope: str, claims: tuple[str, ...] = (),
                  rejected: tuple[str, ...] = ()) -> None:
    """Record the user's approval of ``scope`` (added to earlier ones) and their decision on
    the named ``claims`` (released) and ``rejected`` (declined); a new decision on a claim
    replaces the old one."""
    consent = _consent(user, client)
    if consent is None:
        consent = Consent(user_id=user.id, client_id=client.client_id, scope=scope,
                          claims=[], rejected_claims=[])
        db.session.add(consent)
    else:
        consent.scope = " ".join(sorted(set(consent.scope.split()) | set(scope.split())))
    granted = (set(consent.claims or ()) - set(rejected)) | set(claims)
    declined = (set(consent.rejected_claims or ()) - set(claims)) | set(rejected)
    consent.claims = sorted(granted)
    consent.rejected_claims = sorted(declined)
    consent.granted_at = int(time.time())
    db.session.commit()
