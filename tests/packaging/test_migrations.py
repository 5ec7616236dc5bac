"""The packaged Alembic migrations build exactly the schema the models declare.

SQLite always; PostgreSQL too when IDP_TEST_DATABASE_URL is set, in a throwaway schema (via the
connection's search_path) so the suite's own ``public`` schema is never touched.
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Flask

from idp import create_app, database
from idp.extensions import db

SECRET_KEY = "migration-test-secret-0123456789-abcdefgh"
PG_URL = os.environ.get("IDP_TEST_DATABASE_URL")


def make_app(url: str, tmp_path: Path) -> Flask:
    return create_app({"database_url": url, "secret_key": SECRET_KEY,
                       "instance_path": str(tmp_path / "instance")}, environ={})


def differences(app: Flask) -> list[Any]:
    with app.app_context(), db.engine.connect() as conn, warnings.catch_warnings():
        # SQLAlchemy cannot reflect SQLite expression indexes (it says so and skips them);
        # test_expression_indexes_exist checks those directly.
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based",
                                category=sa.exc.SAWarning)
        warnings.filterwarnings("ignore", "autogenerate skipping metadata-specified expression",
                                category=UserWarning)
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True})
        return compare_metadata(context, db.metadata)


def expression_indexes() -> set[str]:
    return {index.name for table in db.metadata.sorted_tables for index in table.indexes
            if any(not isinstance(expr, sa.Column) for expr in index.expressions)}


def index_names(app: Flask) -> set[str]:
    """Every index in the database, expression indexes included (read from the catalogue)."""
    with app.app_context(), db.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            rows = conn.execute(sa.text("SELECT name FROM sqlite_master WHERE type = 'index'"))
        else:
            rows = conn.execute(sa.text(
                "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"))
        return {row[0] for row in rows}


def describe(diffs: list[Any]) -> str:
    """One line per difference; whole tables by name only."""
    lines = []
    for diff in diffs:
        if isinstance(diff, tuple) and diff and diff[0] in ("add_table", "remove_table"):
            lines.append(f"{diff[0]} {diff[1].name}")
        else:
            lines.append(repr(diff))
    return "migrations differ from the models:\n" + "\n".join(lines)


def assert_no_differences(app: Flask) -> None:
    diffs = differences(app)
    assert diffs == [], describe(diffs)


def current_revision(app: Flask) -> str | None:
    with app.app_context(), db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def table_names(app: Flask) -> set[str]:
    with app.app_context():
        return set(sa.inspect(db.engine).get_table_names())


def model_tables() -> set[str]:
    return {table.name for table in db.metadata.sorted_tables}


def dispose(app: Flask) -> None:
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def sqlite_app(tmp_path: Path) -> Iterator[Flask]:
    app = make_app(f"sqlite:///{tmp_path}/migrations.sqlite3", tmp_path)
    yield app
    dispose(app)


@pytest.fixture
def postgres_app(tmp_path: Path) -> Iterator[Flask]:
    if not PG_URL:
        pytest.skip("IDP_TEST_DATABASE_URL is not set")
    schema = f"migtest_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_URL)
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        url = sa.make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
        app = make_app(url.render_as_string(hide_password=False), tmp_path)
        try:
            with app.app_context(), db.engine.connect() as conn:
                assert conn.execute(sa.text("SELECT current_schema()")).scalar() == schema
            yield app
        finally:
            dispose(app)
            with admin.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        admin.dispose()


def test_single_head(tmp_path: Path) -> None:
    app = make_app("sqlite:///:memory:", tmp_path)
    try:
        with app.app_context():
            heads = ScriptDirectory.from_config(database.alembic_config(app)).get_heads()
        assert len(heads) == 1, heads
    finally:
        dispose(app)


def check_migrations_match_models(app: Flask) -> None:
    # The comparison is not vacuous: on an empty database it reports every model table.
    missing = differences(app)
    assert {diff[1].name for diff in missing if diff[0] == "add_table"} == model_tables()

    database.upgrade(app)
    with app.app_context():
        head = ScriptDirectory.from_config(database.alembic_config(app)).get_current_head()
    assert current_revision(app) == head
    assert_no_differences(app)
    assert table_names(app) == model_tables() | {"alembic_version"}
    assert expression_indexes() <= index_names(app)

    database.upgrade(app)  # idempotent
    assert current_revision(app) == head
    assert_no_differences(app)


def check_downgrade_then_upgrade(app: Flask) -> None:
    database.upgrade(app)
    with app.app_context():
        command.downgrade(database.alembic_config(app), "base")
    assert current_revision(app) is None
    assert table_names(app) == {"alembic_version"}

    database.upgrade(app)
    assert_no_differences(app)
    assert table_names(app) == model_tables() | {"alembic_version"}


def check_usernames_unique_regardless_of_case(app: Flask) -> None:
    """The migrated schema itself refuses a username differing only in case."""
    assert "uq_users_username_lower" in expression_indexes()
    database.upgrade(app)
    insert = sa.text("INSERT INTO users (id, username, email_verified, phone_number_verified,"
                     " disabled, logins_without_mfa, created_at, updated_at)"
                     " VALUES (:id, :name, false, false, false, 0, 0, 0)")
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(insert, {"id": "a" * 32, "name": "Alice"})
    with app.app_context(), pytest.raises(sa.exc.IntegrityError), db.engine.begin() as conn:
        conn.execute(insert, {"id": "b" * 32, "name": "aLICE"})


def test_sqlite_usernames_unique_regardless_of_case(sqlite_app: Flask) -> None:
    check_usernames_unique_regardless_of_case(sqlite_app)


def test_postgresql_usernames_unique_regardless_of_case(postgres_app: Flask) -> None:
    check_usernames_unique_regardless_of_case(postgres_app)


def test_sqlite_migrations_match_models(sqlite_app: Flask) -> None:
    check_migrations_match_models(sqlite_app)


def test_sqlite_downgrade_base_then_upgrade_head(sqlite_app: Flask) -> None:
    check_downgrade_then_upgrade(sqlite_app)


def test_postgresql_migrations_match_models(postgres_app: Flask) -> None:
    check_migrations_match_models(postgres_app)


def test_postgresql_downgrade_base_then_upgrade_head(postgres_app: Flask) -> None:
    check_downgrade_then_upgrade(postgres_app)
