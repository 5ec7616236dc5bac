"""The embedded SQLite database's connection settings (idp.database.enable_sqlite_pragmas)."""

from __future__ import annotations

from pathlib import Path

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
