"""Schema management through Alembic (migrations packaged in ``idp/migrations``)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Engine

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
