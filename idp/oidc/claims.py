"""Standard claims released per scope (OIDC Core §5.4)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from sqlalchemy import Row

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
#: The scope whose consent covers each standard claim (§5.4), for requests by name (§5.5).
CLAIM_SCOPE: dict[str, str] = {c: scope for scope, claims in SCOPE_CLAIMS.items() for c in claims}
#: How the consent page names a claim asked for by name.
CLAIM_LABELS: dict[str, str] = {
    "name": "your full name", "given_name": "your given name", "family_name": "your family name",
    "preferred_username": "your username", "updated_at": "when your profile last changed",
    "email": "your email address", "email_verified": "whether your email address is verified",
    "phone_number": "your phone number",
    "phone_number_verified": "whether your phone number is verified",
    "address": "your postal address",
}
#: Members of the claims parameter that name claims (§5.5).
CLAIMS_MEMBERS = ("id_token", "userinfo")
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
    return [name for name in requested if name in CLAIM_SCOPE]


def requested_user_claims(claims_request: dict | None) -> list[str]:
    """Every user claim (``SCOPE_CLAIMS``) the claims parameter names, in either member, in
    request order without repeats."""
    names = [n for member in CLAIMS_MEMBERS for n in requested_names(claims_request, member)]
    return list(dict.fromkeys(names))


def covered_by_scope(scope: str) -> set[str]:
    """The claims the scopes in ``scope`` release (§5.4)."""
    return {name for granted in scope.split() for name in SCOPE_CLAIMS.get(granted, ())}


def allowed_for_client(names: list[str], allowed_scope: str) -> list[str]:
    """The ``names`` a client with the registered scopes ``allowed_scope`` may receive at all:
    a claim asked for by name is never a way around the client's scope registration."""
    allowed = set(allowed_scope.split())
    return [name for name in names if CLAIM_SCOPE.get(name) in allowed]


def restrict_claims_request(claims_request: dict | None,
                            releasable: set[str]) -> dict | None:
    """The claims parameter with every user claim outside ``releasable`` removed from both
    members; other entries (``acr``, ``amr``, ``auth_time``, names not understood) are kept as
    they were. §5.5.1: a claim that is not available — here, not consented to or not allowed —
    is simply omitted, essential or not; it is never an error."""
    if not claims_request:
        return claims_request
    restricted = dict(claims_request)
    for member in CLAIMS_MEMBERS:
        requested = claims_request.get(member)
        if isinstance(requested, dict):
            restricted[member] = {name: value for name, value in requested.items()
                                  if name not in CLAIM_SCOPE or name in releasable}
    return restricted


def user_claims(user: User | Row[Any] | SimpleNamespace, scope: str,
                extra: list[str] | None = None) -> dict[str, Any]:
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
