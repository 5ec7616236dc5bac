"""The SSO browser session: cookie flags, rotation at sign-in, RP-initiated logout, timeouts,
and the response hardening of hosted pages and form_post responses."""

from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from idp.oidc.clients import register_client
from idp.users import create_user
from tests.helpers.rp import CALLBACK, DEFAULT_PASSWORD, hidden_inputs, page_name

COOKIE = "idp_session"
#: On an https issuer the host-only cookies carry the __Host- prefix (idp.cookies).
HOST_COOKIE = "__Host-idp_session"
HOST_INTERACTION_COOKIE = "__Host-idp_interaction"
HOST_DEVICE_COOKIE = "__Host-idp_device"
LOGGED_OUT = "https://rp.example.test/logged-out"


def set_cookies(headers: list[str]) -> dict[str, dict[str, str]]:
    """Set-Cookie headers by cookie name: ``value`` plus lower-cased attributes."""
    cookies = {}
    for header in headers:
        name_value, *attributes = (part.strip() for part in header.split(";"))
        name, _, value = name_value.partition("=")
        attrs = {}
        for attribute in attributes:
            key, _, attr_value = attribute.partition("=")
            attrs[key.lower()] = attr_value
        cookies[name] = {"value": value, **attrs}
    return cookies


def response_cookies(response: requests.Response) -> dict[str, dict[str, str]]:
    return set_cookies(response.raw.headers.getlist("Set-Cookie"))


def assert_session_cookie_flags(cookie: dict[str, str], secure: bool) -> None:
    assert cookie["value"]
    assert "httponly" in cookie
    assert cookie["samesite"] == "Lax"
    assert cookie["path"] == "/"
    assert ("secure" in cookie) is secure


def login_page(flows: Any, rp: Any, browser: Any, **params: Any) -> requests.Response:
    url, _ = rp.authorize_url(**params)
    page = browser.follow(browser.get(url))
    assert page_name(page.text) == "login", page.text[:500]
    return page


def authorize_outcome(rp: Any, session: requests.Session, **params: Any) -> dict[str, str]:
    """Where a prompt=none request lands: the callback's parameters."""
    url, _ = rp.authorize_url(prompt="none", **params)
    response = session.get(url, allow_redirects=False, timeout=30)
    location = response.headers.get("Location", "")
    assert location.startswith(CALLBACK), (response.status_code, location, response.text[:300])
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def replay_cookie(value: str) -> requests.Session:
    """Another user agent presenting a given session id."""
    session = requests.Session()
    session.headers["Cookie"] = f"{COOKIE}={value}"
    return session


# -- cookie ---------------------------------------------------------------------------------

def test_session_cookie_flags_over_http(flows):
    flows.user("alice")
    rp = flows.client("rp1")
    browser = flows.browser()
    page = login_page(flows, rp, browser)

    before = response_cookies(page)[COOKIE]  # the CSRF token lives in the session
    signed_in = browser.submit_login(page, "alice")
    after = response_cookies(signed_in)[COOKIE]

    assert_session_cookie_flags(before, secure=False)
    assert_session_cookie_flags(after, secure=False)
    # Plain http (development): no __Host- prefix, browsers would drop it without Secure.
    names = [*response_cookies(page), *response_cookies(signed_in), *browser.session.cookies.keys()]
    assert not [name for name in names if name.startswith("__")]


def test_session_id_changes_at_sign_in_and_the_old_id_is_dead(flows):
    flows.user("alice")
    rp = flows.client("rp1")
    browser = flows.browser()
    page = login_page(flows, rp, browser)
    before = browser.session.cookies[COOKIE]

    browser.submit_login(page, "alice")
    after = browser.session.cookies[COOKIE]

    assert before != after
    assert "code" in authorize_outcome(rp, browser.session)
    assert authorize_outcome(rp, replay_cookie(before))["error"] == "login_required"


