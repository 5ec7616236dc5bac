"""Password sign-in hardening: no user enumeration, throttling (NIST SP 800-63B-4 §3.2.2),
rehash on parameter change, the login page contract (DESIGN §7) and CSRF."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import pytest
import requests
from argon2 import PasswordHasher, extract_parameters

from idp.authorize.login import GENERIC_FAILURE
from idp.extensions import db
from idp.models import User
from idp.throttle import LOCK_PREFIX
from idp.users import disable_user
from tests.helpers.rp import CALLBACK, DEFAULT_PASSWORD, Browser, page_name

WRONG_PASSWORD = "not the right password"
WAIT_MESSAGE = "Too many failed attempts. Try again later."
#: Small limits so that throttling is reached in a few attempts; the IP limit is higher than
#: the account limit, as in the defaults (10 / 100).
ACCOUNT_LIMIT = 3
IP_LIMIT = 8
BASE_DELAY = 1
MAX_DELAY = 4


@pytest.fixture
def app_overrides() -> dict[str, Any]:
    return {"login": {"max_failures_per_account": ACCOUNT_LIMIT,
                      "max_failures_per_ip": IP_LIMIT,
                      "base_delay": BASE_DELAY, "max_delay": MAX_DELAY}}


def error_text(html: str) -> str | None:
    match = re.search(r'<p class="error" role="alert"[^>]*>([^<]*)</p>', html)
    return match.group(1).strip() if match else None


def error_code(html: str) -> str | None:
    match = re.search(r'data-error="([^"]*)"', html)
    return match.group(1) if match else None


def open_login(flows: Any, rp: Any, browser: Browser | None = None,
               **params: Any) -> tuple[Browser, requests.Response]:
    """A fresh authorization request that lands on the login page."""
    browser = browser or flows.browser()
    url, _ = rp.authorize_url(**params)
    page = browser.follow(browser.get(url))
    assert page_name(page.text) == "login", page.text[:500]
    return browser, page


def attempt(flows: Any, rp: Any, username: str, password: str) -> requests.Response:
    browser, page = open_login(flows, rp)
    return browser.submit_login(page, username, password)


def assert_signed_in(response: requests.Response) -> None:
    """The sign-in form answered with the code at once (303: the browser GETs the client)."""
    assert response.status_code == 303, response.text[:500]
    assert response.headers["Location"].startswith(CALLBACK)
    assert "code=" in response.headers["Location"]


def assert_rejected(response: requests.Response) -> None:
    assert response.status_code == 401
    assert page_name(response.text) == "login"
    assert error_text(response.text) == GENERIC_FAILURE
    assert "Location" not in response.headers


def assert_throttled(response: requests.Response, retry_after: int) -> None:
    assert response.status_code == 429
    assert response.headers["Retry-After"] == str(retry_after)
    assert page_name(response.text) == "login"
    assert error_text(response.text) == WAIT_MESSAGE
    assert "Location" not in response.headers


def signed_in(browser: Browser, rp: Any) -> bool:
    """Whether the browser holds a signed-in session (prompt=none yields a code)."""
    url, _ = rp.authorize_url(prompt="none")
    response = browser.get(url)
    location = response.headers.get("Location", "")
    assert location.startswith(CALLBACK), (response.status_code, location)
    return "code=" in location and "error=" not in location


# -- no user enumeration ----------------------------------------------------------------------

@pytest.mark.parametrize("case", ["wrong_password", "unknown_user", "disabled_user"])
def test_every_failed_sign_in_gets_the_same_generic_answer(flows, app, case):
    flows.user("alice")
    flows.user("dora")
    with app.app_context():
        disable_user("dora")
    rp = flows.client("rp1")
    username, password = {
        "wrong_password": ("alice", WRONG_PASSWORD),
        "unknown_user": ("mallory", WRONG_PASSWORD),
        "disabled_user": ("dora", DEFAULT_PASSWORD),
    }[case]

    browser, page = open_login(flows, rp)
    response = browser.submit_login(page, username, password)

    assert_rejected(response)
    assert not signed_in(browser, rp)


# -- throttling ---------------------------------------------------------------------------------

def test_account_is_throttled_after_the_limit_even_with_the_right_password(flows):
    flows.user("alice")
    flows.user("bob")
    rp = flows.client("rp1")

    for _ in range(ACCOUNT_LIMIT):
        assert_rejected(attempt(flows, rp, "alice", WRONG_PASSWORD))
    browser, page = open_login(flows, rp)
    throttled = browser.submit_login(page, "alice", DEFAULT_PASSWORD)

    assert_throttled(throttled, BASE_DELAY)
    assert not signed_in(browser, rp)
    # Same IP, other account: the per-IP limit is higher, so bob is not affected.
    assert_signed_in(attempt(flows, rp, "bob", DEFAULT_PASSWORD))


def test_username_case_does_not_escape_the_account_limit(flows):
    flows.user("alice")
    rp = flows.client("rp1")

    for username in ("alice", "ALICE", "Alice"):
        assert_rejected(attempt(flows, rp, username, WRONG_PASSWORD))

    assert_throttled(attempt(flows, rp, "aLiCe", DEFAULT_PASSWORD), BASE_DELAY)


def test_ip_is_throttled_after_failures_spread_over_accounts(flows):
    flows.user("bob")
    rp = flows.client("rp1")
    per_account = ACCOUNT_LIMIT - 1  # never enough to lock any one account
    names = [f"guess{i}" for i in range(IP_LIMIT // per_account)]

    for name in names:
        for _ in range(per_account):
            assert_rejected(attempt(flows, rp, name, WRONG_PASSWORD))

    assert_throttled(attempt(flows, rp, "bob", DEFAULT_PASSWORD), BASE_DELAY)


def test_success_resets_the_account_counter(flows):
    flows.user("alice")
    rp = flows.client("rp1")

    for _ in range(ACCOUNT_LIMIT - 1):
        assert_rejected(attempt(flows, rp, "alice", WRONG_PASSWORD))
    assert_signed_in(attempt(flows, rp, "alice", DEFAULT_PASSWORD))
    # Without the reset the first of these failures would reach the limit.
    for _ in range(ACCOUNT_LIMIT - 1):
        assert_rejected(attempt(flows, rp, "alice", WRONG_PASSWORD))

    assert_signed_in(attempt(flows, rp, "alice", DEFAULT_PASSWORD))


def test_delay_doubles_with_each_failure_past_the_limit_up_to_max_delay(flows, app):
    flows.user("alice")
    rp = flows.client("rp1")
    store = app.extensions["idp.store"]
    for _ in range(ACCOUNT_LIMIT):
        assert_rejected(attempt(flows, rp, "alice", WRONG_PASSWORD))

    retry_after = []
    for _ in range(4):
        throttled = attempt(flows, rp, "alice", DEFAULT_PASSWORD)
        assert throttled.status_code == 429
        retry_after.append(int(throttled.headers["Retry-After"]))
        # Let the delay elapse without sleeping: drop the lock, keep the failure count.
        store.delete(LOCK_PREFIX + "login:user:alice")
        assert_rejected(attempt(flows, rp, "alice", WRONG_PASSWORD))

    # base_delay * 2^(n - limit) for n = limit .. limit+3, capped at max_delay.
    assert retry_after == [1, 2, 4, 4]


# -- password rehash --------------------------------------------------------------------------

@pytest.mark.parametrize(("stored_params", "rehashed"), [
    ({"time_cost": 1, "memory_cost": 4096, "parallelism": 1}, True),
    ({"time_cost": 1, "memory_cost": 8192, "parallelism": 1}, False),  # the configured ones
])
def test_sign_in_rehashes_a_password_stored_with_other_parameters(flows, app, stored_params,
                                                                  rehashed):
    user_id = flows.user("alice")
    rp = flows.client("rp1")
    old_hash = PasswordHasher(**stored_params).hash(DEFAULT_PASSWORD)
    with app.app_context():
        db.session.get(User, user_id).password_hash = old_hash
        db.session.commit()

    flows.sign_in(flows.browser(), rp)

    with app.app_context():
        new_hash = db.session.get(User, user_id).password_hash
    params = extract_parameters(new_hash)
    assert (new_hash != old_hash) is rehashed
    assert (params.time_cost, params.memory_cost, params.parallelism) == (1, 8192, 1)
    assert PasswordHasher().verify(new_hash, DEFAULT_PASSWORD)


# -- page contract and CSRF -------------------------------------------------------------------

class FormParser(HTMLParser):
    """Forms, their inputs and the page's <label for> targets."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self.labels: set[str] = set()
        self.orphan_inputs: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "form":
            self.forms.append({**attributes, "inputs": []})
        elif tag == "label" and attributes.get("for"):
            self.labels.add(attributes["for"])  # type: ignore[arg-type]
        elif tag == "input":
            (self.forms[-1]["inputs"] if self.forms else self.orphan_inputs).append(attributes)


