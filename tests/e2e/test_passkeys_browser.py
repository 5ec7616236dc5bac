"""Passkeys in a real browser: Debian Chromium with a CDP virtual authenticator.

(a) enrollment during login when a client asks for aal2, (b) passwordless sign-in with that
passkey from a fresh browser, (c) step-up from a password session to phr with only the
passkey. ``static/webauthn.js`` runs for real: options from the page, ``navigator.credentials``,
the credential JSON posted back.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect  # the `test` extra: pip install -e '.[test]'

from tests.helpers.browser import (
    CallbackCatcher,
    VirtualAuthenticator,
    assert_page_contract,
    goto,
    launch_chromium,
)

pytestmark = pytest.mark.browser

TIMEOUT_MS = 15_000
#: Browsers before the Level 3 JSON helpers (§5.1.8, §5.1.9): webauthn.js converts by hand.
WITHOUT_JSON_HELPERS = """
    delete PublicKeyCredential.parseCreationOptionsFromJSON;
    delete PublicKeyCredential.parseRequestOptionsFromJSON;
    delete PublicKeyCredential.prototype.toJSON;
"""


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    yield from launch_chromium()


@pytest.fixture
def new_page(chromium: Any) -> Iterator[Any]:
    """Opens pages in fresh browser contexts (nothing shared: cookies, storage…)."""
    contexts = []

    def open_page(json_helpers: bool = True) -> tuple[Any, CallbackCatcher]:
        context = chromium.new_context()
        context.set_default_timeout(TIMEOUT_MS)
        if not json_helpers:
            context.add_init_script(WITHOUT_JSON_HELPERS)
        contexts.append(context)
        catcher = CallbackCatcher(context)
        return context.new_page(), catcher

    yield open_page
    for context in contexts:
        context.close()


def page_is(page: Any, name: str) -> None:
    expect(page.locator("main")).to_have_attribute("data-page", name)


def finish_at_client(page: Any, catcher: CallbackCatcher, rp: Any,
                     secrets: dict[str, str]) -> dict[str, Any]:
    params = catcher.wait(page)
    # Let the navigation to the (fulfilled) callback settle, so that the test's next goto
    # does not interrupt it ("navigation interrupted by chrome-error").
    page.wait_for_load_state()
    assert params["state"] == secrets["state"]
    token = rp.exchange(params["code"], secrets["code_verifier"])
    return rp.verify_id_token(token["id_token"], secrets["nonce"])


def password_login(page: Any, username: str = "alice") -> None:
    page_is(page, "login")
    assert_page_contract(page)
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill("correct horse battery staple")
    page.get_by_role("button", name="Sign in", exact=True).click()


def enroll_passkey_during_login(flows: Any, new_page: Any, json_helpers: bool = True
                                ) -> tuple[Any, VirtualAuthenticator]:
    """Scenario (a): aal2 requested, no factor yet → picker → passkey → recovery codes → RP."""
    flows.user("alice")
    rp = flows.client("rp1")
    page, catcher = new_page(json_helpers)
    authenticator = VirtualAuthenticator(page)
    url, secrets = rp.authorize_url(acr_values="aal2")

    goto(page, url)
    password_login(page)
    page_is(page, "enroll-picker")
    assert_page_contract(page)
    page.locator('button[data-factor="passkey"]').click()

    page_is(page, "enroll-passkey")
    assert_page_contract(page)
    create = page.get_by_role("button", name="Create a passkey")
    expect(create).to_be_visible()
    create.click()

    page_is(page, "recovery-codes")
    expect(page.locator("[data-recovery-code]")).to_have_count(10)
    page.get_by_role("button", name="I saved them — continue").click()
    claims = finish_at_client(page, catcher, rp, secrets)

    assert claims["acr"] == "aal2"
    assert claims["amr"] == ["pwd", "pop", "user", "swk", "mfa"]
    (credential,) = authenticator.credentials()
    assert credential["isResidentCredential"] is True
    assert credential["rpId"] == "localhost"
    return rp, authenticator


def test_a_passkey_is_enrolled_during_login_when_aal2_is_requested(flows, new_page):
    enroll_passkey_during_login(flows, new_page)


@pytest.mark.parametrize("json_helpers", [True, False], ids=["native-json", "manual-json"])
def test_passwordless_sign_in_with_the_passkey_from_a_fresh_browser(flows, new_page,
                                                                     json_helpers):
    rp, enrolled = enroll_passkey_during_login(flows, new_page, json_helpers)
    page, catcher = new_page(json_helpers)
    authenticator = VirtualAuthenticator(page)
    for credential in enrolled.credentials():
        authenticator.add(credential)
    url, secrets = rp.authorize_url()

    goto(page, url)
    page_is(page, "login")
    assert_page_contract(page)
    button = page.get_by_role("button", name="Sign in with a passkey")
    expect(button).to_be_visible()
    button.click()
    claims = finish_at_client(page, catcher, rp, secrets)

    assert "pop" in claims["amr"] and "user" in claims["amr"]
    assert "pwd" not in claims["amr"]
    assert claims["acr"] in {"aal2", "phr"}
    assert authenticator.credentials()[0]["signCount"] >= 1


def test_step_up_from_a_password_session_to_phr_with_only_the_passkey(flows, new_page):
    rp, enrolled = enroll_passkey_during_login(flows, new_page)
    page, catcher = new_page()
    authenticator = VirtualAuthenticator(page)
    for credential in enrolled.credentials():
        authenticator.add(credential)
    url, secrets = rp.authorize_url()
    goto(page, url)
    password_login(page)
    assert finish_at_client(page, catcher, rp, secrets)["acr"] == "aal1"

    url, secrets = rp.authorize_url(acr_values="phr")
    goto(page, url)
    page_is(page, "mfa-passkey")
    assert_page_contract(page)
    expect(page.locator('input[type="password"]')).to_have_count(0)
    page.get_by_role("button", name="Use your passkey").click()
    claims = finish_at_client(page, catcher, rp, secrets)

    assert claims["acr"] == "phr"
    assert claims["amr"] == ["pwd", "pop", "user", "swk", "mfa"]
