"""Regressions for the first security review: each test is an attack that must fail."""

from __future__ import annotations

import copy
import json
import time
from importlib import resources

import pyotp
import pytest
import yaml

from idp.assurance import AuthEvent, Ladder
from tests.helpers.factors import enroll_totp
from tests.helpers.rp import callback_params, form_action, hidden_inputs, page_name

#: "123456" in full-width digits (str.isdigit() accepts them; int() would too).
FULL_WIDTH_DIGITS = "".join(chr(0xFF10 + d) for d in (1, 2, 3, 4, 5, 6))
DEFAULTS = yaml.safe_load(resources.files("idp").joinpath("config/default.yaml").read_text())


def test_a_password_alone_cannot_enroll_its_way_past_existing_mfa(flows, app):
    """C1: with the victim's password only, enrolling the attacker's own factor during
    sign-in must not yield aal2/phr (NIST SP 800-63B-4 §4.1.2)."""
    flows.user("alice")
    enroll_totp(app, "alice", steps_back=1)
    rp = flows.client("rp1")
    attacker = flows.browser()
    url, secrets = rp.authorize_url(acr_values="aal2")
    page = attacker.follow(attacker.submit_login(attacker.follow(attacker.get(url)), "alice"))
    assert page_name(page.text) == "mfa-totp"
    uid = page.url.split("/interaction/")[1].split("/")[0]

    picker = attacker.get(f"/interaction/{uid}/enroll")
    started = attacker.post(f"/interaction/{uid}/enroll/start",
                            {**hidden_inputs(page.text), "method": "totp"})

    assert 'data-factor="' not in picker.text  # nothing to enroll here
    assert started.status_code == 400
    # A phishing-resistant request is not turned into "enroll a passkey" either.
    url, secrets = rp.authorize_url(acr_values="phr")
    other = flows.browser()
    answer = other.follow(other.submit_login(other.follow(other.get(url)), "alice"))
    claims = rp.verify_id_token(rp.exchange(callback_params(answer).code,
                                            secrets["code_verifier"])["id_token"])
    assert claims["acr"] == "aal1"


@pytest.mark.parametrize("app_overrides", [{"account": {"max_age": 3}}], indirect=True)
def test_the_account_page_cannot_skip_a_stale_password_with_the_factor_alone(flows, app):
    """M5: the hosted factor pages serve only an interaction at its "mfa" step."""
    flows.user("alice")
    enroll_totp(app, "alice", steps_back=1)
    rp = flows.client("rp1")
    browser = flows.browser()
    flows.sign_in(browser, rp)
    time.sleep(4)

    page = browser.follow(browser.get("/account/security"), stop_at="/account/security")
    assert page_name(page.text) == "login"
    uid = page.url.split("/interaction/")[1].split("/")[0]
    skipped = browser.get(f"/interaction/{uid}/mfa")

    assert skipped.status_code == 400


def _short_idle_ladder():
    levels = copy.deepcopy(DEFAULTS["acr"]["levels"])
    for level in levels:
        if level["name"] != "aal1":
            level["idle_timeout"] = 4
    return {"acr": {"levels": levels}}


@pytest.mark.parametrize("app_overrides", [_short_idle_ladder()], indirect=True)
def test_idle_timeouts_of_levels_are_enforced(flows, app):
    """H1: an aal2 session idle longer than aal2's idle timeout falls back to aal1."""
    flows.user("alice")
    secret = enroll_totp(app, "alice", steps_back=1)
    rp = flows.client("rp1")
    browser = flows.browser()
    url, secrets = rp.authorize_url(acr_values="aal2")
    page = browser.follow(browser.submit_login(browser.follow(browser.get(url)), "alice"))
    import pyotp

    done = browser.follow(browser.post(form_action(page.text, "/mfa/verify"), {
        **hidden_inputs(page.text), "code": pyotp.TOTP(secret).now()}))
    assert rp.verify_id_token(rp.exchange(callback_params(done).code, secrets[
        "code_verifier"])["id_token"])["acr"] == "aal2"

    time.sleep(5)
    url, _ = rp.authorize_url(acr_values="aal2", prompt="none")
    params = callback_params(browser.follow(browser.get(url))).params

    assert params["error"] == "interaction_required"


def test_a_remembered_device_never_helps_reach_phr():
    """M3: a non-user-verifying passkey plus a remembered device never reaches phr (and, both
    being something you have, are one NIST category: aal1)."""
    ladder = Ladder.from_config(DEFAULTS["acr"]["levels"])
    now = 1_800_000_000
    events = [AuthEvent("passkey", "p", ("pop", "swk"), now - 10,
                        {"user_verified": False}),
              AuthEvent("remembered_device", "d", ("rdev",), now - 5, {"remembered": True})]

    assert ladder.evaluate(events, now).satisfied == {"aal1"}


