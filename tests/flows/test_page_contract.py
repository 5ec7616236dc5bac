"""Every hosted page keeps the page contract (DESIGN §7): labelled inputs with the standard
autocomplete values, POST forms with a CSRF field, ``<main data-page>``."""

from __future__ import annotations

import re

import pytest

from tests.helpers.factors import enroll_recovery_codes, enroll_totp
from tests.helpers.page_contract import contract_violations
from tests.helpers.rp import choose_factor, form_action, hidden_inputs, page_name


@pytest.fixture
def app_overrides():
    return {"policy": {"remember_device_days": 30}}


def _collect(flows, app):
    """Walk every page a user can meet; returns {data-page: html}."""
    pages: dict[str, str] = {}

    def keep(response):
        name = page_name(response.text)
        assert name, response.text[:200]
        pages.setdefault(name, response.text)
        return response

    flows.user("alice")
    flows.user("bob")
    secret = enroll_totp(app, "alice", steps_back=1)
    enroll_recovery_codes(app, "alice")
    rp = flows.client("third-party", first_party=False)
    browser = flows.browser()
    url, _ = rp.authorize_url(acr_values="aal2")
    login = keep(browser.follow(browser.get(url)))
    picker = keep(browser.follow(browser.submit_login(login, "alice")))
    keep(choose_factor(browser, picker, "totp"))
    recovery = keep(choose_factor(browser, picker, "recovery_code"))
    import pyotp

    totp_page = choose_factor(browser, picker, "totp")
    consent = keep(browser.follow(browser.post(form_action(totp_page.text, "/mfa/verify"), {
        **hidden_inputs(totp_page.text), "code": pyotp.TOTP(secret).now()})))
    assert recovery.status_code == 200
    keep(consent)
    keep(browser.get("/account/security"))
    keep(browser.get("/logout"))

    # Enrollment during sign-in, for a user without factors: picker, each factor's page,
    # recovery codes.
    other = flows.browser()
    url, _ = rp.authorize_url(acr_values="aal2")
    enroll_picker = keep(other.follow(other.submit_login(other.follow(other.get(url)), "bob")))
    for method in re.findall(r'name="method" value="([a-z_]+)"', enroll_picker.text):
        fields = hidden_inputs(enroll_picker.text.split(f'value="{method}"')[0].rsplit(
            "<form", 1)[1])
        extra = {"phone": "+4915112345678"} if method == "sms" else {}
        keep(other.post(form_action(enroll_picker.text, "/enroll/start"),
                        {**fields, "method": method, **extra}))
    keep(other.get("/nowhere"))
    return pages


def test_every_hosted_page_keeps_the_contract(flows, app):
    pages = _collect(flows, app)

    expected = {"login", "mfa-picker", "mfa-totp", "mfa-recovery_code", "consent",
                "account-security", "logout", "enroll-picker", "enroll-totp", "error"}
    assert expected <= set(pages), sorted(pages)
    problems = {name: contract_violations(html) for name, html in pages.items()}
    assert {name: p for name, p in problems.items() if p} == {}
    assert 'autocomplete="one-time-code"' in pages["mfa-totp"]
    assert 'autocomplete="current-password"' in pages["login"]
    assert "data-totp-secret" in pages["enroll-totp"] and "otpauth://" in pages["enroll-totp"]


@pytest.mark.parametrize(("html", "problem"), [
    ('<main data-page="x"><form method="get" action="/a">'
     '<input type="hidden" name="csrf_token" value="t"></form></main>', "is not POST"),
    ('<main data-page="x"><form method="post" action="/a"></form></main>', "no CSRF field"),
    ('<main data-page="x"><input id="u" name="u" autocomplete="username"></main>',
     "has no <label for>"),
    ('<main data-page="x"><label for="c">Code</label><input id="c" name="c"></main>',
     "autocomplete=None"),
    ('<main><p>no name</p></main>', "no single <main data-page>"),
])
def test_the_checker_catches_each_violation(html, problem):
    assert any(problem in p for p in contract_violations(html))
