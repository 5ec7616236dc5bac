"""Reading our own ID tokens back (``id_token_hint`` at /authorize and /logout)."""

from __future__ import annotations

from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError


class InvalidIdTokenHint(Exception):
    """The hint was not an ID token signed by this OP."""


def read_id_token_hint(token: str, keyring: Any, issuer: str) -> dict[str, Any]:
    """Claims of an ID token we signed. Expiry is not checked: OIDC Core §3.1.2.1 allows an
    expired hint, and RP-Initiated Logout §2 expects one. ``alg: none`` is refused."""
    if not token or len(token) > 8192 or token.count(".") != 2:
        raise InvalidIdTokenHint("malformed id_token_hint")
    try:
        decoded = jwt.decode(token, keyring.verification_keys(), algorithms=keyring.algorithms)
    except (JoseError, ValueError, KeyError, TypeError) as exc:
        raise InvalidIdTokenHint("id_token_hint signature rejected") from exc
    claims = decoded.claims
    if decoded.header.get("typ") not in (None, "JWT") or claims.get("iss") != issuer \
            or not claims.get("sub"):
        raise InvalidIdTokenHint("id_token_hint was not issued by this provider")
    return claims


def audiences(claims: dict[str, Any]) -> list[str]:
    aud = claims.get("aud")
    return [aud] if isinstance(aud, str) else [a for a in aud or [] if isinstance(a, str)]
