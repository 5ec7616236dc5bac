"""SMS and email codes over HTTP (DESIGN §3, §6, §7): enrollment during login, step-up with
an SMS challenge, wrong codes and used-up challenges, "send a new code", delivery failures,
throttling, and email codes with and without policy.email_counts_as_factor.

Settings differ per test: parametrize ``app_overrides`` indirectly with a profile name.
"""

from __future__ import annotations

import re
import time

import pyotp
import pytest
from sqlalchemy import select

from idp.extensions import db
from idp.models import User
from tests.conftest import free_port
from tests.helpers.codes import enroll_email, enroll_sms, latest_code, sent_count
from tests.helpers.factors import enroll_totp
from tests.helpers.logs import idp_logs
from tests.helpers.rp import callback_params, form_action, hidden_inputs, page_name
from tests.helpers.sms_gateway import FakeGateway

PHONE = "+4915112345678"
EMAIL = "alice@example.test"


@pytest.fixture
def sms_gateway():
    gateway = FakeGateway().start()
    yield gateway
    gateway.stop()


@pytest.fixture
def app_overrides(request):
    profile = getattr(request, "param", "default")
    if profile == "default":
        return {}
    if profile == "email_counts":
        return {"policy": {"email_counts_as_factor": True}}
    if profile == "strict_throttle":
        return {"mfa": {"max_failures_per_factor": 3}}
    if profile == "short_cooldown":
        return {"mfa": {"code_resend_cooldown": 1}}
    if profile == "http_gateway":
        gateway = request.getfixturevalue("sms_gateway")
        return {"delivery": {"sms": "http", "sms_gateway": {
            "url": gateway.url, "token": gateway.token, "timeout": 2.0}}}
    if profile == "closed_gateway":
        return {"delivery": {"sms": "http", "sms_gateway": {
            "url": f"http://127.0.0.1:{free_port()}/send", "token": "t", "timeout": 2.0}}}
    raise AssertionError(profile)


def profile(name: str) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("app_overrides", [name], indirect=True)


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def answer(browser, page, code: str):
    return browser.post(form_action(page.text, "/mfa/verify"),
                        {**hidden_inputs(page.text), "code": code})


def step_up(flows, browser, rp, acr: str = "aal2"):
    """Sign in at aal1, then ask for ``acr``: returns (page, secrets)."""
    assert flows.sign_in(browser, rp).claims["acr"] == "aal1"
    url, secrets = rp.authorize_url(acr_values=acr)
    return browser.follow(browser.get(url)), secrets


def claims_of(rp, response, secrets) -> dict:
    callback = callback_params(response)
    token = rp.exchange(callback.code, secrets["code_verifier"])
    return rp.verify_id_token(token["id_token"], secrets["nonce"])


def assert_only_the_console_line_holds(records, *codes: str) -> None:
    """No log line of the "idp" tree but the console transport's own carries a code."""
    console = [r for r in records if '"event": "delivery.console"' in r.getMessage()]
    assert console, "the console transport logged nothing"
    for record in records:
        line = record.getMessage()
        for code in codes:
            if re.search(rf"(?<![0-9A-Za-z]){code}(?![0-9A-Za-z])", line):
                assert record in console and record.name == "idp.delivery", line


# -- SMS -------------------------------------------------------------------------------------

def test_sms_enrollment_during_login_reaches_aal2(flows, app):
    flows.user("alice")
    rp = flows.client("rp1")
    browser = flows.browser()
    with idp_logs() as records:
        url, secrets = rp.authorize_url(acr_values="aal2")
        page = browser.follow(browser.get(url))
        page = browser.follow(browser.submit_login(page, "alice"))
        assert page_name(page.text) == "enroll-picker", page.text[:300]
        assert 'data-factor="sms"' in page.text
        assert 'name="phone" type="tel"' in page.text and 'autocomplete="tel"' in page.text

        page = browser.post(form_action(page.text, "/enroll/start"),
                            {**hidden_inputs(page.text), "method": "sms",
                             "phone": "+49 151 1234 5678"})
        assert page.status_code == 200
        assert page_name(page.text) == "enroll-sms"
        assert 'autocomplete="one-time-code"' in page.text
        assert PHONE not in page.text  # masked
        code = latest_code(app, PHONE)

        retry = browser.post(form_action(page.text, "/enroll/verify"),
                             {**hidden_inputs(page.text), "code": wrong(code)})
        assert retry.status_code == 400
        assert page_name(retry.text) == "enroll-sms"  # same enrollment, no new code
        assert hidden_inputs(retry.text)["enrollment_id"] == hidden_inputs(page.text)[
            "enrollment_id"]
        assert sent_count(app, PHONE) == 1

        page = browser.post(form_action(retry.text, "/enroll/verify"),
                            {**hidden_inputs(retry.text), "code": code})
        assert page_name(page.text) == "recovery-codes"
        done = browser.follow(browser.post(form_action(page.text, "/enroll/done"),
                                           hidden_inputs(page.text)))
        claims = claims_of(rp, done, secrets)

    assert claims["acr"] == "aal2"
    assert claims["amr"] == ["pwd", "sms", "mfa"]
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == "alice"))
        assert (user.phone_number, user.phone_number_verified) == (PHONE, True)
    assert_only_the_console_line_holds(records, code, wrong(code))


