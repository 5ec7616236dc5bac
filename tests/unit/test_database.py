"""Database connection settings: the embedded SQLite database's pragmas
(idp.database.enable_sqlite_pragmas) and the PostgreSQL pool (idp._engine_options,
idp.database.drop_closed_connections)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from idp import create_app
from idp.extensions import db


def test_sqlite_connections_use_wal_full_sync_and_foreign_keys(tmp_path: Path) -> None:
    app = create_app({"database_url": f"sqlite:///{tmp_path}/pragmas.sqlite3",
                      "secret_key": "pragma-test-secret-0123456789-abcdefghij",
                      "instance_path": str(tmp_path / "instance")}, environ={})
    try:
        with app.app_context(), db.engine.connect() as conn:
            pragma = {name: conn.execute(sa.text(f"PRAGMA {name}")).scalar()
                      for name in ("journal_mode", "synchronous", "foreign_keys",
                                   "busy_timeout")}
        # synchronous 2 = FULL: every commit is durable (codes and refresh tokens work once).
        assert pragma == {"journal_mode": "wal", "synchronous": 2, "foreign_keys": 1,
                          "busy_timeout": 15000}
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def test_postgresql_pool_has_no_pre_ping_but_recycles_and_keeps_alive() -> None:
    """No ``SELECT 1`` round trip per checkout (benchmarks/README.md, session 3); closed
    connections are caught by ``drop_closed_connections`` instead (next test)."""
    from idp import PG_POOL_RECYCLE_SECONDS, _engine_options

    options = _engine_options("postgresql+psycopg://idp@db/idp")

    assert options["pool_pre_ping"] is False
    assert options["pool_recycle"] == PG_POOL_RECYCLE_SECONDS > 0
    assert options["pool_timeout"] == 5
    assert options["connect_args"] == {"connect_timeout": 5, "keepalives": 1,
                                       "keepalives_idle": 30, "keepalives_interval": 10,
                                       "keepalives_count": 3}
    assert "pool_pre_ping" not in _engine_options("sqlite:///idp.sqlite3")


@pytest.mark.skipif(not os.environ.get("IDP_TEST_DATABASE_URL", "").startswith("postgresql"),
                    reason="needs PostgreSQL (IDP_TEST_DATABASE_URL)")
def test_a_pooled_connection_the_server_ended_is_replaced_at_checkout(tmp_path: Path) -> None:
    url = os.environ["IDP_TEST_DATABASE_URL"]
    app = create_app({"database_url": url, "instance_path": str(tmp_path / "instance"),
                      "secret_key": "pool-test-secret-0123456789-abcdefghijkl"}, environ={})
    admin = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with app.app_context():
            with db.engine.connect() as conn:  # back into the pool, idle
                ended = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar()
            with admin.connect() as other:
                assert other.execute(sa.text("SELECT pg_terminate_backend(:pid)"),
                                     {"pid": ended}).scalar()
            _wait_until_gone(admin, ended)

            with db.engine.connect() as conn:
                pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar()
        assert pid != ended
    finally:
        admin.dispose()
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def _wait_until_gone(admin: sa.Engine, pid: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with admin.connect() as conn:
            if not conn.execute(sa.text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"),
                                {"pid": pid}).scalar():
                return
        time.sleep(0.05)
    raise AssertionError(f"backend {pid} still there")
