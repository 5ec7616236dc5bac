"""Real-browser helpers: Debian Chromium driven by Playwright, with a CDP virtual authenticator.

Browsers refuse WebAuthn on IP-address origins, so pages are opened at
``http://localhost:PORT`` (the live server's issuer) with RP ID ``localhost`` (DESIGN §7).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.helpers.rp import CALLBACK

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
INSTALL_HINT = ("Chromium is missing at /usr/bin/chromium: run `make browser` (as root on "
                "Debian it runs `apt-get install -y chromium`), or install your distribution's "
                "chromium package.")


def launch_chromium() -> Iterator[Any]:
    """A headless Chromium for a test module (fails with the install hint when missing)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(INSTALL_HINT)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class VirtualAuthenticator:
    """A CTAP2 platform authenticator with resident keys and user verification, attached to
    one page through the Chrome DevTools Protocol ``WebAuthn`` domain."""

    OPTIONS = {"protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
               "hasUserVerification": True, "isUserVerified": True}

    def __init__(self, page: Any) -> None:
        self.cdp = page.context.new_cdp_session(page)
        self.cdp.send("WebAuthn.enable", {"enableUI": False})
        self.id = self.cdp.send("WebAuthn.addVirtualAuthenticator",
                                {"options": self.OPTIONS})["authenticatorId"]

    def credentials(self) -> list[dict[str, Any]]:
        return self.cdp.send("WebAuthn.getCredentials",
                             {"authenticatorId": self.id})["credentials"]

    def add(self, credential: dict[str, Any]) -> None:
        """Copy a credential (as ``credentials()`` returned it) into this authenticator."""
        keep = ("credentialId", "isResidentCredential", "rpId", "privateKey", "userHandle",
                "signCount")
        self.cdp.send("WebAuthn.addCredential", {
            "authenticatorId": self.id,
            "credential": {k: credential[k] for k in keep if k in credential}})


class CallbackCatcher:
    """Notes every request to the relying party's redirect URI (the host does not resolve)
    and answers it inside the browser where the browser lets a route do so."""

    def __init__(self, context: Any) -> None:
        self.urls: list[str] = []
        context.on("request", self._seen)
        context.route(CALLBACK.rsplit("/", 1)[0] + "/**", self._answer)

    def _seen(self, request: Any) -> None:
        if request.url.startswith(CALLBACK):
            self.urls.append(request.url)

    @staticmethod
    def _answer(route: Any) -> None:
        route.fulfill(status=200, content_type="text/plain", body="callback reached")

    def wait(self, page: Any, timeout_ms: int = 15_000) -> dict[str, str]:
        """The query of the first callback request after ``page``'s last action."""
        waited = 0
        while not self.urls and waited < timeout_ms:
            page.wait_for_timeout(100)  # keeps Playwright's event loop turning
            waited += 100
        if not self.urls:
            alerts = [t for t in page.locator("[role=alert]").all_inner_texts() if t.strip()]
            raise AssertionError(f"the relying party's redirect URI was never reached; the "
                                 f"browser is at {page.url}, showing {alerts}")
        query = parse_qs(urlsplit(self.urls.pop(0)).query)
        self.urls.clear()
        return {k: v[0] for k, v in query.items()}


def assert_page_contract(page: Any) -> None:
    """DESIGN §7: POST forms with a CSRF field; every visible input labelled, text-like ones
    with an ``autocomplete`` token; ``<main data-page>`` present."""
    assert page.locator("main[data-page]").count() == 1
    problems = page.evaluate("""() => {
        const problems = [];
        for (const form of document.querySelectorAll("form")) {
            // getAttribute: a field named "method" shadows form.method.
            if ((form.getAttribute("method") || "").toLowerCase() !== "post")
                problems.push("form not POST: " + form.getAttribute("action"));
            if (!form.querySelector('input[type=hidden][name=csrf_token]'))
                problems.push("form without CSRF field: " + form.getAttribute("action"));
        }
        for (const input of document.querySelectorAll("input:not([type=hidden])")) {
            if (!input.id || !document.querySelector('label[for="' + input.id + '"]'))
                problems.push("input without label: " + input.name);
            const choice = ["checkbox", "radio", "submit", "button"].includes(input.type);
            if (!choice && !input.getAttribute("autocomplete"))
                problems.push("input without autocomplete: " + input.name);
        }
        return problems;
    }""")
    assert problems == [], problems


def goto(page: Any, url: str) -> None:
    """``page.goto`` that tolerates the previous navigation still ending: a redirect to the
    (unresolvable) callback host may land on Chromium's error page just as the next
    navigation starts, which Playwright reports as an interrupted navigation."""
    from playwright.sync_api import Error as PlaywrightError

    for _ in range(3):
        try:
            page.goto(url)
            return
        except PlaywrightError as exc:
            if "interrupted by another navigation" not in str(exc):
                raise
            page.wait_for_load_state()
            if not page.url.startswith("chrome-error:"):
                return  # our navigation went on (redirects) and arrived
    raise AssertionError(f"could not navigate to {url}; the browser is at {page.url}")
