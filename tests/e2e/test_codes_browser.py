"""TOTP and recovery codes in a real browser (Debian Chromium): the user reads the TOTP key off
the enrollment page and types a code computed from it; a saved recovery code signs in later."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyotp
import pytest
from playwright.sync_api import expect

from tests.helpers.browser import CallbackCatcher, assert_page_contract, launch_chromium
from tests.helpers.rp import DEFAULT_PASSWORD

pytestmark = pytest.mark.browser
TIMEOUT_MS = 15_000


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    yield from launch_chromium()


@pytest.fixture
def open_page(chromium: Any) -> Iterator[Any]:
    contexts = []

    def make() -> tuple[Any, CallbackCatcher]:
        context = chromium.new_context()
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        return context.new_page(), CallbackCatcher(context)

    yield make
    for context in contexts:
        context.close()


def _page_is(page: Any, name: str) -> None:
    expect(page.locator("main")).to_have_attribute("data-page", name)
    assert_page_contract(page)


def _log_in(page: Any, username: str) -> None:
    _page_is(page, "login")
    page.fill("#username", username)
    page.fill("#password", DEFAULT_PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()


def test_enroll_totp_on_the_account_page_then_use_a_recovery_code(flows, open_page):
    flows.user("alice")
    rp = flows.client("rp1")
    page, catcher = open_page()

    # The account page: aal1 suffices while alice has no second factor.
    page.goto(flows.base_url + "/account/security")
    _log_in(page, "alice")
    _page_is(page, "account-security")
    page.locator('button[data-factor="totp"]').click()
    _page_is(page, "enroll-totp")
    secret = page.locator("[data-totp-secret]").inner_text().strip()
    assert page.locator("figure.qr svg").count() == 1
    page.fill("#f-code", pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Verify and finish").click()
    _page_is(page, "recovery-codes")
    codes = page.locator("[data-recovery-code]").all_inner_texts()
    assert len(codes) == 10
    page.get_by_role("button", name="I saved them — continue").click()
    _page_is(page, "account-security")
    expect(page.locator('li[data-factor="totp"]')).to_have_count(1)

    # Later, in another browser: aal2 with a recovery code instead of the app.
    other, other_catcher = open_page()
    url, secrets = rp.authorize_url(acr_values="aal2")
    other.goto(url)
    _log_in(other, "alice")
    _page_is(other, "mfa-picker")
    other.locator('button[data-factor="recovery_code"]').click()
    _page_is(other, "mfa-recovery_code")
    other.fill("#f-code", codes[0])
    other.get_by_role("button", name="Verify").click()
    params = other_catcher.wait(other)
    claims = rp.verify_id_token(rp.exchange(params["code"], secrets["code_verifier"])["id_token"])

    assert claims["acr"] == "aal2"
    assert claims["amr"] == ["pwd", "lookup", "mfa"]
    assert catcher.urls == []
