"""Standard claims released per scope (OIDC Core §5.4)."""

from __future__ import annotations

from typing import Any

from idp.models import User

SCOPE_CLAIMS: dict[str, tuple[str, ...]] = {
    "profile": ("name", "given_name", "family_name", "preferred_username", "updated_at"),
    "email": ("email", "email_verified"),
    "phone": ("phone_number", "phone_number_verified"),
    "address": ("address",),
}
#: Scopes a client may request (discovery's ``scopes_supported``): OIDC Core §5.4 and §11, plus
#: ``mfa``, which lets the token call the self-service MFA API (``/api/v1/me``; README "APIs").
STANDARD_SCOPES = ("openid", "profile", "email", "phone", "address", "offline_access", "mfa")
CLAIMS_SUPPORTED = (
    "sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "sid", "azp",
    *[c for claims in SCOPE_CLAIMS.values() for c in claims],
)


def requested_names(claims_request: dict | None, member: str) -> list[str]:
    """Claim names requested for ``member`` ("id_token" or "userinfo") by the ``claims``
    parameter (OIDC Core §5.5); unknown names are ignored (§5.5: "not understood")."""
    requested = (claims_request or {}).get(member)
    if not isinstance(requested, dict):
        return []
    known = {c for claims in SCOPE_CLAIMS.values() for c in claims}
    return [name for name in requested if name in known]


def user_claims(user: User, scope: str, extra: list[str] | None = None) -> dict[str, Any]:
    """``sub`` plus the claims the granted scopes release and the ``extra`` names requested
    through the claims parameter; absent values are omitted."""
    values: dict[str, Any] = {
        "name": user.name,
        "given_name": user.given_name,
        "family_name": user.family_name,
        "preferred_username": user.username,
        "updated_at": user.updated_at,
        "email": user.email,
        "email_verified": bool(user.email_verified) if user.email else None,
        "phone_number": user.phone_number,
        "phone_number_verified": bool(user.phone_number_verified) if user.phone_number else None,
        "address": None,
    }
    names = [name for granted in scope.split() for name in SCOPE_CLAIMS.get(granted, ())]
    claims: dict[str, Any] = {"sub": user.id}
    for name in [*names, *(extra or [])]:
        if values.get(name) is not None:
            claims[name] = values[name]
    return claims
