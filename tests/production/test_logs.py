"""Logs (DESIGN §8): one JSON line per request on ``idp.request`` and one per audit event on
``idp.audit``, with request id, client id and user id where known, and never a secret: no
query string, body, password, code, token, state, nonce, verifier, cookie or client secret.
"""

from __future__ import annotations

import json
import time

import pyotp
import requests

from tests.helpers.factors import enroll_totp
from tests.helpers.logs import idp_logs
from tests.helpers.rp import DEFAULT_PASSWORD, form_action, hidden_inputs

REQUEST_FIELDS = {"event", "at", "method", "path", "endpoint", "status", "duration_ms",
                  "request_id", "client_id", "user_id", "ip"}


def lines(records, logger: str) -> list[dict]:
    return [json.loads(r.getMessage()) for r in records if r.name == logger]


def test_one_json_line_per_request_and_per_audit_event_without_secrets(flows, app):
    user_id = flows.user("alice")
    secret = enroll_totp(app, "alice", steps_back=1)
    rp = flows.client("rp1")
    browser = flows.browser()
    answered: list[requests.Response] = []
    browser.session.hooks["response"].append(lambda r, *a, **k: answered.append(r))

    with idp_logs() as records:
        result = flows.sign_in(browser, rp)
        url, flow_secrets = rp.authorize_url(acr_values="aal2")
        page = browser.follow(browser.get(url))
        totp = pyotp.TOTP(secret).now()
        done = browser.follow(browser.post(form_action(page.text, "/mfa/verify"),
                                           {**hidden_inputs(page.text), "code": totp}))
        code = done.headers["Location"].split("code=")[1].split("&")[0]
        tokens = rp.exchange(code, flow_secrets["code_verifier"])
        refreshed = requests.post(flows.base_url + "/token", timeout=10,
                                  auth=(rp.client_id, rp.client_secret),
                                  data={"grant_type": "refresh_token",
                                        "refresh_token": tokens["refresh_token"]})
        assert refreshed.status_code == 200
        time.sleep(0.2)  # the server thread logs right after it answers

    request_lines = lines(records, "idp.request")
    audit_lines = lines(records, "idp.audit")
    # Every request the user agent made is one line, matched by its X-Request-ID.
    browser_ids = [r.headers["X-Request-ID"] for r in answered]
    logged_ids = [line["request_id"] for line in request_lines]
    assert len(set(logged_ids)) == len(logged_ids), "a request logged twice"
    assert set(browser_ids) <= set(logged_ids)
    for line in request_lines:
        assert set(line) == REQUEST_FIELDS
        assert line["event"] == "http.request"
        assert "?" not in line["path"]
        assert isinstance(line["status"], int) and line["duration_ms"] >= 0
    # Route patterns, not the values in the path (an interaction id is also a cookie).
    assert {"/authorize", "/token", "/interaction/<uid>/login", "/interaction/<uid>/mfa/verify",
            "/interaction/<uid>/mfa"} <= {line["path"] for line in request_lines}

    by_endpoint = {}
    for line in request_lines:
        by_endpoint.setdefault(line["endpoint"], []).append(line)
    assert all(line["client_id"] == rp.client_id for line in by_endpoint["oidc.authorization"])
    assert all(line["client_id"] == rp.client_id for line in by_endpoint["oidc.token"])
    login = by_endpoint["interaction.login"][0]
    assert login["user_id"] == user_id and login["client_id"] == rp.client_id
    verify = by_endpoint["interaction.mfa_verify"][0]
    assert verify["user_id"] == user_id and verify["client_id"] == rp.client_id
    for line in by_endpoint["interaction.show"] + by_endpoint["interaction.mfa_picker"]:
        assert line["client_id"] == rp.client_id
    assert all(line["user_id"] == user_id for line in by_endpoint["oidc.token"])
    assert len(by_endpoint["oidc.token"]) == 3  # two codes redeemed, one refresh

    # Audit events: JSON, tied to the request that caused them.
    events = {line["event"]: line for line in audit_lines}
    for name in ("user.login_succeeded", "user.step_up_required", "user.mfa_succeeded"):
        assert events[name]["user_id"] == user_id
        assert events[name]["client_id"] == rp.client_id
        assert events[name]["request_id"] in logged_ids

    # Nothing secret anywhere in what was logged.
    logged = "\n".join(r.getMessage() for r in records)
    secrets = [DEFAULT_PASSWORD, secret, totp, code, tokens["access_token"],
               tokens["refresh_token"], tokens["id_token"], refreshed.json()["refresh_token"],
               rp.client_secret, flow_secrets["state"], flow_secrets["nonce"],
               flow_secrets["code_verifier"], result.callback.code,
               *browser.session.cookies.values()]
    for value in secrets:
        assert value and value not in logged, f"a secret was logged: {value[:6]}…"


def test_client_id_from_basic_credentials_and_errors_are_logged_too(flows):
    rp = flows.client("rp1")
    with idp_logs() as records:
        wrong = requests.post(flows.base_url + "/token", timeout=10,
                              auth=(rp.client_id, "wrong-secret"),
                              data={"grant_type": "authorization_code", "code": "c0de"})
        missing = requests.get(flows.base_url + "/nowhere?token=abc", timeout=10)
        time.sleep(0.2)
    assert wrong.status_code == 401 and missing.status_code == 404
    request_lines = lines(records, "idp.request")
    token_line = next(x for x in request_lines if x["endpoint"] == "oidc.token")
    assert token_line["client_id"] == rp.client_id and token_line["status"] == 401
    missing_line = next(x for x in request_lines if x["path"] == "/nowhere")
    assert missing_line["status"] == 404 and missing_line["endpoint"] is None
    logged = "\n".join(r.getMessage() for r in records)
    assert "wrong-secret" not in logged and "c0de" not in logged and "abc" not in logged
