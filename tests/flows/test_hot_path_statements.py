"""What the hot path asks of the database (issue 7), checked as behaviour, not timings:

- UserInfo and introspection only read, so they run without a transaction (autocommit: no
  ``BEGIN``/``ROLLBACK`` round trips); the token endpoint keeps its transaction, since a code
  claim or a refresh rotation and the token it issues must commit together or not at all.
- UserInfo reads the access token and its user in one statement, without the password hash.
- A password sign-in reads the browser's device row once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests
from sqlalchemy import event

from idp.extensions import db
from tests.helpers.rp import DEFAULT_PASSWORD
from tests.helpers.sql import selects_from, statements_run


@contextmanager
def statement_isolation(app: Any) -> Iterator[list[tuple[str, str | None]]]:
    """(first word of each statement, the connection's isolation_level execution option)."""
    seen: list[tuple[str, str | None]] = []
    with app.app_context():
        engine = db.engine

    def on_execute(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append((statement.split(None, 1)[0].upper(),
                     conn.get_execution_options().get("isolation_level")))

    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)


def test_userinfo_and_introspection_read_outside_a_transaction(flows, app):
    flows.user("alice")
    rp = flows.client("rp1")
    introspector = flows.client("rs", grant_types=["client_credentials"], redirect_uris=[],
                                scope="idp:introspect")
    access = flows.sign_in(flows.browser(), rp).token["access_token"]

    with statement_isolation(app) as userinfo_statements:
        info = requests.get(rp.issuer + "/userinfo", timeout=10,
                            headers={"Authorization": f"Bearer {access}"})
    assert info.status_code == 200 and info.json()["preferred_username"] == "alice"
    assert userinfo_statements, "UserInfo reads the token and the user"
    assert all(level == "AUTOCOMMIT" for _, level in userinfo_statements), userinfo_statements

    with statement_isolation(app) as introspection_statements:
        body = requests.post(rp.issuer + "/introspect", data={"token": access}, timeout=10,
                             auth=(introspector.client_id, introspector.client_secret)).json()
    assert body["active"] is True and body["username"] == "alice"
    assert introspection_statements
    assert all(level == "AUTOCOMMIT" for _, level in introspection_statements)


def test_userinfo_reads_token_and_user_in_one_statement(flows, app):
    flows.user("alice", email="alice@example.test")
    rp = flows.client("rp1", scope="openid profile email")
    access = flows.sign_in(flows.browser(), rp, scope="openid profile email").token[
        "access_token"]

    with statements_run(app) as seen:
        info = requests.get(rp.issuer + "/userinfo", timeout=10,
                            headers={"Authorization": f"Bearer {access}"})
    assert info.status_code == 200, info.text
    assert info.json()["email"] == "alice@example.test"
    assert info.json()["preferred_username"] == "alice"
    assert len(seen) == 1, seen
    assert "FROM tokens LEFT OUTER JOIN users" in seen[0]
    assert "password_hash" not in seen[0]


def test_the_token_endpoint_keeps_its_transaction(flows, app):
    flows.user("alice")
    rp = flows.client("rp1", grant_types=["authorization_code", "refresh_token"])
    result = flows.sign_in(flows.browser(), rp, exchange=False)

    with statement_isolation(app) as exchange_statements:
        tokens = rp.exchange(result.callback.code, result.secrets["code_verifier"])
    with statement_isolation(app) as refresh_statements:
        refreshed = requests.post(rp.issuer + "/token", timeout=10,
                                  auth=(rp.client_id, rp.client_secret), data={
                                      "grant_type": "refresh_token",
                                      "refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200
    for statements in (exchange_statements, refresh_statements):
        verbs = [verb for verb, _ in statements]
        assert "UPDATE" in verbs and "INSERT" in verbs, verbs
        assert all(level != "AUTOCOMMIT" for _, level in statements), statements


def test_a_password_sign_in_reads_the_device_once(flows, app):
    flows.user("alice")
    rp = flows.client("rp1")
    browser = flows.browser()
    url, _ = rp.authorize_url()
    page = browser.follow(browser.get(url))

    with selects_from(app, "devices") as device_reads:
        answer = browser.follow(browser.submit_login(page, "alice", DEFAULT_PASSWORD))
    assert answer.headers.get("Location", "").startswith(rp.redirect_uri)
    assert len(device_reads) == 1