@pytest.mark.parametrize(("params", "error"), [
    ({"max_age": "²"}, "invalid_request"),
    ({"claims": json.dumps({"id_token": {"acr": {"values": 5}}})}, "invalid_request"),
    ({"claims": json.dumps({"id_token": {"acr": {"value": ["aal2"]}}})}, "invalid_request"),
    ({"claims": "[" * 2000 + "]" * 2000}, "invalid_request"),
])
def test_malformed_parameters_are_invalid_request_not_500(flows, params, error):
    """L1: answered in the protocol's format."""
    flows.user("alice")
    rp = flows.client("rp1")
    browser = flows.browser()
    url, _ = rp.authorize_url(**params)

    assert callback_params(browser.follow(browser.get(url))).params["error"] == error


def test_full_width_digits_are_a_wrong_totp_code_not_a_crash(flows, app):
    flows.user("alice")
    enroll_totp(app, "alice", steps_back=1)
    rp = flows.client("rp1")
    browser = flows.browser()
    url, _ = rp.authorize_url(acr_values="aal2")
    page = browser.follow(browser.submit_login(browser.follow(browser.get(url)), "alice"))

    answer = browser.post(form_action(page.text, "/mfa/verify"),
                          {**hidden_inputs(page.text), "code": FULL_WIDTH_DIGITS})

    assert answer.status_code == 400
    assert page_name(answer.text) == "mfa-totp"


# M4: the client address behind trusted proxies (idp/proxy.py).
SPOOFED = "203.0.113.9"


def _wrong_password(flows, browser, forwarded_for: str) -> None:
    browser.session.headers["X-Forwarded-For"] = forwarded_for
    url, _ = flows.client("rp1").authorize_url()
    answer = browser.submit_login(browser.follow(browser.get(url)), "alice", "wrong password")
    assert answer.status_code in (200, 401)
    assert page_name(answer.text) == "login"


def _ip_failures(app, ip: str) -> int:
    from idp.authorize.login import login_limits
    from idp.throttle import Throttle

    with app.app_context():
        return Throttle(app.extensions["idp.store"]).failures(login_limits("alice", ip)[1])


def test_forwarded_for_from_an_untrusted_peer_is_ignored(flows, app):
    """M4: by default nobody is trusted; a forged X-Forwarded-For cannot pick the throttle
    key (nor escape it)."""
    flows.user("alice")

    _wrong_password(flows, flows.browser(), SPOOFED)

    assert _ip_failures(app, "127.0.0.1") == 1
    assert _ip_failures(app, SPOOFED) == 0


@pytest.mark.parametrize("app_overrides", [{"trusted_proxies": ["127.0.0.1/32", "10.0.0.0/8"]}],
                         indirect=True)
def test_a_trusted_proxy_forwards_the_client_address_to_the_throttle(flows, app):
    """M4: the right-most forwarded address that is not a trusted proxy is the client; what
    the client wrote to its left is not believed."""
    flows.user("alice")

    _wrong_password(flows, flows.browser(), f"198.51.100.1, {SPOOFED}, 10.1.2.3")

    assert _ip_failures(app, SPOOFED) == 1
    assert _ip_failures(app, "198.51.100.1") == 0
    assert _ip_failures(app, "127.0.0.1") == 0


SPOOFED_IP_RULE = {"rules": [{"when": {"ip_in": [f"{SPOOFED}/32"]}, "require": "aal2"}]}


@pytest.mark.parametrize("app_overrides, steps_up", [
    ({"trusted_proxies": ["127.0.0.1/32"], "policy": SPOOFED_IP_RULE}, True),
    ({"policy": SPOOFED_IP_RULE}, False),
], indirect=["app_overrides"])
def test_ip_in_sees_the_forwarded_client_only_via_a_trusted_proxy(flows, app, steps_up):
    """M4: ``ip_in`` matches the client behind a trusted proxy, never a forged header."""
    flows.user("alice")
    enroll_totp(app, "alice", steps_back=1)
    rp = flows.client("rp1")
    browser = flows.browser()
    browser.session.headers["X-Forwarded-For"] = SPOOFED
    url, _ = rp.authorize_url()

    answer = browser.follow(browser.submit_login(browser.follow(browser.get(url)), "alice"))

    if steps_up:
        assert page_name(answer.text) == "mfa-totp"
    else:
        assert callback_params(answer).code


# L2: tokens issued to a browser session end with RP-initiated logout.
def _token_post(rp, path, data, client=None):
    import requests

    client = client or rp
    return requests.post(rp.issuer + path, data=data, timeout=10,
                         auth=(client.client_id, client.client_secret))


