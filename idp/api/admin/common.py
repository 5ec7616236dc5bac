"""The admin API's blueprint, its authentication and call audit, and what every resource
module shares: JSON answers, cursor pagination, path ids, ending a user's sessions."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, g, jsonify, request
from sqlalchemy.exc import SQLAlchemyError

from idp import audit, sessions
from idp.api.auth import AdminCaller, admin_caller
from idp.api.errors import NotFound, ValidationFailed, install_handlers
from idp.api.validation import Field, path_id, query_int, query_str
from idp.extensions import db, settings, store
from idp.models import User

bp = Blueprint("api_admin", __name__, url_prefix="/api/v1/admin")
install_handlers(bp)

DEFAULT_LIMIT = 50
MAX_LIMIT = 100
#: The body of a call that takes none (an empty JSON object, or no body).
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


def admin_of_request() -> AdminCaller:
    return g.admin


def json_response(body: Any, status: int = 200) -> Response:
    response = jsonify(body)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


def no_content() -> Response:
    return Response(status=204, headers={"Cache-Control": "no-store"})


# -- cursors --------------------------------------------------------------------------------

def cursor_of(key: tuple[int, Any]) -> str:
    raw = f"{key[0]}:{key[1]}".encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def cursor_key(parse: Callable[[str], Any]) -> tuple[int, Any] | None:
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


def page(rows: list[Any], limit: int, key: Callable[[Any], tuple[int, Any]],
          render: Callable[[Any], dict[str, Any]]) -> Response:
    more = len(rows) > limit
    rows = rows[:limit]
    return json_response({"data": [render(r) for r in rows],
                  "next_cursor": cursor_of(key(rows[-1])) if more and rows else None})


def page_limit() -> int:
    return int(query_int("limit", DEFAULT_LIMIT, 1, MAX_LIMIT) or DEFAULT_LIMIT)


# -- path ids shared by the user resources ---------------------------------------------------

def user_or_404(user_id: str) -> User:
    user = db.session.get(User, path_id(user_id, what="user"))
    if user is None:
        raise NotFound("No such user.")
    return user


def hex_id(value: str) -> str:
    if not re.fullmatch(r"[0-9a-f]{32}", value):
        raise ValueError(value)
    return value


def end_user_sessions(user: User) -> None:
    """Sign ``user`` out of every browser (disable, MFA reset)."""
    sessions.revoke_user_sessions(store.current, user.id, settings().session.absolute_timeout)