def test_session_is_reused_by_later_authorization_requests(flows):
    flows.user("alice")
    rp = flows.client("rp1")
    browser = flows.browser()
    first = flows.sign_in(browser, rp)

    url, secrets_ = rp.authorize_url()
    second = browser.get(url)

    assert second.status_code == 302
    params = parse_qs(urlsplit(second.headers["Location"]).query)
    assert second.headers["Location"].startswith(CALLBACK)
    assert params["state"] == [secrets_["state"]]
    token = rp.exchange(params["code"][0], secrets_["code_verifier"])
    claims = rp.verify_id_token(token["id_token"], secrets_["nonce"])
    assert claims["sid"] == first.claims["sid"]
    assert claims["auth_time"] == first.claims["auth_time"]


# -- logout ---------------------------------------------------------------------------------

def test_rp_initiated_logout_ends_the_session(flows):
    flows.user("alice")
    rp = flows.client("rp1")
    browser = flows.browser()
    result = flows.sign_in(browser, rp)
    old_id = browser.session.cookies[COOKIE]

    response = browser.get("/logout?" + urlencode({
        "id_token_hint": result.token["id_token"], "post_logout_redirect_uri": LOGGED_OUT,
        "state": "bye"}))

    assert response.status_code == 303
    assert response.headers["Location"] == LOGGED_OUT + "?state=bye"
    deleted = response_cookies(response)[COOKIE]
    assert deleted["value"] == ""
    assert deleted.get("max-age") == "0"
    assert COOKIE not in browser.session.cookies
    assert authorize_outcome(rp, browser.session)["error"] == "login_required"
    assert authorize_outcome(rp, replay_cookie(old_id))["error"] == "login_required"


# -- response hardening ---------------------------------------------------------------------

@pytest.mark.parametrize("page", ["login", "error", "logout", "home"])
def test_hosted_pages_carry_security_headers(flows, page):
    flows.user("alice")
    rp = flows.client("rp1")
    browser = flows.browser()
    response = {
        "login": lambda: login_page(flows, rp, browser),
        "error": lambda: browser.get("/interaction/no-such-interaction"),
        "logout": lambda: browser.get("/logout"),
        "home": lambda: browser.get("/"),
    }[page]()

    headers = response.headers
    assert headers["Content-Type"].startswith("text/html")
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "no-store" in headers["Cache-Control"]