def test_step_up_with_an_sms_challenge(flows, app):
    flows.user("alice")
    enroll_sms(app, "alice", PHONE)
    rp = flows.client("rp1")
    browser = flows.browser()
    with idp_logs() as records:
        page, secrets = step_up(flows, browser, rp)
        assert page_name(page.text) == "mfa-sms", page.text[:300]
        assert 'autocomplete="one-time-code"' in page.text
        assert 'data-action="resend"' in page.text
        code = latest_code(app, PHONE)
        claims = claims_of(rp, browser.follow(answer(browser, page, code)), secrets)

    assert claims["acr"] == "aal2"
    assert claims["amr"] == ["pwd", "sms", "mfa"]
    assert "phr" not in claims["acr"]
    assert_only_the_console_line_holds(records, code)


def test_wrong_codes_show_the_same_challenge_until_the_fifth_then_the_picker(flows, app):
    flows.user("alice")
    enroll_sms(app, "alice", PHONE)
    rp = flows.client("rp1")
    browser = flows.browser()
    page, _ = step_up(flows, browser, rp)
    challenge_id = hidden_inputs(page.text)["challenge_id"]
    code = latest_code(app, PHONE)
    sent = sent_count(app, PHONE)

    for _ in range(4):
        page = answer(browser, page, wrong(code))
        assert page.status_code == 400
        assert page_name(page.text) == "mfa-sms"
        assert hidden_inputs(page.text)["challenge_id"] == challenge_id
        assert "not right" in page.text
    fifth = answer(browser, page, wrong(code))
    assert fifth.status_code == 400
    assert page_name(fifth.text) == "mfa-picker"
    sixth = answer(browser, page, code)  # the right code, but the challenge is used up
    assert sixth.status_code == 400
    assert page_name(sixth.text) == "mfa-picker"
    assert 'data-factor="sms"' in sixth.text  # the user may start again
    assert sent_count(app, PHONE) == sent  # wrong answers never send codes


def test_a_new_code_during_the_cooldown_is_refused_and_the_current_one_still_works(flows,
                                                                                   app):
    flows.user("alice")
    enroll_sms(app, "alice", PHONE)
    rp = flows.client("rp1")
    browser = flows.browser()
    page, secrets = step_up(flows, browser, rp)
    code = latest_code(app, PHONE)
    sent = sent_count(app, PHONE)

    refused = browser.post(form_action(page.text, "/mfa/resend"), hidden_inputs(page.text))

    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 30
    assert page_name(refused.text) == "mfa-sms"
    assert "Wait" in refused.text
    assert hidden_inputs(refused.text)["challenge_id"] == hidden_inputs(page.text)[
        "challenge_id"]
    assert sent_count(app, PHONE) == sent
    claims = claims_of(rp, browser.follow(answer(browser, refused, code)), secrets)
    assert claims["acr"] == "aal2"


@profile("short_cooldown")
def test_a_new_code_after_the_cooldown_replaces_the_old_one(flows, app):
    flows.user("alice")
    enroll_sms(app, "alice", PHONE)
    rp = flows.client("rp1")
    browser = flows.browser()
    page, secrets = step_up(flows, browser, rp)
    old_code = latest_code(app, PHONE)
    sent = sent_count(app, PHONE)
    time.sleep(1.1)

    page = browser.post(form_action(page.text, "/mfa/resend"), hidden_inputs(page.text))

    assert page.status_code == 200 and page_name(page.text) == "mfa-sms"
    assert sent_count(app, PHONE) == sent + 1
    new_code = latest_code(app, PHONE)
    if new_code != old_code:
        assert answer(browser, page, old_code).status_code == 400
    claims = claims_of(rp, browser.follow(answer(browser, page, new_code)), secrets)
    assert claims["amr"] == ["pwd", "sms", "mfa"]


@profile("strict_throttle")
def test_throttling_answers_429_with_retry_after(flows, app):
    flows.user("alice")
    enroll_sms(app, "alice", PHONE)
    rp = flows.client("rp1")
    browser = flows.browser()
    page, _ = step_up(flows, browser, rp)
    code = latest_code(app, PHONE)
    for _ in range(3):  # mfa.max_failures_per_factor
        assert answer(browser, page, wrong(code)).status_code == 400

    throttled = answer(browser, page, code)

    assert throttled.status_code == 429
    assert int(throttled.headers["Retry-After"]) >= 1
    assert "Too many" in throttled.text


