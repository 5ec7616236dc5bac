"""The account security page: the IdP steps up on itself before showing it."""

from __future__ import annotations

import pyotp

from tests.helpers.factors import credentials, enroll_recovery_codes, enroll_totp
from tests.helpers.rp import choose_factor, form_action, hidden_inputs, page_name


def _open_account(browser, username="alice", secret=None):
    """GET /account/security, passing whatever sign-in steps it asks for."""
    page = browser.follow(browser.get("/account/security"), stop_at="/account/security")
    for _ in range(4):
        if page.headers.get("Location", "").endswith("/account/security"):
            page = browser.get("/account/security")
        name = page_name(page.text)
        if name == "account-security":
            return page
        if name == "login":
            page = browser.follow(browser.submit_login(page, username),
                                  stop_at="/account/security")
        elif name == "mfa-picker":
            page = choose_factor(browser, page, "totp")
        elif name == "mfa-totp":
            code = pyotp.TOTP(secret).now()
            page = browser.follow(browser.post(form_action(page.text, "/mfa/verify"),
                                               {**hidden_inputs(page.text), "code": code}),
                                  stop_at="/account/security")
        else:
            raise AssertionError(f"unexpected page {name}: {page.text[:300]}")
    raise AssertionError("did not reach the account page")


def test_without_a_factor_a_password_sign_in_opens_the_page(flows):
    flows.user("alice")
    browser = flows.browser()

    page = _open_account(browser)

    assert "You sign in with your password only" in page.text
    assert 'data-factor="totp"' in page.text


def test_with_a_factor_the_page_needs_the_second_step(flows, app):
    flows.user("alice")
    secret = enroll_totp(app, "alice", steps_back=1)
    browser = flows.browser()
    seen = []

    page = browser.follow(browser.get("/account/security"), stop_at="/account/security")
    seen.append(page_name(page.text))
    page = browser.follow(browser.submit_login(page, "alice"), stop_at="/account/security")
    seen.append(page_name(page.text))
    page = _open_account(browser, secret=secret)

    assert seen == ["login", "mfa-totp"]
    assert page_name(page.text) == "account-security"
    assert 'data-factor="totp"' in page.text


def test_add_totp_then_recovery_codes_are_shown_once(flows, app):
    flows.user("alice")
    browser = flows.browser()
    page = _open_account(browser)

    page = browser.post(form_action(page.text, "/security/enroll"),
                        {**hidden_inputs(page.text), "method": "totp"})
    assert page_name(page.text) == "enroll-totp"
    secret = page.text.split("data-totp-secret>")[1].split("<")[0]
    page = browser.post(form_action(page.text, "/enroll/verify"),
                        {**hidden_inputs(page.text), "code": pyotp.TOTP(secret).now()})

    assert page_name(page.text) == "recovery-codes"
    assert page.text.count("data-recovery-code") == 10
    methods = sorted(c.method for c in credentials(app, "alice"))
    assert methods == ["recovery_code", "totp"]


def test_rename_and_remove_a_factor(flows, app):
    flows.user("alice")
    secret = enroll_totp(app, "alice", steps_back=1)
    enroll_recovery_codes(app, "alice")
    browser = flows.browser()
    page = _open_account(browser, secret=secret)
    totp_id = next(c.id for c in credentials(app, "alice") if c.method == "totp")

    renamed = browser.post(f"/account/security/factors/{totp_id}/rename",
                           {**hidden_inputs(page.text), "name": "My phone"})
    assert renamed.status_code == 303
    page = browser.get("/account/security")
    assert "My phone" in page.text

    removed = browser.post(f"/account/security/factors/{totp_id}/remove",
                           hidden_inputs(page.text))
    assert removed.status_code == 303
    # The last real factor gone, the recovery codes go with it.
    assert credentials(app, "alice") == []


def test_a_stale_session_cannot_post_changes(flows, app):
    flows.user("alice")
    secret = enroll_totp(app, "alice", steps_back=1)
    rp = flows.client("rp1")
    browser = flows.browser()
    flows.sign_in(browser, rp)  # aal1 only
    totp_id = next(c.id for c in credentials(app, "alice"))
    page = browser.get("/logout")  # a page with a form: a CSRF token of this session
    fields = {"csrf_token": hidden_inputs(page.text)["csrf_token"]}

    response = browser.post(f"/account/security/factors/{totp_id}/remove", fields)

    assert response.status_code == 403
    assert [c.method for c in credentials(app, "alice")] == ["totp"]
    assert secret
