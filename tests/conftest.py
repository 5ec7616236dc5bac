"""Shared fixtures.

Back ends: SQLite + in-process store by default; PostgreSQL and/or Redis when
IDP_TEST_DATABASE_URL / IDP_TEST_REDIS_URL are set (CI runs the suite both ways).
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text
from werkzeug.serving import make_server

from idp import create_app
from idp.extensions import db
from tests.helpers.buffered_wsgi import buffered

TEST_SECRET = "test-secret-key-0123456789-abcdefghijklmnop"
DATABASE_URL = os.environ.get("IDP_TEST_DATABASE_URL")
REDIS_URL = os.environ.get("IDP_TEST_REDIS_URL")

pytest_plugins = ["tests.helpers.rp"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def base_overrides(tmp_path: Any, port: int) -> dict[str, Any]:
    return {
        "issuer": f"http://localhost:{port}",
        "secret_key": TEST_SECRET,
        "instance_path": str(tmp_path / "instance"),
        "database_url": DATABASE_URL or f"sqlite:///{tmp_path}/idp.sqlite3",
        "redis_url": REDIS_URL,
        "store_namespace": f"test-{uuid.uuid4().hex}",
        # Cheaper argon2 in tests; production defaults are tested in tests/unit/factors.
        "password": {"time_cost": 1, "memory_cost": 8192, "parallelism": 1},
        "keys": {"rsa_bits": 2048},
    }


_schema_ready: set[str] = set()


def prepare_database(app: Any) -> None:
    """A clean schema per test: create_all on a fresh SQLite file; on PostgreSQL migrate once,
    then truncate every table."""
    with app.app_context():
        url = app.config["SQLALCHEMY_DATABASE_URI"]
        if url.startswith("sqlite"):
            db.create_all()
            return
        if url not in _schema_ready:
            with db.engine.begin() as conn:
                conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
            from idp import database

            database.upgrade(app)
            _schema_ready.add(url)
        tables = ", ".join(t.name for t in db.metadata.sorted_tables)
        with db.engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


def build_app(tmp_path: Any, port: int, **overrides: Any) -> Any:
    config = base_overrides(tmp_path, port)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    app = create_app(config, environ={})
    app.config["TESTING"] = True
    prepare_database(app)
    with app.app_context():
        from idp import oidc

        oidc.keyring().ensure()
    return app


class _RSAKeyPool:
    """RSA key generation dominates app set-up; tests draw from a pool generated once per
    session (distinct keys, cycled far beyond what one test rotates through)."""

    SIZE = 24

    def __init__(self) -> None:
        from joserfc.jwk import RSAKey

        self._real = RSAKey
        self._keys: list[Any] = []
        self._next = 0

    def generate_key(self, key_size: int = 2048, parameters: Any = None,
                     private: bool = True, auto_kid: bool = False) -> Any:
        if len(self._keys) < self.SIZE:
            self._keys.append(self._real.generate_key(key_size, private=True))
        raw = self._keys[self._next % len(self._keys)]
        self._next += 1
        # Same native key, new JWK parameters: no re-validation of the RSA numbers.
        return self._real(raw.raw_value, raw.raw_value, dict(parameters or {}))

    def import_key(self, *args: Any, **kwargs: Any) -> Any:
        return self._real.import_key(*args, **kwargs)


@pytest.fixture(autouse=True, scope="session")
def _fast_rsa_keys() -> Iterator[None]:
    import idp.oidc.keys as keys_module

    original = keys_module.RSAKey
    keys_module.RSAKey = _RSAKeyPool()  # type: ignore[assignment]
    yield
    keys_module.RSAKey = original


@pytest.fixture
def app_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Settings for every app a test builds: per test through indirect parametrization
    (``@pytest.mark.parametrize("app_overrides", [...], indirect=True)``), or override the
    fixture in a test module; none by default."""
    return getattr(request, "param", {})


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def app(tmp_path: Any, port: int, app_overrides: dict[str, Any]) -> Iterator[Any]:
    app = build_app(tmp_path, port, **app_overrides)
    yield app
    store = app.extensions["idp.store"]
    if hasattr(store, "flush_namespace"):
        store.flush_namespace()
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


class LiveServer:
    def __init__(self, app: Any, port: int) -> None:
        self.app = app
        self.port = port
        self.url = f"http://localhost:{port}"
        self._server = make_server("127.0.0.1", port, buffered(app), threaded=True)
        # A short poll interval: shutdown() waits for the loop to notice (default 0.5 s).
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)

    def start(self) -> LiveServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(5)


@pytest.fixture
def live_server(app: Any, port: int) -> Iterator[LiveServer]:
    server = LiveServer(app, port).start()
    yield server
    server.stop()
