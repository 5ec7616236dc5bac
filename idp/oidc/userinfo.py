"""The UserInfo endpoint (OIDC Core §5.3) with RFC 6750 bearer handling."""

from __future__ import annotations

from typing import Any

from flask import Request

from idp.models import statements
from idp.oidc.claims import requested_names, user_claims
from idp.oidc.tokens import InvalidAccessToken, validate_access_token


class BearerError(Exception):
    """An RFC 6750 §3.1 error: ``error`` and HTTP ``status`` for WWW-Authenticate."""

    def __init__(self, error: str | None, description: str, status: int) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status

    def www_authenticate(self) -> str:
        if self.error is None:
            return 'Bearer realm="userinfo"'
        return (f'Bearer realm="userinfo", error="{self.error}", '
                f'error_description="{self.description}"')


def bearer_token(request: Request) -> str:
    """The access token from the Authorization header or, for a form POST, the body
    (RFC 6750 §2.1, §2.2); more than one method is invalid_request (§2)."""
    header = request.headers.get("Authorization", "")
    from_header = None
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise BearerError("invalid_request", "Authorization header is not a Bearer token",
                              400)
        from_header = value.strip()
    from_body = None
    if request.method == "POST" and request.mimetype == "application/x-www-form-urlencoded":
        from_body = request.form.get("access_token")
    if "access_token" in request.args:
        raise BearerError("invalid_request", "access_token in the query is not accepted", 400)
    if from_header and from_body:
        raise BearerError("invalid_request", "more than one access token was presented", 400)
    token = from_header or from_body
    if not token:
        raise BearerError(None, "no access token", 401)
    return token


def userinfo_claims(request: Request, keyring: Any) -> dict[str, Any]:
    """Claims for the token's user and scopes; raises BearerError."""
    token = bearer_token(request)
    try:
        # The token and its user in one statement (the hot path of every sign-in).
        valid = validate_access_token(token, keyring, read=statements.token_and_user_by_jti)
    except InvalidAccessToken as exc:
        raise BearerError("invalid_token", str(exc), 401) from None
    if "openid" not in valid.row.scope.split() or not valid.row.user_id:
        raise BearerError("insufficient_scope", "the token lacks the openid scope", 403)
    user = statements.joined_user(valid.row)
    if user is None or user.disabled:
        raise BearerError("invalid_token", "the user no longer exists", 401)
    return user_claims(user, valid.row.scope, requested_names(valid.row.claims, "userinfo"))