@profile("http_gateway")
def test_delivery_failure_on_a_challenge_shows_the_picker_and_another_factor_works(
        flows, app, sms_gateway):
    flows.user("alice")
    enroll_sms(app, "alice", PHONE, messages=sms_gateway.messages_to)
    assert sms_gateway.received[-1].authorization == f"Bearer {sms_gateway.token}"
    secret = enroll_totp(app, "alice", steps_back=1)
    rp = flows.client("rp1")
    browser = flows.browser()
    page, secrets = step_up(flows, browser, rp)
    assert page_name(page.text) == "mfa-picker"
    sms_gateway.stop()  # the gateway goes away: connections are refused

    with idp_logs() as records:
        failed = browser.post(form_action(page.text, "/mfa/start"),
                              {**hidden_inputs(page.text), "credential_id": _credential_id(
                                  page.text, "sms")})

    assert failed.status_code == 503
    assert page_name(failed.text) == "mfa-picker"
    assert "could not send a text message" in failed.text
    assert 'data-factor="totp"' in failed.text
    assert any('"event": "delivery.failed"' in r.getMessage() for r in records)
    page = browser.post(form_action(failed.text, "/mfa/start"),
                        {**hidden_inputs(failed.text),
                         "credential_id": _credential_id(failed.text, "totp")})
    assert page_name(page.text) == "mfa-totp"
    claims = claims_of(rp, browser.follow(answer(browser, page, pyotp.TOTP(secret).now())),
                       secrets)
    assert claims["amr"] == ["pwd", "otp", "mfa"]


@profile("http_gateway")
def test_delivery_failure_when_sms_is_the_only_option_shows_the_picker(flows, app,
                                                                     sms_gateway):
    flows.user("alice")
    enroll_sms(app, "alice", PHONE, messages=sms_gateway.messages_to)
    rp = flows.client("rp1")
    browser = flows.browser()
    sms_gateway.stop()

    page, _ = step_up(flows, browser, rp)

    assert page.status_code == 503
    assert page_name(page.text) == "mfa-picker"
    assert "could not send a text message" in page.text
    assert 'data-factor="sms"' in page.text  # try again later, from the picker


@profile("closed_gateway")
def test_delivery_failure_during_enrollment_lets_the_user_pick_another_factor(flows, app):
    flows.user("alice")
    rp = flows.client("rp1")
    browser = flows.browser()
    url, _ = rp.authorize_url(acr_values="aal2")
    page = browser.follow(browser.submit_login(browser.follow(browser.get(url)), "alice"))
    assert page_name(page.text) == "enroll-picker"

    failed = browser.post(form_action(page.text, "/enroll/start"),
                          {**hidden_inputs(page.text), "method": "sms", "phone": PHONE})

    assert failed.status_code == 503
    assert page_name(failed.text) == "enroll-picker"
    assert "could not send a text message" in failed.text
    assert 'data-factor="totp"' in failed.text


def _credential_id(html: str, method: str) -> str:
    for form in re.findall(r"<form .*?</form>", html, flags=re.S):
        if f'data-factor="{method}"' in form:
            return hidden_inputs(form)["credential_id"]
    raise AssertionError(f"no {method} option in {html[:500]}")


# -- email -----------------------------------------------------------------------------------

@profile("email_counts")
def test_email_code_enrollment_reaches_aal2_when_email_counts_as_a_factor(flows, app):
    flows.user("alice", email=EMAIL)
    rp = flows.client("rp1")
    browser = flows.browser()
    url, secrets = rp.authorize_url(acr_values="aal2")
    page = browser.follow(browser.submit_login(browser.follow(browser.get(url)), "alice"))
    assert page_name(page.text) == "enroll-picker"
    assert 'data-factor="email"' in page.text

    page = browser.post(form_action(page.text, "/enroll/start"),
                        {**hidden_inputs(page.text), "method": "email"})
    assert page_name(page.text) == "enroll-email"
    assert EMAIL not in page.text  # masked
    page = browser.post(form_action(page.text, "/enroll/verify"),
                        {**hidden_inputs(page.text), "code": latest_code(app, EMAIL)})
    assert page_name(page.text) == "recovery-codes"
    done = browser.follow(browser.post(form_action(page.text, "/enroll/done"),
                                       hidden_inputs(page.text)))
    claims = claims_of(rp, done, secrets)

    assert claims["acr"] == "aal2"
    assert claims["amr"] == ["pwd", "email", "mfa"]


@profile("email_counts")
def test_step_up_with_an_email_code_when_email_counts(flows, app):
    flows.user("alice", email=EMAIL)
    enroll_email(app, "alice")
    rp = flows.client("rp1")
    browser = flows.browser()
    page, secrets = step_up(flows, browser, rp)
    assert page_name(page.text) == "mfa-email"

    claims = claims_of(rp, browser.follow(answer(browser, page, latest_code(app, EMAIL))),
                       secrets)

    assert (claims["acr"], claims["amr"]) == ("aal2", ["pwd", "email", "mfa"])


def test_by_default_email_is_not_offered_as_a_way_to_reach_aal2(flows, app):
    flows.user("alice", email=EMAIL)
    enroll_email(app, "alice")
    rp = flows.client("rp1")
    browser = flows.browser()

    page, _ = step_up(flows, browser, rp)

    # The enrolled email factor cannot complete aal2, so the user is asked to set up another.
    assert page_name(page.text) == "enroll-picker", page.text[:300]
    assert 'data-factor="email"' not in page.text
    assert 'data-factor="sms"' in page.text
    assert sent_count(app, EMAIL) == 1  # only the enrollment's code: no challenge was sent
