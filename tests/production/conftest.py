"""Fixtures for the production tests: this suite's own PostgreSQL and Redis servers.

Session-scoped and torn down at the end; a test that stops one gets it started again by the
fixture of the next test (``postgres``/``redis_server`` make sure it runs). Missing binaries
skip these tests on a developer's machine and fail them in CI (env CI set).
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.production.services import (
    IdpServer,
    PostgresServer,
    RedisServer,
    idp_env,
    port_open,
    run_idp,
)

_databases = itertools.count(1)


@pytest.fixture(scope="session")
def _postgres_cluster() -> Iterator[PostgresServer]:
    server = PostgresServer().create()
    try:
        server.start()
        yield server
    finally:
        server.destroy()


@pytest.fixture(scope="session")
def _redis_instance() -> Iterator[RedisServer]:
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres(_postgres_cluster: PostgresServer) -> PostgresServer:
    """This suite's PostgreSQL, running (a previous test may have stopped it)."""
    if not port_open(_postgres_cluster.port):
        _postgres_cluster.start()
    return _postgres_cluster


@pytest.fixture
def redis_server(_redis_instance: RedisServer) -> RedisServer:
    """This suite's Redis, running (a previous test may have stopped it)."""
    if _redis_instance.proc is None or not _redis_instance.ping():
        if _redis_instance.proc is not None:
            _redis_instance.stop()
        _redis_instance.start()
    return _redis_instance


@pytest.fixture
def database_url(postgres: PostgresServer) -> str:
    """A fresh database in this suite's PostgreSQL."""
    name = f"idp_{next(_databases)}_{uuid.uuid4().hex[:8]}"
    postgres.create_database(name)
    return postgres.url(name)


class Deployment:
    """What the scale-out and failure tests share: an initialised database and the
    environment every ``idp`` process of the test gets."""

    def __init__(self, home: Path, database_url: str, redis_url: str, issuer: str,
                 **extra: str) -> None:
        self.home = home
        self.env = idp_env(home, database_url, redis_url, issuer,
                           IDP_STORE_NAMESPACE=f"prod-{uuid.uuid4().hex[:12]}", **extra)
        self.servers: list[IdpServer] = []

    def init(self) -> str:
        return run_idp(self.env, "init")

    def idp(self, *args: str) -> str:
        return run_idp(self.env, *args)

    def serve(self, workers: int = 2, port: int | None = None) -> IdpServer:
        server = IdpServer(self.env, workers=workers) if port is None else \
            IdpServer(self.env, workers=workers, port=port)
        self.servers.append(server)
        return server.start()

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


@pytest.fixture
def deployment_factory(tmp_path: Path, database_url: str,
                       redis_server: RedisServer) -> Iterator[object]:
    """Builds deployments on this suite's PostgreSQL and Redis; stops their servers after."""
    made: list[Deployment] = []

    def make(issuer: str, **extra: str) -> Deployment:
        home = tmp_path / f"home{len(made)}"
        home.mkdir()
        deployment = Deployment(home, database_url, redis_server.url, issuer, **extra)
        made.append(deployment)
        return deployment

    try:
        yield make
    finally:
        for deployment in made:
            deployment.stop()
