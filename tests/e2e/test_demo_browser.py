"""The whole demo in a real browser: the IdP, the demo relying party and the demo resource
server, driven through Debian Chromium with a CDP virtual authenticator.

The IdP is the ``live_server`` (issuer ``http://localhost:<port>``); the RP and the resource
server run in threads on their own localhost ports, seeded as ``idp demo`` seeds them (the demo
user and client ``demo-rp``). The demo user first adds a passkey on the IdP's account page; the
scenarios then run in fresh browser contexts whose authenticator holds a copy of that passkey:

1. sign in at the RP at aal1 (password only), make a transfer, get the resource server's RFC 9470
   challenge, step up with only the passkey at the IdP, and the transfer is made;
2. sign in asking for ``acr_values="phr aal2"``: password, then the passkey, ID token
   ``acr=phr``, and the transfer is made without another trip to the IdP.
"""

from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect  # the `test` extra: pip install -e '.[test]'
from werkzeug.serving import make_server

from examples import relying_party, resource_server
from idp.demo import DEMO_CLIENT_ID, DEMO_PASSWORD, DEMO_USERNAME, seed
from tests.helpers.browser import VirtualAuthenticator, launch_chromium
from tests.helpers.buffered_wsgi import buffered

pytestmark = pytest.mark.browser

TIMEOUT_MS = 15_000


class ThreadedServer:
    """A WSGI server on a free localhost port, in a thread; the app is set once the port (and
    so the URL) is known. Notes the (path, status) of every request."""

    def __init__(self) -> None:
        self.app: Any = None
        self.calls: list[tuple[str, int]] = []
        self._server = make_server("127.0.0.1", 0, buffered(self._wsgi), threaded=True)
        self.url = f"http://localhost:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        def noting_start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
            self.calls.append((environ["PATH_INFO"], int(status.split()[0])))
            return start_response(status, headers, exc_info)

        return self.app(environ, noting_start_response)

    def start(self, app: Any) -> ThreadedServer:
        self.app = app
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


@dataclass
class Demo:
    idp: str
    rp: ThreadedServer
    rs: ThreadedServer
    passkeys: list[dict[str, Any]] = field(default_factory=list)

    def transfers(self) -> list[int]:
        """Statuses of the resource server's POST /transfers answers so far."""
        return [status for path, status in self.rs.calls if path == "/transfers"]


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    yield from launch_chromium()


@pytest.fixture
def new_page(chromium: Any) -> Iterator[Callable[[], tuple[Any, VirtualAuthenticator]]]:
    """Pages in fresh browser contexts, each with its own virtual authenticator."""
    contexts = []

    def open_page() -> tuple[Any, VirtualAuthenticator]:
        context = chromium.new_context()
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        return page, VirtualAuthenticator(page)

    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture
def demo(app: Any, live_server: Any) -> Iterator[Demo]:
    """The IdP with the demo user and client, the demo RP and the demo resource server."""
    rp, rs = ThreadedServer(), ThreadedServer()
    rp_port = int(rp.url.rsplit(":", 1)[1])
    seeded = seed(app, rp_port)
    rs.start(resource_server.create_app({"ISSUER": live_server.url,
                                           "AUDIENCE": DEMO_CLIENT_ID}, environ={}))
    rp.start(relying_party.create_app({
        "ISSUER": live_server.url, "CLIENT_ID": DEMO_CLIENT_ID,
        "CLIENT_SECRET": seeded.client_secret, "REDIRECT_URI": f"{rp.url}/callback",
        "POST_LOGOUT_REDIRECT_URI": f"{rp.url}/", "SECRET_KEY": secrets.token_urlsafe(32),
        "RESOURCE_URL": rs.url,
    }))
    assert seeded.rp_url == rp.url
    try:
        yield Demo(idp=live_server.url, rp=rp, rs=rs)
    finally:
        rp.stop()
        rs.stop()


def page_is(page: Any, name: str) -> None:
    expect(page.locator("main")).to_have_attribute("data-page", name)


def password_login(page: Any) -> None:
    page_is(page, "login")
    page.get_by_label("Username").fill(DEMO_USERNAME)
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()


def add_passkey_on_the_account_page(demo: Demo, new_page: Any) -> None:
    """The demo user signs in at the IdP (aal1 suffices: no factor yet) and adds a passkey."""
    page, authenticator = new_page()
    page.goto(f"{demo.idp}/account/security")
    password_login(page)
    page_is(page, "account-security")
    page.locator('button[data-factor="passkey"]').click()
    page_is(page, "enroll-passkey")
    page.get_by_role("button", name="Create a passkey").click()
    page_is(page, "recovery-codes")  # the first factor comes with recovery codes
    page.get_by_role("button", name="I saved them — continue").click()
    page_is(page, "account-security")
    expect(page.locator('li[data-factor="passkey"]')).to_have_count(1)
    demo.passkeys = authenticator.credentials()
    assert len(demo.passkeys) == 1 and demo.passkeys[0]["rpId"] == "localhost"


