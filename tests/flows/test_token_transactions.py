"""The token endpoint's transaction: one commit per request for every grant, and the single-use
guarantees under concurrency (RFC 6749 §4.1.2: a code is used once, a replay revokes what it
issued; RFC 9700 §4.14.2: refresh rotation, reuse revokes the family). Run on SQLite and on
PostgreSQL (IDP_TEST_DATABASE_URL)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pytest
import requests
from sqlalchemy import event, func, select

from idp.extensions import db
from idp.models import AuditEvent, AuthorizationCode, Token
from tests.helpers.rp import CALLBACK

RACERS = 8


def _token(rp: Any, data: dict[str, str]) -> requests.Response:
    return requests.post(rp.issuer + "/token", data=data, timeout=30,
                         auth=(rp.client_id, rp.client_secret))


def _code_grant(result: Any, verifier: str | None = None) -> dict[str, str]:
    return {"grant_type": "authorization_code", "code": result.callback.code,
            "redirect_uri": CALLBACK,
            "code_verifier": verifier or result.secrets["code_verifier"]}


def _userinfo_status(rp: Any, access_token: str) -> int:
    return requests.get(rp.issuer + "/userinfo", timeout=10, headers={
        "Authorization": f"Bearer {access_token}"}).status_code


@contextmanager
def _commits(app: Any) -> Iterator[list[str]]:
    """Commits on the app's engine while the block runs (the live server shares the engine)."""
    seen: list[str] = []
    with app.app_context():
        engine = db.engine

    def on_commit(_conn: Any) -> None:
        seen.append("commit")

    event.listen(engine, "commit", on_commit)
    try:
        yield seen
    finally:
        event.remove(engine, "commit", on_commit)


def _race(attempts: int, one: Callable[[], requests.Response]) -> list[requests.Response]:
    barrier = threading.Barrier(attempts)

    def start() -> requests.Response:
        barrier.wait(timeout=30)
        return one()

    with ThreadPoolExecutor(max_workers=attempts) as pool:
        return [f.result(timeout=120) for f in [pool.submit(start) for _ in range(attempts)]]


@pytest.fixture
def signed_in(flows: Any) -> tuple[Any, Any]:
    flows.user("alice")
    rp = flows.client("rp1")
    return rp, flows.sign_in(flows.browser(), rp, exchange=False)


def _request_for(grant: str, flows: Any) -> tuple[Any, dict[str, str]]:
    """A client and a valid token request of ``grant``."""
    if grant == "client_credentials":
        svc = flows.client("svc", grant_types=["client_credentials"], redirect_uris=[],
                           scope="idp:introspect")
        return svc, {"grant_type": grant, "scope": "idp:introspect"}
    flows.user("alice")
    rp = flows.client("rp1")
    result = flows.sign_in(flows.browser(), rp, exchange=False)
    if grant == "authorization_code":
        return rp, _code_grant(result)
    first = _token(rp, _code_grant(result)).json()
    return rp, {"grant_type": grant, "refresh_token": first["refresh_token"]}


@pytest.mark.parametrize("grant", ["authorization_code", "refresh_token", "client_credentials"])
def test_each_grant_is_one_commit(flows, app, grant):
    rp, data = _request_for(grant, flows)
    with _commits(app) as commits:
        response = _token(rp, data)
    assert response.status_code == 200, response.text
    assert commits == ["commit"]


def test_a_replay_revokes_and_audits_in_one_commit(flows, app, signed_in):
    rp, result = signed_in
    issued = _token(rp, _code_grant(result)).json()
    with _commits(app) as commits:
        replay = _token(rp, _code_grant(result))
    assert (replay.status_code, replay.json()["error"]) == (400, "invalid_grant")
    assert commits == ["commit"]
    assert _userinfo_status(rp, issued["access_token"]) == 401
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.type == "token.reuse_detected")) == 1


def test_a_failed_pkce_check_still_uses_up_the_code(flows, app, signed_in):
    """The claim is committed with the error answer: a code is redeemable once, whatever the
    outcome of that attempt (RFC 6749 §4.1.2 "MUST NOT use the authorization code more than
    once")."""
    rp, result = signed_in
    wrong = _token(rp, _code_grant(result, verifier="w" * 64))
    assert (wrong.status_code, wrong.json()["error"]) == (400, "invalid_grant")
    right = _token(rp, _code_grant(result))
    assert (right.status_code, right.json()["error"]) == (400, "invalid_grant")
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Token)) == 0
        assert db.session.scalar(select(AuthorizationCode.used_at)) is not None


def test_concurrent_redemptions_of_one_code_issue_once_and_revoke_it(flows, app, signed_in):
    """Every loser waits for the winner's commit (the claim's row lock), then finds the code
    used and revokes the tokens the winner issued."""
    rp, result = signed_in
    responses = _race(RACERS, lambda: _token(rp, _code_grant(result)))

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [400] * (RACERS - 1), [r.text for r in responses]
    assert {r.json()["error"] for r in responses if r.status_code == 400} == {"invalid_grant"}
    [winner] = [r.json() for r in responses if r.status_code == 200]
    assert _userinfo_status(rp, winner["access_token"]) == 401
    again = _token(rp, {"grant_type": "refresh_token", "refresh_token": winner["refresh_token"]})
    assert (again.status_code, again.json()["error"]) == (400, "invalid_grant")
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Token).where(
            Token.revoked_at.is_(None))) == 0
        reuse = db.session.scalars(select(AuditEvent).where(
            AuditEvent.type == "token.reuse_detected")).all()
    assert len(reuse) == RACERS - 1
    assert sum(row.data["tokens_revoked"] for row in reuse) == 1


def test_concurrent_rotations_of_one_refresh_token_rotate_once_and_revoke_the_family(
        flows, app, signed_in):
    rp, result = signed_in
    first = _token(rp, _code_grant(result)).json()
    grant = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    responses = _race(RACERS, lambda: _token(rp, grant))

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [400] * (RACERS - 1), [r.text for r in responses]
    [winner] = [r.json() for r in responses if r.status_code == 200]
    assert winner["refresh_token"] != first["refresh_token"]
    # The losers saw the rotation committed with the winner's new token, and revoked both.
    assert _userinfo_status(rp, winner["access_token"]) == 401
    after = _token(rp, {"grant_type": "refresh_token", "refresh_token": winner["refresh_token"]})
    assert (after.status_code, after.json()["error"]) == (400, "invalid_grant")
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Token)) == 2
        assert db.session.scalar(select(func.count()).select_from(Token).where(
            Token.revoked_at.is_(None))) == 0


def test_without_update_returning_the_claim_reads_the_row_back(flows, app, signed_in,
                                                               monkeypatch):
    """SQLite before 3.35 has no UPDATE … RETURNING: the claim is checked by its row count."""
    rp, result = signed_in
    with app.app_context():
        monkeypatch.setattr(db.engine.dialect, "update_returning", False)

    issued = _token(rp, _code_grant(result))
    replay = _token(rp, _code_grant(result))

    assert issued.status_code == 200, issued.text
    assert (replay.status_code, replay.json()["error"]) == (400, "invalid_grant")
    assert _userinfo_status(rp, issued.json()["access_token"]) == 401
