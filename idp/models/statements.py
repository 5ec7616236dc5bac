"""The statements every single sign-on runs, built once (issue 7, benchmarks/README.md).

SQLAlchemy caches the compiled SQL of a statement, but building the statement object and
computing its cache key on each call costs more than running it: a primary-key read on SQLite
took 105 µs built per call and 37 µs prebuilt with bound parameters; an ORM entity read
150-170 µs, an ORM insert through the unit of work several times that. So the hot path uses
these prebuilt statements:

- rows the request only reads (a claimed code, a rotated refresh token, a validated access
  token) come back as Core rows, whose attributes are the table's column names, like the ORM
  objects' (``row.scope``, ``row.user_id``);
- codes and tokens are inserted with Core ``INSERT`` (column defaults apply as in the ORM);
- users stay ORM objects where the request may change them (sign-in, policy), read with a
  prebuilt statement; responses that only read a user (token, UserInfo, introspection) get
  its Core row (``user_row``), which skips the ORM's loading and identity map.

Every statement runs on the request's ORM session (``db.session.execute``), so it joins the
request's one transaction and commit (:func:`idp.oidc.token_response`) — or, on endpoints
that only read, runs in autocommit (:func:`reads_only`).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from sqlalchemy import Row, bindparam, insert, or_, select, update
from sqlalchemy.orm.util import identity_key

from idp.extensions import db
from idp.models.grant import AuthorizationCode, Token
from idp.models.user import User

_codes = AuthorizationCode.__table__
_tokens = Token.__table__
_users = User.__table__

_USER_BY_ID = select(User).where(User.id == bindparam("user_id"))
_USER_ROW_BY_ID = select(_users).where(_users.c.id == bindparam("user_id"))

_INSERT_CODE = insert(_codes)

#: Claim an unused code for its client: the claimed row comes back with the claim.
_CLAIM_CODE = (update(_codes)
               .where(_codes.c.code_hash == bindparam("hash"),
                      _codes.c.client_id == bindparam("client"),
                      _codes.c.used_at.is_(None))
               .values(used_at=bindparam("now"))
               .returning(*_codes.c))

_INSERT_TOKEN = insert(_tokens)

_TOKEN_BY_JTI = select(_tokens).where(_tokens.c.jti == bindparam("jti"))

#: UserInfo reads what it needs in one round trip: the access token's row and, joined, its
#: user's columns under ``_USER_PREFIX`` (the two tables share ``id``); the password
#: hash is left out, since nothing UserInfo answers needs it.
_USER_PREFIX = "user__"
_USER_CLAIM_COLUMNS = [c for c in _users.c if c.name != "password_hash"]
_TOKEN_AND_USER_BY_JTI = (
    select(_tokens, *(c.label(_USER_PREFIX + c.name) for c in _USER_CLAIM_COLUMNS))
    .select_from(_tokens.outerjoin(_users, _users.c.id == _tokens.c.user_id))
    .where(_tokens.c.jti == bindparam("jti")))

_TOKEN_BY_REFRESH_HASH = select(_tokens).where(_tokens.c.refresh_token_hash == bindparam("hash"))

#: Rotate a live refresh token of this client: the rotated row comes back with the claim.
_ROTATE_REFRESH = (update(_tokens)
                   .where(_tokens.c.refresh_token_hash == bindparam("hash"),
                          _tokens.c.client_id == bindparam("client"),
                          _tokens.c.rotated_at.is_(None),
                          _tokens.c.revoked_at.is_(None),
                          or_(_tokens.c.refresh_expires_at.is_(None),
                              _tokens.c.refresh_expires_at > bindparam("now")))
                   .values(rotated_at=bindparam("now"))
                   .returning(*_tokens.c))


def reads_only() -> None:
    """Run this request's statements without a transaction (autocommit).

    For endpoints that only read (UserInfo, introspection): a transaction costs two round trips
    of its own (``BEGIN``, then ``ROLLBACK`` at teardown) for nothing, since a single
    statement is atomic anyway and the reads need no common snapshot. A write such an
    endpoint still makes (an audit row) commits on its own. Must run before the request's
    first statement; the pool restores the connection's isolation level when it is returned.
    """
    db.session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})


def user_by_id(user_id: str) -> User | None:
    """The user (ORM object), from the session's identity map when this request has it."""
    loaded = db.session.identity_map.get(identity_key(User, user_id))
    if loaded is not None:
        return loaded  # type: ignore[no-any-return]
    return db.session.scalars(_USER_BY_ID, {"user_id": user_id}).first()


def user_row(user_id: str) -> Row[Any] | None:
    """The user's row, read only (attributes are the ``users`` columns: ``row.disabled``)."""
    return db.session.execute(_USER_ROW_BY_ID, {"user_id": user_id}).first()


def insert_code(values: dict[str, Any]) -> None:
    db.session.execute(_INSERT_CODE, values)


def claim_code(code_hash: str, client_id: str, now: int) -> Row[Any] | None:
    """UPDATE … RETURNING (PostgreSQL, SQLite ≥ 3.35): the claimed code's row, or None."""
    return db.session.execute(_CLAIM_CODE, {"hash": code_hash, "client": client_id,
                                            "now": now}).first()


def insert_token(values: dict[str, Any]) -> None:
    db.session.execute(_INSERT_TOKEN, values)


def token_by_jti(jti: str) -> Row[Any] | None:
    return db.session.execute(_TOKEN_BY_JTI, {"jti": jti}).first()


def token_and_user_by_jti(jti: str) -> Row[Any] | None:
    """The token's row (as :func:`token_by_jti`) with its user's columns joined; read the
    user with :func:`joined_user`."""
    return db.session.execute(_TOKEN_AND_USER_BY_JTI, {"jti": jti}).first()


def joined_user(row: Row[Any]) -> SimpleNamespace | None:
    """The user part of a :func:`token_and_user_by_jti` row, with the ``users`` column names as
    attributes (``user.email``); None when the token has no user or the user is gone."""
    mapping = row._mapping
    if mapping[_USER_PREFIX + "id"] is None:
        return None
    return SimpleNamespace(**{column.name: mapping[_USER_PREFIX + column.name]
                              for column in _USER_CLAIM_COLUMNS})


def token_by_refresh_hash(refresh_hash: str) -> Row[Any] | None:
    return db.session.execute(_TOKEN_BY_REFRESH_HASH, {"hash": refresh_hash}).first()


def rotate_refresh(refresh_hash: str, client_id: str, now: int) -> Row[Any] | None:
    """Mark a live (unrotated, unrevoked, unexpired) refresh token of ``client_id`` rotated;
    its row, or None when there is no such token (the caller finds out why)."""
    return db.session.execute(_ROTATE_REFRESH, {"hash": refresh_hash, "client": client_id,
                                                "now": now}).first()
