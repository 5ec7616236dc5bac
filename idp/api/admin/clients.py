"""Admin API: clients (create, get, list, update, rotate secret, delete)."""

from __future__ import annotations

import re
from typing import Any

from flask import Response, current_app
from sqlalchemy import and_, or_, select

from idp import audit, errors
from idp.api.admin.common import (
    EMPTY,
    admin_of_request,
    bp,
    cursor_key,
    json_response,
    no_content,
    page,
    page_limit,
)
from idp.api.errors import Conflict, NotFound, ValidationFailed
from idp.api.validation import (
    CLIENT_ID_PATTERN,
    Field,
    check_value,
    parse_body,
    path_id,
)
from idp.extensions import db, settings
from idp.models import Client
from idp.oidc.clients import (
    AUTH_METHODS,
    GRANT_TYPES,
    register_client,
    rotate_client_secret,
    validate_redirect_uri,
)

MAX_URIS = 20
SCOPE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+(?: [\x21\x23-\x5b\x5d-\x7e]+)*")
NEW_CLIENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~-]{0,99}")
URI = Field(str, min_length=1, max_length=2000)
ACR_VALUE = Field(str, min_length=1, max_length=200)
MAX_AGE = Field(int, nullable=True, minimum=0, maximum=10 * 365 * 86400)


CLIENT_SETTINGS = {
    "name": Field(str, min_length=1, max_length=200),
    "redirect_uris": Field(list, items=URI, max_items=MAX_URIS),
    "post_logout_redirect_uris": Field(list, items=URI, max_items=MAX_URIS),
    "scope": Field(str, max_length=1000, pattern=SCOPE),
    "minimum_acr": Field(str, nullable=True, min_length=1, max_length=200),
    "default_acr_values": Field(list, items=ACR_VALUE, max_items=10),
    "default_max_age": MAX_AGE,
    "require_acr_values": Field(bool),
}
CREATE_CLIENT = {
    **CLIENT_SETTINGS,
    "name": Field(str, required=True, min_length=1, max_length=200),
    "client_id": Field(str, pattern=NEW_CLIENT_ID),
    "grant_types": Field(list, items=Field(str, choices=GRANT_TYPES), max_items=3),
    "token_endpoint_auth_method": Field(str, choices=AUTH_METHODS),
    "first_party": Field(bool),
}
UPDATE_CLIENT = {**CLIENT_SETTINGS, "disabled": Field(bool)}




# -- clients --------------------------------------------------------------------------------

def client_json(client: Client) -> dict[str, Any]:
    return {"client_id": client.client_id, "name": client.name,
            "redirect_uris": list(client.redirect_uris or []),
            "post_logout_redirect_uris": list(client.post_logout_redirect_uris or []),
            "grant_types": list(client.grant_types or []), "scope": client.scope,
            "token_endpoint_auth_method": client.token_endpoint_auth_method,
            "first_party": bool(client.first_party), "minimum_acr": client.minimum_acr,
            "default_acr_values": list(client.default_acr_values or []),
            "default_max_age": client.default_max_age,
            "require_acr_values": bool(client.require_acr_values),
            "disabled": bool(client.disabled), "created_at": client.created_at}


def _client(client_id: str) -> Client:
    client = db.session.get(Client, path_id(client_id, CLIENT_ID_PATTERN, "client"))
    if client is None:
        raise NotFound("No such client.")
    return client


def _checked_settings(body: dict[str, Any]) -> dict[str, Any]:
    """Redirect URIs registrable (RFC 6749 §3.1.2, RFC 8252 §7) and acr values on the
    ladder; each error names its field."""
    production = settings().production
    for name in ("redirect_uris", "post_logout_redirect_uris"):
        for index, uri in enumerate(body.get(name, [])):
            try:
                validate_redirect_uri(uri, production)
            except errors.InvalidRequest as exc:
                raise ValidationFailed(f"{name}[{index}]", exc.description) from None
    ladder = current_app.extensions["idp.ladder"]
    if body.get("minimum_acr") is not None and ladder.resolve(body["minimum_acr"]) is None:
        raise ValidationFailed("minimum_acr", "not an acr value of this server")
    for index, value in enumerate(body.get("default_acr_values", [])):
        if ladder.resolve(value) is None:
            raise ValidationFailed(f"default_acr_values[{index}]",
                                   "not an acr value of this server")
    return body


