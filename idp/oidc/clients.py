"""OAuth clients: registration (secret shown once, stored hashed) and authlib's client view.

authlib's SQLAlchemy client mixin keeps secrets in clear; we keep a SHA-256 of a 256-bit
random secret (a hash suffices for high-entropy secrets) and compare in constant time.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy.exc import IntegrityError

from idp.crypto import constant_time_equals, sha256_hex
from idp.errors import InvalidClient, InvalidRequest
from idp.extensions import db
from idp.models import Client
from idp.oidc import client_cache
from idp.oidc.client_cache import ClientRecord

AUTH_METHODS = ("client_secret_basic", "client_secret_post", "none")
GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
SECRET_BYTES = 32
CLIENT_ID_BYTES = 16
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})


class OAuthClient:
    """authlib ``ClientMixin`` view of a client registration: ``model`` is an immutable
    :class:`~idp.oidc.client_cache.ClientRecord` (the row's columns, lists as tuples)."""

    def __init__(self, model: ClientRecord) -> None:
        self.model = model
        self.client_id = model.client_id
        self.id_token_signed_response_alg = model.id_token_signed_response_alg or "RS256"
        self.client_metadata: dict = {}

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        # OIDC Core §3.1.2.1 makes redirect_uri REQUIRED: never fall back to a default.
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        if not scope:
            return ""
        allowed = set(self.model.scope.split())
        return " ".join(s for s in dict.fromkeys(scope.split()) if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        """Exact string comparison (RFC 9700 §4.1.3): no prefix or pattern matching."""
        return redirect_uri in (self.model.redirect_uris or [])

    def check_client_secret(self, client_secret: str) -> bool:
        if not self.model.secret_hash or not client_secret:
            return False
        return constant_time_equals(sha256_hex(client_secret), self.model.secret_hash)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        registered = self.model.token_endpoint_auth_method
        if registered == "none":
            return method == "none"
        # A confidential client may present its secret either way (Keycloak, Auth0 do too).
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and "authorization_code" in self.model.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in (self.model.grant_types or [])

    @property
    def is_public(self) -> bool:
        return self.model.is_public


def load_client(client_id: str | None) -> OAuthClient | None:
    """The enabled client ``client_id``, from the process's cache
    (:mod:`idp.oidc.client_cache`) or the database; None if unknown or disabled.

    Within one request a second call costs no SELECT either way (the cache, or with the cache
    disabled the session's identity map)."""
    if not client_id or len(client_id) > 100:
        return None
    cache = client_cache.current()
    record = cache.get(client_id) if cache is not None and cache.enabled else None
    if record is None:
        generation = cache.generation() if cache is not None else 0
        model = db.session.get(Client, client_id)
        if model is None:
            return None
        record = ClientRecord.of(model)
        if cache is not None and not client_cache.changed_in(db.session):
            cache.put(record, generation)
    return None if record.disabled else OAuthClient(record)


@contextmanager
def committed_for_client(client_id: str | None) -> Iterator[None]:
    """Write rows that reference ``client_id`` (codes, tokens) inside the block, then commit;
    raises InvalidClient if the client is gone.

    Another process may delete a client this one still has cached (for up to
    ``oidc.client_cache_ttl``): the rows then fail their foreign key, at their INSERT or at
    the commit. That is the client being unknown (RFC 6749 §5.2 ``invalid_client``), not a
    server error.
    """
    try:
        yield
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        cache = client_cache.current()
        if cache is not None and client_id:
            cache.invalidate([client_id])
        if client_id and db.session.get(Client, client_id) is None:
            raise InvalidClient("The client is not registered.") from None
        raise


@dataclass(frozen=True)
class RegisteredClient:
    client: Client
    secret: str | None  # shown once; None for public clients


def validate_redirect_uri(uri: str, production: bool) -> str:
    """A registrable redirect URI (RFC 6749 §3.1.2, RFC 8252 §7); raises InvalidRequest."""
    parts = urlsplit(uri)
    if parts.fragment or "#" in uri:
        raise InvalidRequest(f"redirect URI {uri!r} must not contain a fragment")
    if parts.scheme == "https" and parts.netloc:
        return uri
    if parts.scheme == "http" and parts.hostname:
        if production and f"{parts.hostname}" not in LOOPBACK_HOSTS and \
                parts.hostname not in {"localhost", "127.0.0.1", "::1"}:
            raise InvalidRequest(f"redirect URI {uri!r} must use https")
        return uri
    if parts.scheme and "." in parts.scheme and not parts.netloc:
        return uri  # private-use scheme of a native app (RFC 8252 §7.1)
    raise InvalidRequest(f"redirect URI {uri!r} is not an absolute http(s) URI")


def register_client(
    *, name: str, redirect_uris: list[str], client_id: str | None = None,
    post_logout_redirect_uris: list[str] | None = None,
    grant_types: list[str] | None = None, scope: str = "openid profile email",
    auth_method: str = "client_secret_basic", first_party: bool = False,
    production: bool = False, minimum_acr: str | None = None,
    default_acr_values: list[str] | None = None, default_max_age: int | None = None,
    require_acr_values: bool = False,
) -> RegisteredClient:
    """Create a client; the clear secret is returned here and nowhere else."""
    grant_types = list(grant_types or ["authorization_code", "refresh_token"])
    for grant in grant_types:
        if grant not in GRANT_TYPES:
            raise InvalidRequest(f"unsupported grant type {grant!r}")
    if auth_method not in AUTH_METHODS:
        raise InvalidRequest(f"unsupported token endpoint auth method {auth_method!r}")
    if auth_method == "none" and "client_credentials" in grant_types:
        raise InvalidRequest("a public client cannot use client_credentials")
    if "authorization_code" in grant_types and not redirect_uris:
        raise InvalidRequest("an authorization_code client needs at least one redirect URI")
    uris = [validate_redirect_uri(u, production) for u in redirect_uris]
    logout_uris = [validate_redirect_uri(u, production) for u in post_logout_redirect_uris or []]
    # Hex, not base64url: an id starting with "-" would read as an option on command lines.
    client_id = client_id or secrets.token_hex(CLIENT_ID_BYTES)
    if db.session.get(Client, client_id) is not None:
        raise InvalidRequest(f"client {client_id!r} already exists")
    secret = None if auth_method == "none" else secrets.token_urlsafe(SECRET_BYTES)
    model = Client(
        client_id=client_id, name=name, secret_hash=sha256_hex(secret) if secret else None,
        redirect_uris=uris, post_logout_redirect_uris=logout_uris, grant_types=grant_types,
        scope=scope, token_endpoint_auth_method=auth_method, first_party=first_party,
        minimum_acr=minimum_acr, default_acr_values=list(default_acr_values or []),
        default_max_age=default_max_age, require_acr_values=require_acr_values,
    )
    db.session.add(model)
    db.session.commit()
    return RegisteredClient(model, secret)


def rotate_client_secret(client: Client) -> str:
    secret = secrets.token_urlsafe(SECRET_BYTES)
    client.secret_hash = sha256_hex(secret)
    db.session.commit()
    return secret
