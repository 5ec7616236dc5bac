"""Everything OAuth/OIDC that touches authlib lives in this package (DESIGN §2).

``init_app`` builds the authorization server with our grants and endpoints; the functions
below are what the views call, so no view imports authlib.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote_plus

from authlib.integrations.flask_oauth2 import AuthorizationServer
from flask import Flask, Response, current_app, request

from idp.config import access_token_alg
from idp.oidc import client_cache
from idp.oidc.authorization import AuthorizationRequest, parse_authorization_request
from idp.oidc.client_cache import ClientCache
from idp.oidc.clients import committed_for_client, load_client
from idp.oidc.endpoints import IntrospectionEndpoint, RevocationEndpoint
from idp.oidc.grants import (
    AuthorizationCodeGrant,
    ClientCredentialsGrant,
    OpenIDCode,
    RefreshIdToken,
    RefreshTokenGrant,
    S256CodeChallenge,
)
from idp.oidc.keys import KeyRing
from idp.oidc.tokens import AccessTokenGenerator

__all__ = ["AuthorizationRequest", "init_app"]


def init_app(app: Flask) -> None:
    settings = app.extensions["idp.settings"]
    token_ttls = settings.tokens
    keyring = KeyRing(
        master_secret=app.config["SECRET_KEY"],
        algorithms=list(settings.keys.algorithms),
        rsa_bits=settings.keys.rsa_bits,
        # A retired key stays published until every token it signed has expired.
        retire_after=max(token_ttls.id_token_ttl, token_ttls.access_token_ttl) + 60,
    )
    client_cache.install()
    app.extensions["idp.client_cache"] = ClientCache(settings.oidc.client_cache_ttl)
    server = AuthorizationServer()
    server.init_app(app, query_client=load_client)
    server.register_token_generator("default", AccessTokenGenerator(
        issuer=settings.issuer, keyring=keyring, alg=access_token_alg(settings.keys),
        expires_in={"default": token_ttls.access_token_ttl,
                    "client_credentials": token_ttls.client_credentials_ttl},
        audience=list(token_ttls.access_token_audience),
    ))
    server.register_grant(AuthorizationCodeGrant,
                          [S256CodeChallenge(required=True), OpenIDCode(keyring)])
    server.register_grant(RefreshTokenGrant, [RefreshIdToken(keyring)])
    server.register_grant(ClientCredentialsGrant)
    server.register_endpoint(IntrospectionEndpoint(server, keyring))
    server.register_endpoint(RevocationEndpoint(server, keyring))
    app.extensions["idp.oauth_server"] = server
    app.extensions["idp.keyring"] = keyring


def _server() -> AuthorizationServer:
    return current_app.extensions["idp.oauth_server"]


def keyring() -> KeyRing:
    return current_app.extensions["idp.keyring"]


def token_response() -> Response:
    """The token endpoint (RFC 6749 §3.2): the grant's work is one transaction, committed once
    here, error answers included (see :mod:`idp.oidc.grants`). An unexpected exception
    propagates uncommitted: the request fails and nothing it claimed or issued is kept."""
    basic = request.authorization
    # RFC 6749 §2.3.1: the Basic user name is the form-urlencoded client_id.
    with committed_for_client(unquote_plus(basic.username) if basic and basic.username
                              else request.form.get("client_id")):
        response = _server().create_token_response()
    return response


def introspection_response() -> Response:
    return _server().create_endpoint_response(IntrospectionEndpoint.ENDPOINT_NAME)


def revocation_response() -> Response:
    return _server().create_endpoint_response(RevocationEndpoint.ENDPOINT_NAME)


def parse_authorization(multi: Sequence[tuple[str, str]]) -> tuple[AuthorizationRequest, Any]:
    issuer = current_app.extensions["idp.settings"].issuer
    return parse_authorization_request(multi, _server(), f"{issuer}/authorize")