def fresh_browser_with_the_passkey(demo: Demo, new_page: Any) -> Any:
    """A new context (no IdP session) whose authenticator holds the enrolled passkey."""
    page, authenticator = new_page()
    for credential in demo.passkeys:
        authenticator.add(credential)
    return page


def sign_in_at_the_rp(page: Any, demo: Demo, acr_values: str = "") -> None:
    page.goto(demo.rp.url)
    expect(page.get_by_role("heading", name="You are signed out")).to_be_visible()
    page.get_by_label("acr_values").select_option(acr_values)
    page.get_by_role("button", name="Sign in", exact=True).click()
    password_login(page)


def use_the_passkey(page: Any) -> None:
    """At the IdP's second step: only the passkey is asked for, not the password again."""
    expect(page.locator("main")).to_have_attribute(
        "data-page", re.compile(r"^mfa-(passkey|picker)$"))
    if page.locator("main").get_attribute("data-page") == "mfa-picker":
        page.locator('button[data-factor="passkey"]').click()
    page_is(page, "mfa-passkey")
    expect(page.locator('input[type="password"]')).to_have_count(0)
    page.get_by_role("button", name="Use your passkey").click()


def make_transfer(page: Any, amount: str, to: str) -> None:
    page.get_by_label("Amount").fill(amount)
    page.get_by_label("To", exact=True).fill(to)
    page.get_by_role("button", name="Make a transfer").click()


def signed_in_at_the_rp(page: Any, demo: Demo) -> None:
    expect(page).to_have_url(re.compile(rf"^{re.escape(demo.rp.url)}/"))
    expect(page.get_by_role("heading", name="You are signed in")).to_be_visible()


def test_an_aal1_sign_in_steps_up_with_the_passkey_for_a_transfer(demo, new_page, tmp_path):
    add_passkey_on_the_account_page(demo, new_page)
    page = fresh_browser_with_the_passkey(demo, new_page)

    sign_in_at_the_rp(page, demo)
    signed_in_at_the_rp(page, demo)
    expect(page.locator('[data-claim="acr"]')).to_have_text("aal1")
    expect(page.locator('[data-claim="amr"]')).to_have_text("pwd")

    make_transfer(page, "25.50", "Bob")
    # The resource server's challenge sends the browser to the IdP for the missing step.
    expect(page).to_have_url(re.compile(rf"^{re.escape(demo.idp)}/"))
    use_the_passkey(page)

    signed_in_at_the_rp(page, demo)
    expect(page.get_by_role("heading", name="Transfer done")).to_be_visible()
    expect(page.get_by_text("after you stepped up at the IdP")).to_be_visible()
    expect(page.locator('[data-receipt="amount"]')).to_have_text("25.50")
    expect(page.locator('[data-receipt="to"]')).to_have_text("Bob")
    expect(page.locator('[data-receipt="acr"]')).to_have_text("aal2")
    expect(page.locator('[data-claim="acr"]')).to_have_text("aal2")
    expect(page.locator('[data-claim="amr"]')).to_contain_text("pop")
    assert demo.transfers() == [401, 200]

    screenshot = tmp_path / "demo-step-up-transfer.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert Path(screenshot).stat().st_size > 0


def test_phr_preference_gets_acr_phr_and_the_transfer_needs_no_step_up(demo, new_page,
                                                                        tmp_path):
    add_passkey_on_the_account_page(demo, new_page)
    page = fresh_browser_with_the_passkey(demo, new_page)

    sign_in_at_the_rp(page, demo, acr_values="phr aal2")
    use_the_passkey(page)
    signed_in_at_the_rp(page, demo)
    expect(page.locator('[data-claim="acr"]')).to_have_text("phr")
    expect(page.get_by_text("the acr returned is one of those requested")).to_be_visible()

    make_transfer(page, "10", "Carol")
    signed_in_at_the_rp(page, demo)
    expect(page.get_by_role("heading", name="Transfer done")).to_be_visible()
    expect(page.locator('[data-receipt="acr"]')).to_have_text("phr")
    expect(page.get_by_text("after you stepped up at the IdP")).to_have_count(0)
    assert demo.transfers() == [200]

    screenshot = tmp_path / "demo-phr-transfer.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.exists() and screenshot.stat().st_size > 0