@pytest.mark.parametrize("signed_in", [True, False])
def test_form_post_response_is_locked_to_the_client_origin(flows, signed_in):
    flows.user("alice")
    rp = flows.client("rp1")
    browser = flows.browser()
    if signed_in:
        flows.sign_in(browser, rp)
    url, secrets_ = rp.authorize_url(response_mode="form_post", prompt="none")

    response = browser.get(url)

    assert response.status_code == 200
    assert page_name(response.text) == "form-post"
    assert re.search(r'<form method="post" action="([^"]+)"', response.text).group(1) == CALLBACK  # type: ignore[union-attr]
    fields = hidden_inputs(response.text)
    assert fields["state"] == secrets_["state"]
    assert fields["iss"] == rp.issuer
    if signed_in:
        assert fields["code"]
    else:
        assert fields["error"] == "login_required"
    csp = {d.split()[0]: d.split()[1:] for d in
           response.headers["Content-Security-Policy"].split(";") if d.strip()}
    script_nonce = re.search(r'<script nonce="([^"]+)"', response.text).group(1)  # type: ignore[union-attr]
    assert csp["script-src"] == [f"'nonce-{script_nonce}'"]
    assert csp["form-action"] == ["https://rp.example.test"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert "no-store" in response.headers["Cache-Control"]


# -- timeouts -------------------------------------------------------------------------------

@pytest.mark.parametrize("app_overrides", [
    pytest.param({"session": {"idle_timeout": 2}}, id="idle"),
    pytest.param({"session": {"absolute_timeout": 2}}, id="absolute"),
], indirect=True)
def test_session_expires_after_its_timeout(flows, app_overrides):
    flows.user("alice")
    rp = flows.client("rp1")
    browser = flows.browser()
    flows.sign_in(browser, rp)
    assert "code" in authorize_outcome(rp, browser.session)

    time.sleep(3)

    assert authorize_outcome(rp, browser.session)["error"] == "login_required"


@pytest.mark.parametrize("app_overrides", [{"session": {"idle_timeout": 2}}], indirect=True)
def test_activity_keeps_an_idle_session_alive(flows, app_overrides):
    flows.user("alice")
    rp = flows.client("rp1")
    browser = flows.browser()
    flows.sign_in(browser, rp)

    time.sleep(1.2)
    assert "code" in authorize_outcome(rp, browser.session)  # activity 1.2 s after sign-in
    time.sleep(1.3)  # 2.5 s after sign-in, 1.3 s after the last activity

    assert "code" in authorize_outcome(rp, browser.session)


# -- https issuer ---------------------------------------------------------------------------

class TestHttpsIssuer:
    """Issuer https://localhost:<port>; driven through Flask's test client over https."""

    @pytest.fixture
    def app_overrides(self, port: int) -> dict[str, Any]:
        return {"issuer": f"https://localhost:{port}"}

    @pytest.fixture
    def issuer(self, port: int) -> str:
        return f"https://localhost:{port}"

    @pytest.fixture
    def login(self, app: Any, client: Any, issuer: str) -> Any:
        """The login page of a fresh authorization request."""
        with app.app_context():
            register_client(name="RP", client_id="rp1", redirect_uris=[CALLBACK],
                            first_party=True)
            create_user(username="alice", password=DEFAULT_PASSWORD)
        query = urlencode({
            "response_type": "code", "client_id": "rp1", "redirect_uri": CALLBACK,
            "scope": "openid", "state": "s1",
            "code_challenge": create_s256_code_challenge("v" * 64),
            "code_challenge_method": "S256"})
        redirected = client.get("/authorize?" + query, base_url=issuer)
        assert redirected.status_code == 303
        page = client.get(redirected.headers["Location"], base_url=issuer)
        assert page_name(page.get_data(as_text=True)) == "login"
        return redirected, page

    def test_cookies_are_secure_and_host_prefixed(self, login):
        """RFC 6265bis §4.1.3.2: ``__Host-`` cookies are Secure, Path=/ and have no Domain,
        so neither a sibling subdomain nor plain http can plant or overwrite them."""
        redirected, page = login

        interaction_cookies = set_cookies(redirected.headers.getlist("Set-Cookie"))
        session_cookies = set_cookies(page.headers.getlist("Set-Cookie"))
        interaction = interaction_cookies[HOST_INTERACTION_COOKIE]
        session = session_cookies[HOST_COOKIE]

        for cookie in (session, interaction):
            assert_session_cookie_flags(cookie, secure=True)
            assert "domain" not in cookie
        assert "idp_interaction" not in interaction_cookies
        assert COOKIE not in session_cookies

    def test_sign_in_rotates_a_secure_session_cookie(self, client, login, issuer):
        _, page = login
        html = page.get_data(as_text=True)
        before = set_cookies(page.headers.getlist("Set-Cookie"))[HOST_COOKIE]
        action = re.search(r'<form method="post" action="([^"]*/login)"', html).group(1)  # type: ignore[union-attr]

        response = client.post(action, base_url=issuer, headers={"Referer": issuer + "/"}, data={
            **hidden_inputs(html), "username": "alice", "password": DEFAULT_PASSWORD})

        assert response.status_code == 303
        after = set_cookies(response.headers.getlist("Set-Cookie"))[HOST_COOKIE]
        assert_session_cookie_flags(after, secure=True)
        assert after["value"] != before["value"]

    def test_login_form_posts_with_the_referer_a_browser_sends(self, client, login, issuer):
        """Flask-WTF's strict https check needs a same-origin Referer: the pages' policy
        (same-origin) makes browsers send one on our own form posts and to nobody else."""
        _, page = login
        html = page.get_data(as_text=True)
        assert page.headers["Referrer-Policy"] == "same-origin"
        action = re.search(r'<form method="post" action="([^"]*/login)"', html).group(1)  # type: ignore[union-attr]

        response = client.post(action, base_url=issuer,
                               headers={"Referer": issuer + page.request.path}, data={
                                   **hidden_inputs(html), "username": "alice",
                                   "password": DEFAULT_PASSWORD})

        assert response.status_code == 303
        assert response.headers["Location"].startswith(CALLBACK)

    def test_the_host_prefixed_cookies_are_the_ones_read_back(self, client, login, issuer):
        """Sign-in to code over https: the interaction and the session are found under their
        __Host- names; a plain-named session cookie (as planted from a sibling subdomain or
        over http) is not what the IdP reads."""
        _, page = login
        html = page.get_data(as_text=True)
        action = re.search(r'<form method="post" action="([^"]*/login)"', html).group(1)  # type: ignore[union-attr]
        signed_in = client.post(action, base_url=issuer, headers={"Referer": issuer + "/"},
                                data={**hidden_inputs(html), "username": "alice",
                                      "password": DEFAULT_PASSWORD})
        # The login form found its interaction under the __Host- name and answered with the code.
        assert signed_in.status_code == 303, signed_in.get_data(as_text=True)[:300]
        assert signed_in.headers["Location"].startswith(CALLBACK)
        assert "code=" in signed_in.headers["Location"]
        session_id = set_cookies(signed_in.headers.getlist("Set-Cookie"))[HOST_COOKIE]["value"]
        query = urlencode({
            "response_type": "code", "client_id": "rp1", "redirect_uri": CALLBACK,
            "scope": "openid", "state": "s2", "prompt": "none",
            "code_challenge": create_s256_code_challenge("v" * 64),
            "code_challenge_method": "S256"})

        silent = client.get("/authorize?" + query, base_url=issuer)

        assert silent.status_code == 302 and "code=" in silent.headers["Location"]
        client.delete_cookie(HOST_COOKIE, domain="localhost")
        client.set_cookie(COOKIE, session_id, domain="localhost")
        planted = client.get("/authorize?" + query, base_url=issuer)
        assert planted.status_code == 302
        assert "error=login_required" in planted.headers["Location"]

    def _sign_in(self, client: Any, login: Any, issuer: str) -> Any:
        _, page = login
        html = page.get_data(as_text=True)
        action = re.search(r'<form method="post" action="([^"]*/login)"', html).group(1)  # type: ignore[union-attr]
        return client.post(action, base_url=issuer, headers={"Referer": issuer + "/"}, data={
            **hidden_inputs(html), "username": "alice", "password": DEFAULT_PASSWORD})

    def test_the_device_cookie_is_host_prefixed(self, client, login, issuer):
        cookies = set_cookies(self._sign_in(client, login, issuer).headers.getlist("Set-Cookie"))

        device = cookies[HOST_DEVICE_COOKIE]
        assert device["secure"] == "" and device["path"] == "/" and "domain" not in device
        assert "httponly" in device
        assert "idp_device" not in cookies

    def test_a_device_remembered_under_the_plain_name_moves_to_the_prefixed_one(
            self, app, client, login, issuer):
        """Browsers from before the prefix keep their device: the signed value is read under
        the old name once and set again under ``__Host-idp_device`` (no new device)."""
        from sqlalchemy import func, select

        from idp.extensions import db
        from idp.models import Device
        from idp.policy.signals import new_device_cookie

        with app.app_context():
            device_id, value = new_device_cookie()
        client.set_cookie("idp_device", value, domain="localhost")

        cookies = set_cookies(self._sign_in(client, login, issuer).headers.getlist("Set-Cookie"))

        assert cookies[HOST_DEVICE_COOKIE]["value"] == value
        with app.app_context():
            devices = db.session.scalar(select(func.count()).select_from(Device))
            stored = db.session.scalar(select(Device.device_id))
        assert devices == 1 and stored == device_id
