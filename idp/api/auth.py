"""Bearer authentication for the JSON APIs (RFC 6750).

Only the ``Authorization: Bearer`` header is accepted (RFC 6750 §2.1); a token in the query
(§2.3) or a header of another scheme is ``400 invalid_request``. The token is one of ours
(RFC 9068 JWT, checked by :func:`idp.oidc.tokens.validate_access_token`: signature, ``typ``,
issuer, expiry, not revoked). Then:

- self-service (``/api/v1/me``): a user's token with scope :data:`MFA_SCOPE`, whose user is
  enabled, whose client is still registered, and whose authentication still holds at some
  level (the ladder's max ages);
- admin (``/api/v1/admin``): a client-credentials token (no user) with scope
  :data:`ADMIN_SCOPE`, from a client that is still enabled and still registered with that
  scope — taking the scope away from a client takes effect at its next call.

Failures: no token → 401 with a bare challenge (§3.1: no error code); a bad token → 401
``invalid_token``; the wrong kind of token or a missing scope → 403 ``insufficient_scope``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from flask import current_app, request

from idp.api.errors import InsufficientScope, InvalidToken, MalformedAuthorization, MissingToken
from idp.extensions import db
from idp.models import Client, Token, User
from idp.oidc.issuance import AuthenticationExpired, held_context
from idp.oidc.principal import AuthContext
from idp.oidc.tokens import InvalidAccessToken, validate_access_token

MFA_SCOPE = "mfa"
ADMIN_SCOPE = "idp:admin"


@dataclass(frozen=True)
class UserCaller:
    """An end user acting through a client, with the token's current authentication."""

    user: User
    token: Token
    claims: dict[str, Any]
    context: AuthContext


@dataclass(frozen=True)
class AdminCaller:
    """A machine client holding ``idp:admin``."""

    client: Client
    token: Token

    @property
    def actor(self) -> str:
        """How audit events name this caller."""
        return f"client:{self.client.client_id}"


def bearer_token(scope: str) -> str:
    """The token from the Authorization header; raises the RFC 6750 errors."""
    if "access_token" in request.args:
        raise MalformedAuthorization("Send the access token in the Authorization header, not "
                                     "in the query.", scope)
    header = request.headers.get("Authorization")
    if header is None:
        raise MissingToken("A bearer access token is required.", scope)
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise MalformedAuthorization("The Authorization header must be a Bearer token.", scope)
    return value.strip()


def _validated(scope: str) -> Any:
    try:
        return validate_access_token(bearer_token(scope), current_app.extensions["idp.keyring"])
    except InvalidAccessToken as exc:
        raise InvalidToken(f"The access token is not valid ({exc}).", scope) from None


def _client(client_id: str) -> Client | None:
    client = db.session.get(Client, client_id)
    return None if client is None or client.disabled else client


def user_caller(scope: str = MFA_SCOPE) -> UserCaller:
    """The user behind the request's token, which must carry ``scope``."""
    valid = _validated(scope)
    row: Token = valid.row
    if not row.user_id:
        raise InsufficientScope("This API needs a token issued to a user, not to a client.",
                                scope)
    if scope not in row.scope.split():
        raise InsufficientScope(f"The access token lacks the {scope!r} scope.", scope)
    user = db.session.get(User, row.user_id)
    if user is None or user.disabled or _client(row.client_id) is None:
        raise InvalidToken("The access token's user or client no longer exists.", scope)
    try:
        context = held_context(row, int(time.time()))
    except AuthenticationExpired:
        raise InvalidToken("The authentication behind this access token has expired: sign "
                           "in again.", scope) from None
    return UserCaller(user, row, dict(valid.claims), context)


def admin_caller() -> AdminCaller:
    """The machine client behind the request's token, which must hold ``idp:admin``."""
    valid = _validated(ADMIN_SCOPE)
    row: Token = valid.row
    if row.user_id:
        raise InsufficientScope("The admin API needs a client-credentials token.", ADMIN_SCOPE)
    client = _client(row.client_id)
    if client is None:
        raise InvalidToken("The access token's client no longer exists.", ADMIN_SCOPE)
    if ADMIN_SCOPE not in row.scope.split() or ADMIN_SCOPE not in client.scope.split():
        raise InsufficientScope(f"The access token lacks the {ADMIN_SCOPE!r} scope.",
                                ADMIN_SCOPE)
    return AdminCaller(client, row)
