"""Admin API: users (create, get, list, disable/enable, delete)."""

from __future__ import annotations

import re
from typing import Any

from flask import Response
from sqlalchemy import and_, delete, func, or_, select

from idp import audit
from idp.api.admin.common import (
    EMPTY,
    admin_of_request,
    bp,
    cursor_key,
    end_user_sessions,
    hex_id,
    json_response,
    no_content,
    page,
    page_limit,
    user_or_404,
)
from idp.api.errors import Conflict, ValidationFailed
from idp.api.validation import (
    Field,
    parse_body,
    query_str,
)
from idp.extensions import db
from idp.models import Credential, RecoveryCode, User
from idp.users import EMAIL_PATTERN, UserError, create_user, disable_user

USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,253}")
def _email(value: str) -> str | None:
    return None if EMAIL_PATTERN.match(value) else "not an email address"


CREATE_USER = {
    "username": Field(str, required=True, pattern=USERNAME),
    "password": Field(str, required=True, min_length=1, max_length=1024),
    "email": Field(str, nullable=True, max_length=254, check=_email),
    "name": Field(str, nullable=True, max_length=200),
    "email_verified": Field(bool),
}


# -- users ----------------------------------------------------------------------------------

def user_json(user: User) -> dict[str, Any]:
    return {"id": user.id, "username": user.username, "email": user.email,
            "email_verified": bool(user.email_verified), "name": user.name,
            "phone_number": user.phone_number,
            "phone_number_verified": bool(user.phone_number_verified),
            "disabled": bool(user.disabled), "created_at": user.created_at,
            "updated_at": user.updated_at}


@bp.get("/users")
def list_users() -> Response:
    limit = page_limit()
    email = query_str("email", max_length=254)
    after = cursor_key(hex_id)
    query = select(User)
    if email is not None:
        query = query.where(func.lower(User.email) == email.lower())
    if after is not None:
        query = query.where(or_(User.created_at < after[0],
                                and_(User.created_at == after[0], User.id < after[1])))
    rows = list(db.session.scalars(
        query.order_by(User.created_at.desc(), User.id.desc()).limit(limit + 1)))
    return page(rows, limit, lambda u: (u.created_at, u.id), user_json)


@bp.post("/users")
def create() -> Response:
    body = parse_body(CREATE_USER)
    try:
        user = create_user(username=body["username"], password=body["password"],
                           email=body.get("email"), name=body.get("name"),
                           email_verified=bool(body.get("email_verified", False)),
                           actor=admin_of_request().actor)
    except UserError as exc:
        field, _, message = str(exc).partition(": ")
        if message.endswith("is taken"):
            raise Conflict(f"The username {body['username']!r} is taken.") from None
        raise ValidationFailed(field, message) from None
    return json_response(user_json(user), 201)


@bp.get("/users/<user_id>")
def get_user(user_id: str) -> Response:
    return json_response(user_json(user_or_404(user_id)))


@bp.post("/users/<user_id>/disable")
def disable(user_id: str) -> Response:
    """Sign-in refused; every token revoked and every session ended."""
    parse_body(EMPTY)
    user = disable_user(user_or_404(user_id).username, actor=admin_of_request().actor)
    end_user_sessions(user)
    return json_response(user_json(user))


@bp.post("/users/<user_id>/enable")
def enable(user_id: str) -> Response:
    parse_body(EMPTY)
    user = user_or_404(user_id)
    user.disabled = False
    db.session.commit()
    audit.record("user.enabled", user_id=user.id, actor=admin_of_request().actor)
    return json_response(user_json(user))


@bp.delete("/users/<user_id>")
def delete_user(user_id: str) -> Response:
    """The user and everything that hangs off them (factors, tokens, devices, consents);
    their sessions end. Audit events stay."""
    parse_body(EMPTY)
    user = user_or_404(user_id)
    username = user.username
    end_user_sessions(user)
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    db.session.execute(delete(Credential).where(Credential.user_id == user.id))
    db.session.delete(user)
    db.session.commit()
    audit.record("user.deleted", user_id=user_id, actor=admin_of_request().actor,
                 username=username)
    return no_content()
