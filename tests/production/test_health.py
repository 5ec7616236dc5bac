"""/healthz and /readyz (DESIGN §8), and unreachable dependencies answered with 503, not 500.

In-process apps whose database or Redis URL points at a closed loopback port: the connection
is refused at once, as after a crash of the service.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from idp import create_app
from idp.extensions import db
from tests.conftest import base_overrides, free_port, prepare_database


@pytest.fixture
def closed_port_app(tmp_path: Any) -> Iterator[Any]:
    """Builds apps whose database and/or Redis cannot be reached (nothing listens there);
    their connections are closed after the test."""
    made: list[Any] = []

    def make(*, database: bool = True, redis: bool = True,
             redis_configured: bool = True) -> Any:
        folder = tmp_path / str(len(made))
        folder.mkdir()
        overrides = base_overrides(folder, free_port())
        if not database:
            overrides["database_url"] = \
                f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/x"
        if not redis:
            overrides["redis_url"] = f"redis://127.0.0.1:{free_port()}/0"
        elif not redis_configured:
            overrides["redis_url"] = None
        app = create_app(overrides, environ={})
        app.config["TESTING"] = True
        made.append(app)
        if database:
            prepare_database(app)
        return app

    yield make
    for app in made:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def test_healthz_is_up_whatever_the_dependencies(closed_port_app):
    app = closed_port_app(database=False, redis=False)
    started = time.monotonic()
    response = app.test_client().get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}
    assert response.headers["Cache-Control"] == "no-store"
    assert time.monotonic() - started < 1


def test_readyz_is_ready_when_the_dependencies_answer(client, app):
    response = client.get("/readyz")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["status"] == "ready" and body["failed"] == []
    assert body["checks"]["database"] == "ok"
    expected_redis = "ok" if app.extensions["idp.settings"].redis_url else "not configured"
    assert body["checks"]["redis"] == expected_redis


@pytest.mark.parametrize(("database", "redis", "failed"), [
    (True, False, ["redis"]),
    (False, True, ["database"]),
    (False, False, ["database", "redis"]),
])
def test_readyz_names_what_failed_with_503(closed_port_app, database, redis, failed):
    app = closed_port_app(database=database, redis=redis)
    started = time.monotonic()
    response = app.test_client().get("/readyz")
    assert time.monotonic() - started < 8
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    body = response.get_json()
    assert body["status"] == "unavailable"
    assert body["failed"] == failed
    healthy_redis = "ok" if app.extensions["idp.settings"].redis_url else "not configured"
    assert body["checks"]["database"] == ("unavailable" if "database" in failed else "ok")
    assert body["checks"]["redis"] == ("unavailable" if "redis" in failed else healthy_redis)
    # Nothing about where the services are: no host, port or driver message.
    assert "127.0.0.1" not in response.get_data(as_text=True)


def test_readyz_without_redis_configured_checks_only_the_database(closed_port_app):
    app = closed_port_app(redis_configured=False)
    body = app.test_client().get("/readyz").get_json()
    assert body["checks"] == {"database": "ok", "redis": "not configured"}


def test_database_unreachable_gives_503_pages_and_json_not_500(closed_port_app):
    app = closed_port_app(database=False)
    client = app.test_client()
    page = client.get("/authorize?client_id=rp1&response_type=code&scope=openid"
                      "&redirect_uri=https://rp.example.test/callback")
    assert page.status_code == 503
    assert b'data-page="error"' in page.data
    assert b'data-error="temporarily_unavailable"' in page.data
    assert page.headers["Retry-After"] == "5"
    token = client.post("/token", data={"grant_type": "refresh_token", "refresh_token": "x"},
                        headers={"Authorization": "Basic cnAxOnNlY3JldA=="})
    assert token.status_code == 503
    assert token.get_json()["error"] == "temporarily_unavailable"


def test_redis_unreachable_gives_the_503_page_on_interactive_pages(closed_port_app):
    app = closed_port_app(redis=False)
    from tests.helpers.rp import CALLBACK

    with app.app_context():
        from idp.oidc.clients import register_client

        register_client(name="rp", client_id="rp1", redirect_uris=[CALLBACK], first_party=True)
    response = app.test_client().get(f"/authorize?client_id=rp1&response_type=code"
                                     f"&scope=openid&redirect_uri={CALLBACK}"
                                     "&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
                                     "&code_challenge_method=S256")
    assert response.status_code == 503
    assert b'data-page="error"' in response.data
    assert "Location" not in response.headers
