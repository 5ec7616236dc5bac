"""Admin API, ``/api/v1/admin/…`` — for operators, with a client-credentials token holding
``idp:admin`` (``idp.api.auth``).

Users (create, get, list, disable/enable, delete), their factors (list, remove, reset all),
their remembered devices (list, forget), clients (create, get, list, update, rotate secret,
delete) and the audit trail (query). Every call is audited as ``admin.api_call`` with the
calling client as actor (``client:<client_id>``), whatever its outcome; changes are audited
under their own event type as well (``mfa.factor_removed``, ``mfa.factor_admin_reset``, …).

Lists are newest first with stable cursor pagination: users by ``(created_at, id)``, audit
events by ``(at, id)``; the cursor is opaque (it encodes the last row's key), so rows written
while a client pages never shift a page.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request
from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.exc import SQLAlchemyError

from idp import audit, errors, sessions
from idp.api.aal import api_type
from idp.api.auth import AdminCaller, admin_caller
from idp.api.errors import Conflict, NotFound, ValidationFailed, install_handlers
from idp.api.validation import (
    CLIENT_ID_PATTERN,
    Field,
    check_value,
    parse_body,
    path_id,
    query_int,
    query_str,
)
from idp.extensions import db, settings, store
from idp.factors.service import MfaService
from idp.models import AuditEvent, Client, Credential, Device, RecoveryCode, User
from idp.oidc.clients import (
    AUTH_METHODS,
    GRANT_TYPES,
    register_client,
    rotate_client_secret,
    validate_redirect_uri,
)
from idp.oidc.tokens import revoke_user_tokens
from idp.policy import devices
from idp.users import EMAIL_PATTERN, UserError, create_user, disable_user

bp = Blueprint("api_admin", __name__, url_prefix="/api/v1/admin")
install_handlers(bp)

DEFAULT_LIMIT = 50
MAX_LIMIT = 100
MAX_URIS = 20
USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,253}")
SCOPE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+(?: [\x21\x23-\x5b\x5d-\x7e]+)*")
NEW_CLIENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~-]{0,99}")
URI = Field(str, min_length=1, max_length=2000)
ACR_VALUE = Field(str, min_length=1, max_length=200)
MAX_AGE = Field(int, nullable=True, minimum=0, maximum=10 * 365 * 86400)


def _email(value: str) -> str | None:
    return None if EMAIL_PATTERN.match(value) else "not an email address"


CREATE_USER = {
    "username": Field(str, required=True, pattern=USERNAME),
    "password": Field(str, required=True, min_length=1, max_length=1024),
    "email": Field(str, nullable=True, max_length=254, check=_email),
    "name": Field(str, nullable=True, max_length=200),
    "email_verified": Field(bool),
}
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
EMPTY: dict[str, Field] = {}


# -- authentication and the audit of every call ---------------------------------------------

@bp.before_request
def authenticate() -> None:
    g.admin = admin_caller()


@bp.after_request
def audit_call(response: Response) -> Response:
    """Every authenticated admin call leaves an ``admin.api_call`` event, success or not."""
    caller: AdminCaller | None = g.get("admin")
    if caller is not None:
        try:
            if not db.session.is_active:
                db.session.rollback()
            audit.record("admin.api_call", client_id=caller.client.client_id,
                         actor=caller.actor, method=request.method, path=request.path,
                         status=response.status_code)
        except SQLAlchemyError:
            db.session.rollback()
            raise
    return response


def _caller() -> AdminCaller:
    return g.admin


def _json(body: Any, status: int = 200) -> Response:
    response = jsonify(body)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


def _no_content() -> Response:
    return Response(status=204, headers={"Cache-Control": "no-store"})


# -- cursors --------------------------------------------------------------------------------

def _cursor(key: tuple[int, Any]) -> str:
    raw = f"{key[0]}:{key[1]}".encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _after(parse: Callable[[str], Any]) -> tuple[int, Any] | None:
    """The key the ``cursor`` query parameter encodes; 422 when it is not one of ours."""
    raw = query_str("cursor", max_length=200)
    if raw is None:
        return None
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode("ascii")
        first, _, second = text.partition(":")
        if not re.fullmatch(r"[0-9]{1,18}", first):
            raise ValueError(text)
        return int(first), parse(second)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValidationFailed("cursor", "is not a cursor from a previous page") from None


def _page(rows: list[Any], limit: int, key: Callable[[Any], tuple[int, Any]],
          render: Callable[[Any], dict[str, Any]]) -> Response:
    more = len(rows) > limit
    rows = rows[:limit]
    return _json({"data": [render(r) for r in rows],
                  "next_cursor": _cursor(key(rows[-1])) if more and rows else None})


def _limit() -> int:
    return int(query_int("limit", DEFAULT_LIMIT, 1, MAX_LIMIT) or DEFAULT_LIMIT)


# -- users ----------------------------------------------------------------------------------

def user_json(user: User) -> dict[str, Any]:
    return {"id": user.id, "username": user.username, "email": user.email,
            "email_verified": bool(user.email_verified), "name": user.name,
            "phone_number": user.phone_number,
            "phone_number_verified": bool(user.phone_number_verified),
            "disabled": bool(user.disabled), "created_at": user.created_at,
            "updated_at": user.updated_at}


def _user(user_id: str) -> User:
    user = db.session.get(User, path_id(user_id, what="user"))
    if user is None:
        raise NotFound("No such user.")
    return user


def _hex_id(value: str) -> str:
    if not re.fullmatch(r"[0-9a-f]{32}", value):
        raise ValueError(value)
    return value


@bp.get("/users")
def list_users() -> Response:
    limit = _limit()
    email = query_str("email", max_length=254)
    after = _after(_hex_id)
    query = select(User)
    if email is not None:
        query = query.where(func.lower(User.email) == email.lower())
    if after is not None:
        query = query.where(or_(User.created_at < after[0],
                                and_(User.created_at == after[0], User.id < after[1])))
    rows = list(db.session.scalars(
        query.order_by(User.created_at.desc(), User.id.desc()).limit(limit + 1)))
    return _page(rows, limit, lambda u: (u.created_at, u.id), user_json)


@bp.post("/users")
def create() -> Response:
    body = parse_body(CREATE_USER)
    try:
        user = create_user(username=body["username"], password=body["password"],
                           email=body.get("email"), name=body.get("name"),
                           email_verified=bool(body.get("email_verified", False)),
                           actor=_caller().actor)
    except UserError as exc:
        field, _, message = str(exc).partition(": ")
        if message.endswith("is taken"):
            raise Conflict(f"The username {body['username']!r} is taken.") from None
        raise ValidationFailed(field, message) from None
    return _json(user_json(user), 201)


@bp.get("/users/<user_id>")
def get_user(user_id: str) -> Response:
    return _json(user_json(_user(user_id)))


def _revoke_sessions(user: User) -> None:
    sessions.revoke_user_sessions(store.current, user.id, settings().session.absolute_timeout)


@bp.post("/users/<user_id>/disable")
def disable(user_id: str) -> Response:
    """Sign-in refused; every token revoked and every session ended."""
    parse_body(EMPTY)
    user = disable_user(_user(user_id).username, actor=_caller().actor)
    _revoke_sessions(user)
    return _json(user_json(user))


@bp.post("/users/<user_id>/enable")
def enable(user_id: str) -> Response:
    parse_body(EMPTY)
    user = _user(user_id)
    user.disabled = False
    db.session.commit()
    audit.record("user.enabled", user_id=user.id, actor=_caller().actor)
    return _json(user_json(user))


@bp.delete("/users/<user_id>")
def delete_user(user_id: str) -> Response:
    """The user and everything that hangs off them (factors, tokens, devices, consents);
    their sessions end. Audit events stay."""
    parse_body(EMPTY)
    user = _user(user_id)
    username = user.username
    _revoke_sessions(user)
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    db.session.execute(delete(Credential).where(Credential.user_id == user.id))
    db.session.delete(user)
    db.session.commit()
    audit.record("user.deleted", user_id=user_id, actor=_caller().actor,
                 username=username)
    return _no_content()


# -- a user's factors and devices -----------------------------------------------------------

def factor_json(credential: Credential) -> dict[str, Any]:
    return {"id": credential.id, "type": api_type(credential.method),
            "friendly_name": credential.name, "status": credential.status,
            "created_at": credential.created_at, "last_used_at": credential.last_used_at}


@bp.get("/users/<user_id>/factors")
def list_factors(user_id: str) -> Response:
    user = _user(user_id)
    return _json({"data": [factor_json(c) for c in
                           MfaService().credentials(user, verified_only=False)]})


@bp.delete("/users/<user_id>/factors/<factor_id>")
def remove_factor(user_id: str, factor_id: str) -> Response:
    """Audited as ``mfa.factor_removed`` with the admin client as actor."""
    parse_body(EMPTY)
    user = _user(user_id)
    service = MfaService()
    credential = service.credential(user, path_id(factor_id, what="factor"))
    service.remove(user, credential, actor=_caller().actor)
    return _no_content()


@bp.post("/users/<user_id>/mfa/reset")
def reset_mfa(user_id: str) -> Response:
    """Every factor and recovery code removed, remembered devices forgotten (they stand in for
    a second factor), every token revoked (refresh tokens included) and every session ended;
    audited as ``mfa.factor_admin_reset``."""
    parse_body(EMPTY)
    caller = _caller()
    user = _user(user_id)
    factors = list(db.session.scalars(select(Credential).where(Credential.user_id == user.id)))
    codes = db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    db.session.execute(delete(Credential).where(Credential.user_id == user.id))
    tokens_revoked = revoke_user_tokens(user.id)
    db.session.commit()
    forgotten = devices.remembered(user)
    for device in forgotten:
        devices.forget(device, actor=caller.actor)
    _revoke_sessions(user)
    result = {"user_id": user.id, "factors_removed": len(factors),
              "recovery_codes_removed": int(codes.rowcount or 0),
              "devices_forgotten": len(forgotten), "tokens_revoked": tokens_revoked,
              "sessions_revoked": True}
    audit.record("mfa.factor_admin_reset", user_id=user.id, client_id=caller.client.client_id,
                 actor=caller.actor, factor_ids=[f.id for f in factors],
                 **{k: v for k, v in result.items() if k != "user_id"})
    return _json(result)


def device_json(device: Device) -> dict[str, Any]:
    return {"id": device.id, "label": device.label, "created_at": device.created_at,
            "last_seen_at": device.last_seen_at, "remembered_until": device.remembered_until}


@bp.get("/users/<user_id>/devices")
def list_devices(user_id: str) -> Response:
    """The user's remembered devices (those that stand in for a second factor)."""
    return _json({"data": [device_json(d) for d in devices.remembered(_user(user_id))]})


