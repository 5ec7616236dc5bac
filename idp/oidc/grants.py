"""authlib grants, extended only at their documented hooks.

- Authorization code: PKCE S256 required for every client (plain refused); codes stored hashed
  with the authentication snapshot; expiry from the code's own ``issued_at``; a replayed code
  fails with ``invalid_grant`` and revokes every token issued from it (RFC 6749 §4.1.2).
- Refresh token: rotation on every use; reuse of a rotated token revokes the whole family
  (RFC 9700 §4.14.2); refreshed tokens keep the original auth_time (OIDC Core §12.2).
- Client credentials for machine clients.

Transactions: no grant commits. Everything one ``/token`` request does — the claim of the code
or refresh token, the revocations a replay causes with their audit row, the issued tokens — is
one transaction that :func:`idp.oidc.token_response` commits once, error answers included (so a
code is used up by its first redemption even when that fails, e.g. on a PKCE mismatch). The
claim's row lock is held until that commit: a concurrent redemption or rotation waits for it
and then finds the row claimed and the winner's tokens committed, which it revokes.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from authlib.oauth2.rfc6749 import InvalidGrantError, InvalidRequestError
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant as _AuthorizationCodeGrant
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant as _ClientCredentialsGrant
from authlib.oauth2.rfc6749.grants import RefreshTokenGrant as _RefreshTokenGrant
from authlib.oauth2.rfc7636 import CodeChallenge as _CodeChallenge
from authlib.oidc.core.grants import OpenIDCode as _OpenIDCode
from authlib.oidc.core.grants.code import OpenIDToken as _OpenIDToken
from flask import current_app
from sqlalchemy import Row, update

from idp.crypto import sha256_hex
from idp.extensions import db, settings
from idp.models import AuthorizationCode, Token, statements
from idp.oidc import tokens
from idp.oidc.claims import requested_names, user_claims
from idp.oidc.clients import committed_for_client
from idp.oidc.principal import AuthContext, Principal

CODE_BYTES = 32
SECRET_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]


class StoredCode:
    """authlib's view of an authorization code row (``AuthorizationCodeMixin`` methods)."""

    def __init__(self, row: AuthorizationCode | Row[Any]) -> None:
        self.row = row
        self.code_challenge = row.code_challenge
        self.code_challenge_method = row.code_challenge_method

    def get_redirect_uri(self) -> str:
        return self.row.redirect_uri

    def get_scope(self) -> str:
        return self.row.scope

    def get_nonce(self) -> str | None:
        return self.row.nonce

    def get_auth_time(self) -> int:
        return self.row.auth_time

    def get_acr(self) -> str | None:
        return self.row.acr

    def get_amr(self) -> list[str]:
        return list(self.row.amr or [])


class S256CodeChallenge(_CodeChallenge):
    """PKCE with S256 only, required for confidential and public clients alike (RFC 9700 §2.1.1)."""

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    CODE_CHALLENGE_METHODS = {"S256": _CodeChallenge.CODE_CHALLENGE_METHODS["S256"]}

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError(
                "PKCE is required: send code_challenge with code_challenge_method=S256.")
        if data.get("code_challenge_method", "plain") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256.")
        super().validate_code_challenge(grant, redirect_uri)

    def validate_code_verifier(self, grant: Any, result: Any) -> None:
        if not grant.request.form.get("code_verifier"):
            raise InvalidRequestError("Missing 'code_verifier'.")
        super().validate_code_verifier(grant, result)


class _IdTokenClaims:
    """Issuer, audience, key and claims shared by the code and refresh ID tokens."""

    keyring: Any

    def get_client_claims(self, client: Any) -> dict[str, Any]:
        now = int(time.time())
        return {"iss": settings().issuer, "aud": [client.get_client_id()],
                "azp": client.get_client_id(), "iat": now,
                "exp": now + settings().tokens.id_token_ttl}

    def resolve_client_private_key(self, client: Any) -> Any:
        return self.keyring.signing_key(self.get_client_algorithm(client))

    def get_encode_header(self, client: Any) -> dict[str, str]:
        return {"alg": self.get_client_algorithm(client), "typ": "JWT"}

    def generate_user_info(self, user: Principal, scope: str) -> dict[str, Any]:
        # With an access token issued, scope claims come from UserInfo (OIDC Core §5.4); the
        # ID token carries only what claims.id_token asks for (§5.5).
        claims = user_claims(user.user, "", requested_names(user.claims_request, "id_token"))
        ctx = user.context
        if ctx.auth_time is not None:
            claims["auth_time"] = ctx.auth_time
        if ctx.acr:
            claims["acr"] = ctx.acr
        if ctx.amr:
            claims["amr"] = list(ctx.amr)
        if ctx.sid:
            claims["sid"] = ctx.sid
        return claims


