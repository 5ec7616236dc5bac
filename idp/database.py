"""The SQLAlchemy adapter: schema management through Alembic (migrations packaged in
``idp/migrations``), engine settings, and the session watchers in-process caches use."""

from __future__ import annotations

import select
from collections.abc import Callable, Sequence
from typing import Any

from alembic import command
from alembic.config import Config
from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import ORMExecuteState, Session

from idp.extensions import db


def alembic_config(app: Flask) -> Config:
    config = Config()
    config.set_main_option("script_location", "idp:migrations")
    config.set_main_option("sqlalchemy.url",
                           app.config["SQLALCHEMY_DATABASE_URI"].replace("%", "%%"))
    config.attributes["engine"] = db.engine
    return config


def upgrade(app: Flask, revision: str = "head") -> None:
    """Bring the database schema to ``revision`` (idempotent)."""
    with app.app_context():
        command.upgrade(alembic_config(app), revision)


def enable_sqlite_pragmas(engine: Engine) -> None:
    """WAL and foreign keys for the embedded SQLite database (concurrent readers, one writer)."""
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: object, _record: object) -> None:
        cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL (not NORMAL): a commit must survive a power cut, or a redeemed code or a
        # rotated refresh token could become usable again. WAL needs one fsync per commit.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=15000")
        cursor.close()


def drop_closed_connections(engine: Engine) -> None:
    """PostgreSQL: a pooled connection the server has closed is replaced at checkout, without
    the round trip of ``pool_pre_ping`` (one ``SELECT 1`` per request, benchmarks/README.md).

    An idle connection has nothing to read; when the server ends it (restart, crash recovery,
    ``idle_session_timeout``, ``pg_terminate_backend``) its socket turns readable (the
    termination notice, then EOF). A zero-timeout ``poll`` sees that locally, and raising
    ``DisconnectionError`` from the ``checkout`` event makes the pool discard the connection
    and hand out a new one (SQLAlchemy "Disconnect Handling - Pessimistic", custom variant).
    A peer that vanished without closing (a network partition) is not seen here: TCP
    keepalives and the statement's own failure cover it, and SQLAlchemy then invalidates the
    whole pool (every connection older than the error is replaced).
    """
    if engine.dialect.name != "postgresql":
        return

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_connection: object, _record: object, _proxy: object) -> None:
        if server_closed(dbapi_connection):
            raise DisconnectionError("the server closed this pooled connection")


def server_closed(dbapi_connection: object) -> bool:
    """Whether an idle psycopg connection is closed, or has unread input (which on an idle
    connection only an ending server sends)."""
    if getattr(dbapi_connection, "closed", False):
        return True
    try:
        fd = dbapi_connection.pgconn.socket  # type: ignore[attr-defined]
    except Exception:  # psycopg raises OperationalError once the connection is gone
        return True
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP)
    return bool(poller.poll(0))


# -- watching a session for changes to one model (in-process caches and memos) ---------------

def pending_of(session: Session, model: type) -> list[Any]:
    """The instances of ``model`` that ``session`` will insert, update or delete at its next
    flush."""
    return [o for o in (*session.new, *session.dirty, *session.deleted) if isinstance(o, model)]


def bulk_changes(state: ORMExecuteState, model: type) -> bool:
    """Whether an ORM statement is a bulk UPDATE or DELETE of ``model``'s table (it changes
    rows without loading them, so no flush shows it)."""
    return (state.is_update or state.is_delete) and any(
        m.class_ is model for m in state.all_mappers)


def listen_on_every_session(hooks: Sequence[tuple[str, Callable[..., Any]]]) -> None:
    """Attach ``(event name, listener)`` pairs to every SQLAlchemy session, once per process
    however many apps are created."""
    for name, hook in hooks:
        if not event.contains(Session, name, hook):
            event.listen(Session, name, hook)