@bp.delete("/users/<user_id>/devices/<device_id>")
def forget_device(user_id: str, device_id: str) -> Response:
    parse_body(EMPTY)
    user = _user(user_id)
    device = db.session.get(Device, path_id(device_id, what="device"))
    if device is None or device.user_id != user.id or device not in devices.remembered(user):
        raise NotFound("No such remembered device.")
    devices.forget(device, actor=_caller().actor)
    return _no_content()


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
    limit = _limit()
    after = _after(lambda text: check_value("cursor", Field(str, pattern=CLIENT_ID_PATTERN),
                                            text))
    query = select(Client)
    if after is not None:
        query = query.where(or_(Client.created_at < after[0],
                                and_(Client.created_at == after[0],
                                     Client.client_id < after[1])))
    rows = list(db.session.scalars(
        query.order_by(Client.created_at.desc(), Client.client_id.desc()).limit(limit + 1)))
    return _page(rows, limit, lambda c: (c.created_at, c.client_id), client_json)


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
                 actor=_caller().actor)
    return _json({**client_json(registered.client), "client_secret": registered.secret}, 201)


@bp.get("/clients/<client_id>")
def get_client(client_id: str) -> Response:
    return _json(client_json(_client(client_id)))


@bp.patch("/clients/<client_id>")
def update_client(client_id: str) -> Response:
    """Name, redirect URIs, scope, acr settings, disabled."""
    body = _checked_settings(parse_body(UPDATE_CLIENT))
    client = _client(client_id)
    if client.client_id == _caller().client.client_id and (
            "scope" in body or body.get("disabled")):
        raise Conflict("A client cannot change its own scope or disable itself.")
    redirect_uris = body.get("redirect_uris", client.redirect_uris)
    if "authorization_code" in (client.grant_types or []) and not redirect_uris:
        raise ValidationFailed("redirect_uris",
                               "an authorization_code client needs a redirect URI")
    for name, value in body.items():
        setattr(client, name, value)
    db.session.commit()
    audit.record("client.updated", client_id=client.client_id, actor=_caller().actor,
                 fields=sorted(body))
    return _json(client_json(client))