def test_login_page_follows_the_page_contract(flows):
    flows.user("alice")
    rp = flows.client("rp1")
    _, page = open_login(flows, rp)
    parser = FormParser()
    parser.feed(page.text)

    assert page_name(page.text) == "login"
    assert parser.forms and not parser.orphan_inputs
    for form in parser.forms:
        assert form["method"] == "post"
        hidden = {i["name"]: i.get("value") for i in form["inputs"] if i.get("type") == "hidden"}
        assert hidden.get("csrf_token"), form
        for field in form["inputs"]:
            if field.get("type") != "hidden":
                assert field.get("id") in parser.labels, field
    inputs = {i["name"]: i for form in parser.forms for i in form["inputs"]}
    assert inputs["username"]["autocomplete"] == "username"
    assert inputs["password"]["autocomplete"] == "current-password"
    assert inputs["password"]["type"] == "password"


@pytest.mark.parametrize("token", ["missing", "forged", "another_browsers"])
def test_login_post_without_a_valid_csrf_token_is_refused(flows, token):
    flows.user("alice")
    rp = flows.client("rp1")
    browser, page = open_login(flows, rp)
    form = {"username": "alice", "password": DEFAULT_PASSWORD}
    if token == "forged":
        form["csrf_token"] = "IjAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAi.forged"
    elif token == "another_browsers":
        _, other_page = open_login(flows, rp)
        form["csrf_token"] = re.search(r'name="csrf_token" value="([^"]+)"',
                                       other_page.text).group(1)  # type: ignore[union-attr]
    action = re.search(r'<form method="post" action="([^"]*/login)"', page.text).group(1)  # type: ignore[union-attr]

    response = browser.post(action, form)

    assert response.status_code == 400
    assert page_name(response.text) == "error"
    assert error_code(response.text) == "invalid_request"
    assert "Location" not in response.headers
    assert not signed_in(browser, rp)


@pytest.mark.parametrize(("username", "password", "status", "error"), [
    ("a" * 5000, DEFAULT_PASSWORD, 401, None),
    ("alice", "p" * 5000, 401, None),
    ("alice", DEFAULT_PASSWORD + "x" * 2000, 401, None),
    # Larger than server.max_request_bytes (65536): refused before it is parsed.
    ("alice", "p" * 70_000, 413, "request_too_large"),
])
def test_oversized_credentials_are_refused_cleanly(flows, username, password, status, error):
    flows.user("alice")
    rp = flows.client("rp1")
    browser, page = open_login(flows, rp)

    response = browser.submit_login(page, username, password)

    assert response.status_code == status
    assert "Location" not in response.headers
    if error is None:
        assert error_text(response.text) == GENERIC_FAILURE
    else:
        assert page_name(response.text) == "error"
        assert error_code(response.text) == error
    assert not signed_in(browser, rp)