@bp.get("/clients")
def list_clients() -> Response:
    limit = page_limit()
    after = cursor_key(lambda text: check_value("cursor", Field(str, pattern=CLIENT_ID_PATTERN),
                                            text))
    query = select(Client)
    if after is not None:
        query = query.where(or_(Client.created_at < after[0],
                                and_(Client.created_at == after[0],
                                     Client.client_id < after[1])))
    rows = list(db.session.scalars(
        query.order_by(Client.created_at.desc(), Client.client_id.desc()).limit(limit + 1)))
    return page(rows, limit, lambda c: (c.created_at, c.client_id), client_json)


@bp.post("/clients")
def create_client() -> Response:
    """The secret is in this response only (stored as a hash)."""
    body = _checked_settings(parse_body(CREATE_CLIENT))
    grant_types = body.get("grant_types") or ["authorization_code", "refresh_token"]
    auth_method = body.get("token_endpoint_auth_method", "client_secret_basic")
    if auth_method == "none" and "client_credentials" in grant_types:
        raise ValidationFailed("token_endpoint_auth_method",
                               "a public client cannot use client_credentials")
    if "authorization_code" in grant_types and not body.get("redirect_uris"):
        raise ValidationFailed("redirect_uris",
                               "an authorization_code client needs a redirect URI")
    if body.get("client_id") and db.session.get(Client, body["client_id"]) is not None:
        raise Conflict(f"The client {body['client_id']!r} already exists.")
    try:
        registered = register_client(
            name=body["name"], redirect_uris=body.get("redirect_uris", []),
            client_id=body.get("client_id"),
            post_logout_redirect_uris=body.get("post_logout_redirect_uris"),
            grant_types=list(dict.fromkeys(grant_types)),
            scope=body.get("scope", "openid profile email"), auth_method=auth_method,
            first_party=bool(body.get("first_party", False)), production=settings().production,
            minimum_acr=body.get("minimum_acr"),
            default_acr_values=body.get("default_acr_values"),
            default_max_age=body.get("default_max_age"),
            require_acr_values=bool(body.get("require_acr_values", False)))
    except errors.InvalidRequest as exc:
        raise ValidationFailed("(body)", exc.description) from None
    audit.record("client.created", client_id=registered.client.client_id,
                 actor=admin_of_request().actor)
    return json_response({**client_json(registered.client), "client_secret": registered.secret},
                         201)


@bp.get("/clients/<client_id>")
def get_client(client_id: str) -> Response:
    return json_response(client_json(_client(client_id)))


@bp.patch("/clients/<client_id>")
def update_client(client_id: str) -> Response:
    """Name, redirect URIs, scope, acr settings, disabled."""
    body = _checked_settings(parse_body(UPDATE_CLIENT))
    client = _client(client_id)
    if client.client_id == admin_of_request().client.client_id and (
            "scope" in body or body.get("disabled")):
        raise Conflict("A client cannot change its own scope or disable itself.")
    redirect_uris = body.get("redirect_uris", client.redirect_uris)
    if "authorization_code" in (client.grant_types or []) and not redirect_uris:
        raise ValidationFailed("redirect_uris",
                               "an authorization_code client needs a redirect URI")
    for name, value in body.items():
        setattr(client, name, value)
    db.session.commit()
    audit.record("client.updated", client_id=client.client_id, actor=admin_of_request().actor,
                 fields=sorted(body))
    return json_response(client_json(client))


@bp.post("/clients/<client_id>/secret")
def rotate_secret(client_id: str) -> Response:
    """A new secret, in this response only; the old one stops working at once."""
    parse_body(EMPTY)
    client = _client(client_id)
    if client.is_public:
        raise Conflict("A public client has no secret.")
    secret = rotate_client_secret(client)
    audit.record("client.secret_rotated", client_id=client.client_id,
                 actor=admin_of_request().actor)
    return json_response({"client_id": client.client_id, "client_secret": secret})


@bp.delete("/clients/<client_id>")
def delete_client(client_id: str) -> Response:
    """The client and its tokens, codes and consents."""
    parse_body(EMPTY)
    client = _client(client_id)
    if client.client_id == admin_of_request().client.client_id:
        raise Conflict("A client cannot delete itself.")
    db.session.delete(client)
    db.session.commit()
    audit.record("client.deleted", client_id=client_id, actor=admin_of_request().actor)
    return no_content()