@bp.post("/clients/<client_id>/secret")
def rotate_secret(client_id: str) -> Response:
    """A new secret, in this response only; the old one stops working at once."""
    parse_body(EMPTY)
    client = _client(client_id)
    if client.is_public:
        raise Conflict("A public client has no secret.")
    secret = rotate_client_secret(client)
    audit.record("client.secret_rotated", client_id=client.client_id, actor=_caller().actor)
    return _json({"client_id": client.client_id, "client_secret": secret})


@bp.delete("/clients/<client_id>")
def delete_client(client_id: str) -> Response:
    """The client and its tokens, codes and consents."""
    parse_body(EMPTY)
    client = _client(client_id)
    if client.client_id == _caller().client.client_id:
        raise Conflict("A client cannot delete itself.")
    db.session.delete(client)
    db.session.commit()
    audit.record("client.deleted", client_id=client_id, actor=_caller().actor)
    return _no_content()


# -- audit ----------------------------------------------------------------------------------

def event_json(event: AuditEvent) -> dict[str, Any]:
    return {"id": event.id, "at": event.at, "type": event.type, "user_id": event.user_id,
            "client_id": event.client_id, "ip": event.ip, "actor": event.actor,
            "data": event.data or {}}


@bp.get("/audit-events")
def list_audit_events() -> Response:
    """Newest first by ``(at, id)``; filters: ``type``, ``user_id``, ``client_id``, ``since``
    and ``until`` (epoch seconds, inclusive)."""
    limit = _limit()
    query = select(AuditEvent)
    for name, column, length in (("type", AuditEvent.type, 64),
                                 ("user_id", AuditEvent.user_id, 100),
                                 ("client_id", AuditEvent.client_id, 100)):
        value = query_str(name, max_length=length)
        if value is not None:
            query = query.where(column == value)
    since = query_int("since", minimum=0, maximum=2 ** 53)
    until = query_int("until", minimum=0, maximum=2 ** 53)
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    if until is not None:
        query = query.where(AuditEvent.at <= until)
    after = _after(lambda text: int(check_value("cursor", Field(
        str, pattern=re.compile(r"[0-9]{1,18}")), text)))
    if after is not None:
        query = query.where(or_(AuditEvent.at < after[0],
                                and_(AuditEvent.at == after[0], AuditEvent.id < after[1])))
    rows = list(db.session.scalars(
        query.order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(limit + 1)))
    return _page(rows, limit, lambda e: (e.at, e.id), event_json)


__all__ = ["bp"]
