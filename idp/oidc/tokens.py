"""Issued tokens: RFC 9068 JWT access tokens, opaque rotating refresh tokens, persistence,
validation and revocation.

Every access token has a row (by ``jti``) so it can be revoked — by RFC 7009 revocation, by a
replayed authorization code (RFC 6749 §4.1.2) or by refresh-token reuse (RFC 9700 §4.14.2).
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from joserfc import jwt
from joserfc.errors import JoseError
from sqlalchemy import Row, select, update

from idp import audit, request_log
from idp.crypto import sha256_hex
from idp.extensions import db, settings
from idp.models import Token, statements
from idp.models._types import new_id
from idp.oidc.principal import Principal

REFRESH_TOKEN_BYTES = 48
ACCESS_TOKEN_TYP = "at+jwt"
OFFLINE_ACCESS = "offline_access"


class AccessTokenGenerator(JWTBearerTokenGenerator):
    """RFC 9068 access tokens carrying the authentication snapshot (acr, amr, auth_time, sid)."""

    def __init__(self, issuer: str, keyring: Any, alg: str, expires_in: dict[str, int],
                 audience: list[str] | None = None) -> None:
        super().__init__(
            issuer=issuer, alg=alg,
            refresh_token_generator=lambda **_: secrets.token_urlsafe(REFRESH_TOKEN_BYTES),
            expires_generator=lambda client, grant_type: expires_in.get(
                grant_type, expires_in["default"]),
        )
        self._keyring = keyring
        self._audience = list(audience or [])

    def get_audiences(self, client: Any, user: Any, scope: str) -> str | list[str]:
        """RFC 9068 §3 (``aud`` REQUIRED): the configured resource servers
        (``tokens.access_token_audience``), else the client id."""
        return access_token_audience(self._audience, client.get_client_id())

    def get_jwks(self) -> Any:
        return self._keyring.signing_key(self.alg)

    def get_jti(self, client: Any, grant_type: str, user: Any, scope: str) -> str:
        return secrets.token_urlsafe(24)

    def get_auth_time(self, user: Any) -> int | None:
        return user.context.auth_time if isinstance(user, Principal) else None

    def get_acr(self, user: Any) -> str | None:
        return user.context.acr if isinstance(user, Principal) else None

    def get_amr(self, user: Any) -> list[str] | None:
        return list(user.context.amr) if isinstance(user, Principal) else None

    def get_extra_claims(self, client: Any, grant_type: str, user: Any,
                         scope: str) -> dict[str, Any]:
        if isinstance(user, Principal) and user.context.sid:
            return {"sid": user.context.sid}
        return {}


def access_token_audience(configured: list[str], client_id: str) -> str | list[str]:
    """``aud`` of an access token: the configured audience (one value as a string), else the
    client id."""
    if not configured:
        return client_id
    return configured[0] if len(configured) == 1 else list(configured)


def unverified_claims(token: str) -> dict[str, Any]:
    """Claims of a JWT we just minted ourselves (no signature check needed)."""
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def persist_token(token: dict[str, Any], *, client_id: str, principal: Principal | None,
                  family_id: str | None = None, code_hash: str | None = None,
                  refresh_ttl: int | None = None) -> None:
    """Store one issued token set (not committed)."""
    claims = unverified_claims(token["access_token"])
    ctx = principal.context if principal else None
    refresh = token.get("refresh_token")
    user_id = principal.user.id if principal else None
    statements.insert_token({
        "id": new_id(), "jti": claims["jti"], "client_id": client_id, "user_id": user_id,
        "scope": token.get("scope") or "", "family_id": family_id or secrets.token_hex(16),
        "code_hash": code_hash, "refresh_token_hash": sha256_hex(refresh) if refresh else None,
        "claims": principal.claims_request if principal else None,
        "acr_expiry": (ctx.acr_expires or None) if ctx else None,
        "acr": ctx.acr if ctx else None, "amr": list(ctx.amr) if ctx else [],
        "auth_time": ctx.auth_time if ctx else None, "sid": ctx.sid if ctx else None,
        "issued_at": int(claims["iat"]), "access_expires_at": int(claims["exp"]),
        "refresh_expires_at": int(claims["iat"]) + refresh_ttl
        if refresh and refresh_ttl else None,
        "rotated_at": None, "revoked_at": None,
    })
    request_log.note_identity(user_id=user_id, client_id=client_id)


def revoke_family(family_id: str, now: int | None = None) -> int:
    now = int(time.time()) if now is None else now
    result = db.session.execute(
        update(Token).where(Token.family_id == family_id, Token.revoked_at.is_(None))
        .values(revoked_at=now))
    return int(result.rowcount or 0)


def revoke_by_code(code_hash: str, now: int | None = None) -> int:
    """Revoke every token descended from an authorization code (its families)."""
    now = int(time.time()) if now is None else now
    families = list(db.session.scalars(
        select(Token.family_id).where(Token.code_hash == code_hash).distinct()))
    return sum(revoke_family(f, now) for f in families)


def revoke_user_tokens(user_id: str, now: int | None = None) -> int:
    now = int(time.time()) if now is None else now
    result = db.session.execute(
        update(Token).where(Token.user_id == user_id, Token.revoked_at.is_(None))
        .values(revoked_at=now))
    return int(result.rowcount or 0)


def revoke_session_tokens(user_id: str, sid: str, now: int | None = None) -> int:
    """Revoke the tokens issued to one browser session (its OIDC ``sid``), at logout.

    Tokens granted ``offline_access`` are kept: they exist to work while the user is signed
    out (OIDC Core §11). Refreshed tokens keep the ``sid``, so a family goes as a whole.
    """
    now = int(time.time()) if now is None else now
    rows = db.session.scalars(select(Token).where(Token.user_id == user_id, Token.sid == sid,
                                                  Token.revoked_at.is_(None)))
    revoked = [row for row in rows if OFFLINE_ACCESS not in row.scope.split()]
    for row in revoked:
        row.revoked_at = now
    return len(revoked)


# -- validation -----------------------------------------------------------------------------

class InvalidAccessToken(Exception):
    """The bearer token is malformed, forged, expired or revoked (RFC 6750 invalid_token)."""


@dataclass(frozen=True)
class ValidAccessToken:
    claims: dict[str, Any]
    #: The token's row, read only (a Core row: attributes are the ``tokens`` columns).
    row: Row[Any]


def validate_access_token(token: str, keyring: Any, now: int | None = None,
                          read: Callable[[str], Row[Any] | None] = statements.token_by_jti,
                          ) -> ValidAccessToken:
    """Check signature (our published keys), ``typ``, issuer, expiry, and that it is not revoked.

    ``read`` fetches the token's row by ``jti``: UserInfo passes
    :func:`~idp.models.statements.token_and_user_by_jti` to get the user in the same round trip.
    """
    now = int(time.time()) if now is None else now
    if not token or len(token) > 8192:
        raise InvalidAccessToken("malformed token")
    try:
        decoded = jwt.decode(token, keyring.verification_keys(), algorithms=keyring.algorithms)
    except (JoseError, ValueError, KeyError, TypeError) as exc:
        raise InvalidAccessToken("signature or format rejected") from exc
    if decoded.header.get("typ") != ACCESS_TOKEN_TYP:
        raise InvalidAccessToken("not an access token")
    claims = decoded.claims
    if claims.get("iss") != settings().issuer:
        raise InvalidAccessToken("issued by another server")
    if not isinstance(claims.get("exp"), int) or claims["exp"] <= now:
        raise InvalidAccessToken("expired")
    row = read(str(claims.get("jti")))
    if row is None or row.revoked_at is not None:
        raise InvalidAccessToken("revoked")
    return ValidAccessToken(claims, row)


@dataclass
class IssuedToken:
    """An access or refresh token as RFC 7009 / RFC 7662 endpoints see it."""

    #: An ORM object where the caller changes it (revocation), else a read-only Core row.
    row: Token | Row[Any]
    kind: str  # "access_token" | "refresh_token"
    now: int

    def check_client(self, client: Any) -> bool:
        return self.row.client_id == client.get_client_id()

    def get_scope(self) -> str:
        return self.row.scope

    def is_revoked(self) -> bool:
        if self.row.revoked_at is not None:
            return True
        return self.kind == "refresh_token" and self.row.rotated_at is not None

    def is_expired(self) -> bool:
        if self.kind == "access_token":
            return self.row.access_expires_at <= self.now
        return self.row.refresh_expires_at is not None and self.row.refresh_expires_at <= self.now

    @property
    def expires_at(self) -> int | None:
        return self.row.access_expires_at if self.kind == "access_token" \
            else self.row.refresh_expires_at


def find_token(token: str, hint: str | None, keyring: Any) -> IssuedToken | None:
    """Look a presented token up as an access token (JWT) or a refresh token (hash)."""
    now = int(time.time())
    if not token or len(token) > 8192:
        return None
    kinds = ["refresh_token", "access_token"] if hint == "refresh_token" \
        else ["access_token", "refresh_token"]
    for kind in kinds:
        if kind == "access_token" and token.count(".") == 2:
            try:
                decoded = jwt.decode(token, keyring.verification_keys(),
                                     algorithms=keyring.algorithms)
            except (JoseError, ValueError, KeyError, TypeError):
                continue
            jti = str(decoded.claims.get("jti"))
            row = db.session.scalar(select(Token).where(Token.jti == jti))
            if row is not None:
                return IssuedToken(row, kind, now)
        elif kind == "refresh_token":
            row = db.session.scalar(
                select(Token).where(Token.refresh_token_hash == sha256_hex(token)))
            if row is not None:
                return IssuedToken(row, kind, now)
    return None


def record_reuse(kind: str, *, user_id: str | None, client_id: str, revoked: int) -> None:
    """Audit a replayed code or rotated refresh token; the row joins the revocations it
    reports in the token request's one commit (:func:`idp.oidc.token_response`)."""
    audit.record("token.reuse_detected", user_id=user_id, client_id=client_id,
                 credential=kind, tokens_revoked=revoked, commit=False)