class OpenIDCode(_IdTokenClaims, _OpenIDCode):
    def __init__(self, keyring: Any) -> None:
        super().__init__(require_nonce=False)
        self.keyring = keyring

    def exists_nonce(self, nonce: str, request: Any) -> bool:
        # The nonce binds the ID token to the RP's session; replay is detected by the RP
        # (OIDC Core §15.5.2). Refusing repeats here would break a user reloading the page.
        return False


class RefreshIdToken(_IdTokenClaims, _OpenIDToken):
    """Adds an ID token to refresh responses (OIDC Core §12.2: same iss/sub/aud, original
    auth_time, no nonce)."""

    def __init__(self, keyring: Any) -> None:
        self.keyring = keyring


def _code_hash(code: str) -> str:
    return sha256_hex(code)


class AuthorizationCodeGrant(_AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = [*SECRET_AUTH_METHODS, "none"]

    def generate_authorization_code(self) -> str:
        return secrets.token_urlsafe(CODE_BYTES)

    def save_authorization_code(self, code: str, request: Any) -> None:
        principal: Principal = request.user
        data = request.payload.data
        now = int(time.time())
        client_id = request.client.get_client_id()
        with committed_for_client(client_id):
            statements.insert_code({
                "code_hash": _code_hash(code), "client_id": client_id,
                "user_id": principal.user.id, "redirect_uri": request.payload.redirect_uri,
                "scope": request.scope, "nonce": data.get("nonce"),
                "code_challenge": data["code_challenge"],
                "code_challenge_method": data.get("code_challenge_method", "S256"),
                "acr": principal.context.acr, "amr": list(principal.context.amr),
                "auth_time": principal.context.auth_time, "sid": principal.context.sid,
                "acr_expiry": principal.context.acr_expires or None,
                "claims": getattr(request, "requested_claims", None), "issued_at": now,
                "expires_at": now + settings().tokens.authorization_code_ttl, "used_at": None,
            })

    def query_authorization_code(self, code: str, client: Any) -> StoredCode | None:
        """Claim the code atomically; a second redemption revokes what the first issued."""
        if not code or len(code) > 512:
            return None
        code_hash = _code_hash(code)
        now = int(time.time())
        row: Any
        # UPDATE … RETURNING: the claimed row comes back with the claim (no SELECT after it);
        # PostgreSQL and SQLite ≥ 3.35 have it, older SQLite reads the row back.
        if db.engine.dialect.update_returning:
            row = statements.claim_code(code_hash, client.get_client_id(), now)
            claimed = row is not None
        else:
            claim = (update(AuthorizationCode)
                     .where(AuthorizationCode.code_hash == code_hash,
                            AuthorizationCode.client_id == client.get_client_id(),
                            AuthorizationCode.used_at.is_(None))
                     .values(used_at=now))
            claimed = db.session.execute(claim).rowcount == 1
            row = db.session.get(AuthorizationCode, code_hash) if claimed else None
        if not claimed:
            row = db.session.get(AuthorizationCode, code_hash)
            if row is None or row.client_id != client.get_client_id():
                return None
            revoked = tokens.revoke_by_code(code_hash, now)
            tokens.record_reuse("authorization_code", user_id=row.user_id,
                                client_id=row.client_id, revoked=revoked)
            return None
        if row is None:  # claimed, then deleted with its client before the read-back
            return None
        if row.expires_at <= now:
            return None
        return StoredCode(row)

    def delete_authorization_code(self, authorization_code: StoredCode) -> None:
        # Kept (marked used) until expiry so that a replay can still be recognised.
        return None

    def authenticate_user(self, authorization_code: StoredCode) -> Principal | None:
        row = authorization_code.row
        user = statements.user_row(row.user_id)
        if user is None or user.disabled:
            return None
        return Principal(user, AuthContext(row.acr, tuple(row.amr or ()), row.auth_time, row.sid,
                                           dict(row.acr_expiry or {})),
                         claims_request=row.claims)

    def save_token(self, token: dict[str, Any]) -> None:
        request = self.request
        tokens.persist_token(
            token, client_id=request.client.get_client_id(), principal=request.user,
            code_hash=request.authorization_code.row.code_hash,
            refresh_ttl=settings().tokens.refresh_token_ttl)


class RefreshTokenGrant(_RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = [*SECRET_AUTH_METHODS, "none"]
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> tokens.IssuedToken | None:
        """Rotate atomically: the first presenter wins, any later one revokes the family."""
        if not refresh_token or len(refresh_token) > 512:
            return None
        refresh_hash = sha256_hex(refresh_token)
        client_id = self.request.client.get_client_id()
        now = int(time.time())
        if db.engine.dialect.update_returning:
            # The usual case in one statement: a live token of this client, rotated now.
            rotated = statements.rotate_refresh(refresh_hash, client_id, now)
            if rotated is not None:
                return tokens.IssuedToken(rotated, "refresh_token", now)
        row = statements.token_by_refresh_hash(refresh_hash)
        if row is None or row.client_id != client_id or row.revoked_at is not None:
            return None
        if row.refresh_expires_at is not None and row.refresh_expires_at <= now:
            return None
        claimed = db.session.execute(
            update(Token).where(Token.id == row.id, Token.rotated_at.is_(None),
                                Token.revoked_at.is_(None)).values(rotated_at=now))
        if claimed.rowcount != 1:  # rotated before: a replay (or the loser of a race)
            revoked = tokens.revoke_family(row.family_id, now)
            tokens.record_reuse("refresh_token", user_id=row.user_id, client_id=row.client_id,
                                revoked=revoked)
            return None
        return tokens.IssuedToken(row, "refresh_token", now)

    def authenticate_user(self, refresh_token: tokens.IssuedToken) -> Principal | None:
        row = refresh_token.row
        user = statements.user_row(row.user_id) if row.user_id else None
        if user is None or user.disabled:
            return None
        context = current_context(row, int(time.time()))
        if context is None:
            raise InvalidGrantError("The authentication behind this refresh token has expired: "
                                    "sign in again.")
        return Principal(user, context, claims_request=row.claims)

    def revoke_old_credential(self, refresh_token: tokens.IssuedToken) -> None:
        # Already marked rotated in authenticate_refresh_token (atomic claim).
        return None

    def save_token(self, token: dict[str, Any]) -> None:
        old = self.request.refresh_token.row
        tokens.persist_token(
            token, client_id=old.client_id, principal=self.request.user,
            family_id=old.family_id, code_hash=old.code_hash,
            refresh_ttl=settings().tokens.refresh_token_ttl)


def current_context(row: Token | Row[Any], now: int) -> AuthContext | None:
    """The token's authentication as it stands now: the acr falls back to the strongest level
    that still holds (never above the original), ``mfa`` leaves amr with the second factor,
    auth_time stays the original (OIDC Core §12.2). None when nothing holds any more."""
    ladder = current_app.extensions["idp.ladder"]
    expiry = dict(row.acr_expiry or {})
    if row.acr is None or not expiry:
        return AuthContext(row.acr, tuple(row.amr or ()), row.auth_time, row.sid, expiry)
    acr = ladder.still_holds(row.acr, expiry, now)
    if acr is None:
        return None
    amr = tuple(row.amr or ()) if acr == row.acr else ladder.amr_within(row.amr or (), acr)
    return AuthContext(acr, amr, row.auth_time, row.sid, expiry)


class ClientCredentialsGrant(_ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = SECRET_AUTH_METHODS

    def save_token(self, token: dict[str, Any]) -> None:
        tokens.persist_token(token, client_id=self.request.client.get_client_id(),
                             principal=None)
