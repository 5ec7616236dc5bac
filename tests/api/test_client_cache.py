"""Client registrations cached per process (idp/oidc/client_cache.py): a repeated token
request reads no client row, and a change made in this process — admin API, or any ORM write
such as the CLI's — is seen by the very next request, not after the TTL."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text, update

from idp.extensions import db
from idp.models import Client
from tests.helpers.sql import selects_from

SERVICE = "svc"


def machine_token(api: Any, client_id: str = SERVICE) -> Any:
    return api.http.post("/token", data={"grant_type": "client_credentials",
                                         "scope": "idp:introspect"},
                         headers=api.basic(client_id))


@pytest.fixture
def service(api: Any) -> str:
    client_id = api.admin_client(SERVICE, scope="idp:introspect")
    assert machine_token(api).status_code == 200  # now cached
    return client_id


def test_a_second_token_request_does_not_select_the_client(api, app):
    api.admin_client(SERVICE, scope="idp:introspect")
    with selects_from(app, "clients") as first:
        assert machine_token(api).status_code == 200
    with selects_from(app, "clients") as second:
        assert machine_token(api).status_code == 200

    assert len(first) == 1
    assert second == []


@pytest.mark.parametrize("app_overrides", [{"oidc": {"client_cache_ttl": 0}}])
def test_with_the_cache_off_every_request_selects_the_client_once(api, app, service):
    with selects_from(app, "clients") as selects:
        assert machine_token(api).status_code == 200

    assert len(selects) == 1


def _refused(response: Any) -> bool:
    return response.status_code == 401 and response.get_json()["error"] == "invalid_client"


def test_a_client_disabled_through_the_admin_api_is_refused_at_once(api, service):
    admin = api.admin_token()

    changed = api.patch(f"/admin/clients/{service}", admin, json={"disabled": True})

    assert changed.status_code == 200
    assert _refused(machine_token(api))
    assert api.patch(f"/admin/clients/{service}", admin,
                     json={"disabled": False}).status_code == 200
    assert machine_token(api).status_code == 200


def test_a_client_deleted_through_the_admin_api_is_refused_at_once(api, service):
    assert api.delete(f"/admin/clients/{service}", api.admin_token()).status_code == 204

    assert _refused(machine_token(api))


def test_a_rotated_secret_takes_effect_at_once(api, service):
    old = api.secrets[service]

    rotated = api.post(f"/admin/clients/{service}/secret", api.admin_token())

    assert rotated.status_code == 200
    assert _refused(machine_token(api))
    api.secrets[service] = rotated.get_json()["client_secret"]
    assert machine_token(api).status_code == 200
    api.secrets[service] = old
    assert _refused(machine_token(api))


def test_a_change_through_the_orm_is_seen_at_once(api, app, service):
    """What the CLI and scripts do: load the row, change it, commit."""
    with app.app_context():
        db.session.get(Client, service).disabled = True
        db.session.commit()

    assert _refused(machine_token(api))


def test_a_bulk_update_of_the_table_drops_every_entry(api, app, service):
    with app.app_context():
        db.session.execute(update(Client).values(disabled=True))
        db.session.commit()

    assert _refused(machine_token(api))


def test_an_uncommitted_change_is_never_cached(api, app, service):
    """A request that changed a client and then loads it reads its own uncommitted row: that
    must not reach other requests, whether the change is committed or rolled back."""
    from idp.oidc.clients import load_client

    with app.test_request_context():
        db.session.get(Client, service).scope = "openid"
        db.session.flush()
        assert load_client(service).model.scope == "openid"
        db.session.rollback()

    with selects_from(app, "clients") as selects, app.test_request_context():
        assert load_client(service).model.scope == "idp:introspect"
    assert len(selects) == 1


def _deleted_elsewhere(app: Any, client_id: str) -> None:
    """Another process deletes the client: a Core statement on its own connection, which no
    session hook of this process sees (this process keeps its cached record)."""
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(text("DELETE FROM clients WHERE client_id = :id"), {"id": client_id})


def test_a_client_deleted_by_another_process_gets_invalid_client_not_a_500(api, app, service):
    _deleted_elsewhere(app, service)

    assert _refused(machine_token(api))
    with selects_from(app, "clients") as selects:  # the stale entry was dropped on the way
        assert _refused(machine_token(api))
    assert len(selects) == 1


def test_authorize_for_a_client_deleted_by_another_process_is_not_a_500(flows, app):
    flows.user("alice")
    rp = flows.client("rp1")
    browser = flows.browser()
    flows.sign_in(browser, rp)  # rp1 is cached; the browser has a session
    _deleted_elsewhere(app, "rp1")

    url, _ = rp.authorize_url()
    response = browser.get(url)

    assert response.status_code == 401, response.text[:300]
    assert "Location" not in response.headers
