"""RFC 7662 introspection and RFC 7009 revocation, on authlib's endpoint classes."""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc7009 import RevocationEndpoint as _RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint as _IntrospectionEndpoint

from idp.extensions import db, settings
from idp.models import statements
from idp.oidc import tokens

#: A client holding this scope may introspect any token (a resource server).
INTROSPECT_SCOPE = "idp:introspect"


class IntrospectionEndpoint(_IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def __init__(self, server: Any, keyring: Any) -> None:
        super().__init__(server)
        self.keyring = keyring

    def query_token(self, token_string: str, token_type_hint: str | None) -> Any:
        return tokens.find_token(token_string, token_type_hint, self.keyring)

    def check_permission(self, token: Any, client: Any, request: Any) -> bool:
        """A client may introspect its own tokens; resource servers need ``idp:introspect``."""
        return token.check_client(client) or INTROSPECT_SCOPE in client.model.scope.split()

    def introspect_token(self, token: tokens.IssuedToken) -> dict[str, Any]:
        row = token.row
        payload: dict[str, Any] = {
            "active": True, "iss": settings().issuer, "client_id": row.client_id,
            "token_type": "Bearer" if token.kind == "access_token" else "refresh_token",
            "scope": row.scope, "iat": row.issued_at, "exp": token.expires_at,
            "sub": row.user_id or row.client_id,
        }
        if token.kind == "access_token":
            # RFC 7662 §2.2: the same audience the JWT carries (RFC 9068 §3).
            payload["aud"] = tokens.access_token_audience(
                list(settings().tokens.access_token_audience), row.client_id)
        if row.user_id:
            user = statements.user_row(row.user_id)
            if user is None or user.disabled:
                return {"active": False}
            payload["username"] = user.username
            payload["auth_time"] = row.auth_time
            payload["acr"] = row.acr
            payload["amr"] = list(row.amr or [])
            if row.sid:
                payload["sid"] = row.sid
        return {k: v for k, v in payload.items() if v is not None}


class RevocationEndpoint(_RevocationEndpoint):
    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

    def __init__(self, server: Any, keyring: Any) -> None:
        super().__init__(server)
        self.keyring = keyring

    def query_token(self, token_string: str, token_type_hint: str | None) -> Any:
        return tokens.find_token(token_string, token_type_hint, self.keyring)

    def authenticate_token(self, request: Any, client: Any) -> Any:
        """A token issued to another client is ignored (RFC 7009 §2.2 answers 200 anyway)."""
        self.check_params(request, client)
        found = self.query_token(request.form["token"], request.form.get("token_type_hint"))
        return found if found is not None and found.check_client(client) else None

    def revoke_token(self, token: tokens.IssuedToken, request: Any) -> None:
        """Revoking a refresh token revokes its whole grant; revoking an access token revokes
        it and the refresh token issued with it (both allowed by RFC 7009 §2.1)."""
        if token.kind == "refresh_token":
            tokens.revoke_family(token.row.family_id)
        else:
            token.row.revoked_at = token.now
        db.session.commit()