def test_logout_revokes_the_tokens_of_that_browser_session_only(flows):
    """L2: after logout, the session's refresh token gives invalid_grant and its tokens
    introspect inactive; another browser's tokens and offline_access tokens live on."""
    from urllib.parse import urlencode

    flows.user("alice")
    rp = flows.client("rp1", scope="openid profile email offline_access")
    resource = flows.client("api", grant_types=["client_credentials"], redirect_uris=[],
                            scope="idp:introspect")
    browser = flows.browser()
    signed_out = flows.sign_in(browser, rp).token
    offline = flows.sign_in(browser, rp, scope="openid offline_access").token
    elsewhere = flows.sign_in(flows.browser(), rp).token

    logout = browser.get("/logout?" + urlencode({"id_token_hint": signed_out["id_token"]}))

    assert logout.status_code == 200 and page_name(logout.text) == "logged-out"
    refresh = _token_post(rp, "/token", {"grant_type": "refresh_token",
                                         "refresh_token": signed_out["refresh_token"]})
    assert refresh.status_code == 400 and refresh.json()["error"] == "invalid_grant"
    for name in ("access_token", "refresh_token"):
        assert _token_post(rp, "/introspect", {"token": signed_out[name]},
                           client=resource).json() == {"active": False}
    for token in (offline, elsewhere):
        assert _token_post(rp, "/introspect", {"token": token["access_token"]},
                           client=resource).json()["active"] is True
        assert _token_post(rp, "/token", {"grant_type": "refresh_token",
                                          "refresh_token": token["refresh_token"]}
                           ).status_code == 200


# L3: the throttle decision is atomic.
@pytest.mark.parametrize("app_overrides", [{"login": {"max_failures_per_account": 3,
                                                      "base_delay": 60}}], indirect=True)
def test_racing_wrong_passwords_get_no_more_than_the_limit_evaluated(flows, app):
    """L3: 30 simultaneous wrong passwords: at most 3 are checked (and audited as failed);
    the rest answer 429 without evaluating the password."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from tests.flows.test_audit import audit_rows

    flows.user("alice")
    rp = flows.client("rp1")
    pages = []
    for _ in range(30):
        browser = flows.browser()
        page = browser.follow(browser.get(rp.authorize_url()[0]))
        pages.append((browser, form_action(page.text, "/login"), hidden_inputs(page.text)))
    barrier = threading.Barrier(len(pages))

    def guess(entry) -> int:
        browser, action, fields = entry
        barrier.wait(timeout=20)
        return browser.post(action, {**fields, "username": "alice",
                                     "password": "wrong"}).status_code

    with ThreadPoolExecutor(max_workers=len(pages)) as pool:
        statuses = list(pool.map(guess, pages))

    assert statuses.count(401) == 3 and statuses.count(429) == 27
    assert len(audit_rows(app, "user.login_failed")) == 3


# L6: "signed in within this interaction" expires with the interaction's lifetime.
@pytest.mark.parametrize("app_overrides", [{"session": {"interaction_ttl": 600}}], indirect=True)
def test_a_stale_login_done_here_flag_does_not_answer_prompt_login(flows, app):
    """L6: an interaction re-saved at every step must not carry a sign-in older than
    ``session.interaction_ttl`` past prompt=login (OIDC Core §3.1.2.1)."""
    from idp.authorize.interactions import KEY_PREFIX

    flows.user("alice")
    secret = enroll_totp(app, "alice", steps_back=1)
    rp = flows.client("rp1")
    browser = flows.browser()
    flows.sign_in(browser, rp)
    url, _ = rp.authorize_url(prompt="login", acr_values="aal2")
    page = browser.follow(browser.get(url))
    uid = page.url.split("/interaction/")[1].split("/")[0]
    # The password is given, the interaction waits for the second factor, and meanwhile its
    # sign-in flag ages past interaction_ttl.
    challenge = browser.follow(browser.submit_login(page, "alice"))
    assert page_name(challenge.text) == "mfa-totp"
    store = app.extensions["idp.store"]
    record = store.get(KEY_PREFIX + uid)
    record["result"]["login"] -= 601
    store.put(KEY_PREFIX + uid, record, 600)

    answer = browser.follow(browser.post(form_action(challenge.text, "/mfa/verify"), {
        **hidden_inputs(challenge.text), "code": pyotp.TOTP(secret).now()}))

    assert page_name(answer.text) == "login"


# L8: HSTS with an https issuer only.
@pytest.mark.parametrize("app_overrides, expected",
                         [({"issuer": "https://login.example.test"}, "max-age=31536000"),
                          ({"issuer": "http://localhost:5000"}, None)])
def test_hsts_only_when_the_issuer_is_https(client, expected):
    """L8: RFC 6797 — an https IdP tells browsers never to use http; localhost http is left
    alone."""
    response = client.get("/.well-known/openid-configuration")

    assert response.status_code == 200
    assert response.headers.get("Strict-Transport-Security") == expected
