"""Audit events (DESIGN §7): each is a row in audit_events and one JSON line on the
``idp.audit`` logger, with user, client and ip; secrets never appear in either."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from authlib.integrations.base_client import OAuthError
from sqlalchemy import select

from idp.extensions import db
from idp.models import AuditEvent
from idp.users import disable_user
from tests.helpers.rp import page_name

SECRET_GUESS = "Tr0ub4dor&3-never-logged"


class JsonLines(logging.Handler):
    """Collects the JSON lines the idp.audit logger emits (it does not propagate)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.raw: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.raw.append(record.getMessage())

    def events(self, event_type: str) -> list[dict[str, Any]]:
        lines = [json.loads(raw) for raw in self.raw]
        return [line for line in lines if line["event"] == event_type]


@pytest.fixture
def audit_log() -> Iterator[JsonLines]:
    handler = JsonLines()
    logger = logging.getLogger("idp.audit")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def audit_rows(app: Any, event_type: str) -> list[dict[str, Any]]:
    with app.app_context():
        rows = db.session.scalars(
            select(AuditEvent).where(AuditEvent.type == event_type).order_by(AuditEvent.id))
        return [{"user_id": r.user_id, "client_id": r.client_id, "ip": r.ip, "actor": r.actor,
                 "data": dict(r.data or {})} for r in rows]


def userinfo_status(rp: Any, access_token: str) -> int:
    return requests.get(rp.issuer + "/userinfo", timeout=10, headers={
        "Authorization": f"Bearer {access_token}"}).status_code


def refresh(rp: Any, refresh_token: str) -> requests.Response:
    return requests.post(rp.issuer + "/token", timeout=10, auth=(rp.client_id, rp.client_secret),
                         data={"grant_type": "refresh_token", "refresh_token": refresh_token})


def test_successful_sign_in_is_audited(flows, app, audit_log):
    user_id = flows.user("alice")
    rp = flows.client("rp1")

    flows.sign_in(flows.browser(), rp)

    expected = {"user_id": user_id, "client_id": "rp1", "ip": "127.0.0.1"}
    [row] = audit_rows(app, "user.login_succeeded")
    assert {k: row[k] for k in expected} == expected
    assert row["data"] == {"method": "password"}
    [line] = audit_log.events("user.login_succeeded")
    assert {k: line[k] for k in expected} == expected
    assert line["method"] == "password"
    assert line["request_id"]


@pytest.mark.parametrize(("username", "known", "reason"), [
    ("alice", True, "credentials"),
    ("mallory", False, "credentials"),
    ("dora", True, "disabled"),
])
def test_failed_sign_in_is_audited_without_the_password(flows, app, audit_log, username, known,
                                                        reason):
    ids = {"alice": flows.user("alice"), "dora": flows.user("dora")}
    with app.app_context():
        disable_user("dora")
    rp = flows.client("rp1")
    browser = flows.browser()
    url, _ = rp.authorize_url()
    page = browser.follow(browser.get(url))

    response = browser.submit_login(page, username, SECRET_GUESS)

    assert response.status_code == 401 and page_name(response.text) == "login"
    expected = {"user_id": ids[username] if known else None, "client_id": "rp1",
                "ip": "127.0.0.1"}
    [row] = audit_rows(app, "user.login_failed")
    assert {k: row[k] for k in expected} == expected
    assert row["data"] == {"method": "password", "reason": reason}
    [line] = audit_log.events("user.login_failed")
    assert {k: line[k] for k in expected} == expected
    assert SECRET_GUESS not in json.dumps(row)
    assert not [raw for raw in audit_log.raw if SECRET_GUESS in raw]
    assert not audit_rows(app, "user.login_succeeded")


def test_code_replay_is_audited_and_revokes_the_tokens_issued(flows, app, audit_log):
    user_id = flows.user("alice")
    rp = flows.client("rp1")
    result = flows.sign_in(flows.browser(), rp)
    assert userinfo_status(rp, result.token["access_token"]) == 200

    with pytest.raises(OAuthError) as replay:
        rp.exchange(result.callback.code, result.secrets["code_verifier"])

    assert replay.value.error == "invalid_grant"
    [row] = audit_rows(app, "token.reuse_detected")
    assert (row["user_id"], row["client_id"], row["ip"]) == (user_id, "rp1", "127.0.0.1")
    assert row["data"] == {"credential": "authorization_code", "tokens_revoked": 1}
    [line] = audit_log.events("token.reuse_detected")
    assert (line["user_id"], line["client_id"], line["credential"]) == (
        user_id, "rp1", "authorization_code")
    assert userinfo_status(rp, result.token["access_token"]) == 401
    assert refresh(rp, result.token["refresh_token"]).json()["error"] == "invalid_grant"


def test_refresh_token_reuse_is_audited_and_revokes_the_family(flows, app, audit_log):
    user_id = flows.user("alice")
    rp = flows.client("rp1")
    first = flows.sign_in(flows.browser(), rp).token
    rotated = refresh(rp, first["refresh_token"])
    assert rotated.status_code == 200
    second = rotated.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert userinfo_status(rp, second["access_token"]) == 200

    reuse = refresh(rp, first["refresh_token"])

    assert reuse.status_code == 400
    assert reuse.json()["error"] == "invalid_grant"
    [row] = audit_rows(app, "token.reuse_detected")
    assert (row["user_id"], row["client_id"], row["ip"]) == (user_id, "rp1", "127.0.0.1")
    assert row["data"] == {"credential": "refresh_token", "tokens_revoked": 2}
    [line] = audit_log.events("token.reuse_detected")
    assert (line["user_id"], line["client_id"], line["credential"]) == (
        user_id, "rp1", "refresh_token")
    assert first["refresh_token"] not in json.dumps(row)
    assert not [raw for raw in audit_log.raw if first["refresh_token"] in raw]
    # The whole family is revoked: the refresh token and access token of the rotation too.
    after = refresh(rp, second["refresh_token"])
    assert (after.status_code, after.json()["error"]) == (400, "invalid_grant")
    assert userinfo_status(rp, second["access_token"]) == 401
