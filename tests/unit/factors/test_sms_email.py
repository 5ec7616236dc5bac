"""SMS and email one-time codes (DESIGN §3, §6; idp/factors/codes.py, sms.py, email.py).

The first half drives the factors directly with an injected clock and an in-process store on
that clock (TTL, cooldown, hourly cap, hashing, messages, phone numbers); the second half goes
through MfaService inside the app (attempts per code, single use, the failure count across a
new code) and the ladder (email and aal2, SMS and phr).
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from idp import build_ladder
from idp.assurance import AuthEvent
from idp.config import load_settings
from idp.crypto import SecretBox
from idp.delivery import DeliveryFailed
from idp.extensions import db, store
from idp.factors import codes
from idp.factors.base import FactorEnv, FactorRejected, FactorUnavailable
from idp.factors.email import EmailFactor
from idp.factors.service import MfaService, _limits
from idp.factors.sms import SmsFactor, normalise_phone
from idp.models import Credential, User
from idp.store.memory import MemoryStore
from idp.throttle import Throttle
from tests.helpers.codes import code_in, enroll_email, enroll_sms, latest_code

SECRET = "unit-test-master-secret-0123456789abcdef"
PHONE = "+4915112345678"
ADDRESS = "alice@example.test"
T0 = 1_700_000_000


def fullwidth(digits: str) -> str:
    """The same digits as Unicode full-width forms (U+FF10…): not ASCII digits."""
    return "".join(chr(0xFF10 + int(d)) for d in digits)


class Clock:
    def __init__(self) -> None:
        self.t = float(T0)

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class Outbox:
    """A deliver() that records, or fails while ``failing`` is set."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []
        self.failing = False

    def __call__(self, channel: str, recipient: str, message: str) -> None:
        if self.failing:
            raise DeliveryFailed("gateway down")
        self.sent.append((channel, recipient, message))

    @property
    def last_code(self) -> str:
        return code_in(self.sent[-1][2])


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def box() -> Outbox:
    return Outbox()


def make_env(clock: Clock, box: Outbox, **overrides) -> FactorEnv:
    return FactorEnv(store=MemoryStore(clock=clock), secrets=SecretBox(SECRET, "factor-secrets"),
                     master_secret=SECRET, settings=load_settings(overrides or None, environ={}),
                     now=lambda: int(clock()), deliver=box)


@pytest.fixture
def env(clock, box) -> FactorEnv:
    return make_env(clock, box)


def alice() -> User:
    return User(id="u1", username="alice", email=ADDRESS, email_verified=False,
                phone_number=None, phone_number_verified=False)


def sms_credential(phone: str = PHONE, status: str = "verified") -> Credential:
    return Credential(id="c-sms", user_id="u1", method="sms", name="SMS", status=status,
                      data={"phone": phone}, counter=0)


def email_credential(address: str = ADDRESS) -> Credential:
    return Credential(id="c-email", user_id="u1", method="email", name="Email",
                      status="verified", data={"email": address}, counter=0)


# -- codes and messages ------------------------------------------------------------------------

def test_code_is_six_digits_and_the_message_holds_only_the_code_and_product_name(env, box):
    SmsFactor().begin_challenge(env, alice(), sms_credential())

    [(channel, recipient, message)] = box.sent
    code = box.last_code
    assert (channel, recipient) == ("sms", PHONE)
    assert message == f"{code} is your StepUp IdP verification code."


def test_parked_state_holds_a_keyed_hash_never_the_code(env, box):
    step = SmsFactor().begin_challenge(env, alice(), sms_credential())
    code = box.last_code

    parked = json.dumps({"state": step.state, "display": step.display.__dict__}, default=str)
    assert code not in parked
    assert step.state["code_hash"] == codes.code_hash(SECRET, step.state["nonce"], code)
    assert step.state["code_hash"] != codes.code_hash("another-secret", step.state["nonce"], code)


def test_codes_are_uniform_six_digit_strings():
    drawn = {codes.generate() for _ in range(2000)}
    assert all(len(c) == 6 and c.isdigit() for c in drawn)
    assert len(drawn) > 1900  # no tiny code space
    assert any(c.startswith("0") for c in drawn)  # leading zeros kept


def test_right_code_verifies_and_proves_sms(env, box):
    factor, user, credential = SmsFactor(), alice(), sms_credential()
    step = factor.begin_challenge(env, user, credential)

    event = factor.verify(env, user, credential, step.state, {"code": box.last_code})

    assert event == AuthEvent("sms", "c-sms", ("sms",), T0, {}, category="have")


def test_code_expires_after_the_ttl(env, box, clock):
    factor, user, credential = SmsFactor(), alice(), sms_credential()
    step = factor.begin_challenge(env, user, credential)
    code = box.last_code

    clock.advance(299)
    assert factor.verify(env, user, credential, step.state, {"code": code}).at == T0 + 299
    clock.advance(1)
    with pytest.raises(FactorRejected) as rejected:
        factor.verify(env, user, credential, step.state, {"code": code})
    assert rejected.value.reason == "expired_code"


def test_ttl_comes_from_settings(clock, box):
    env = make_env(clock, box, mfa={"code_ttl": 20})
    factor, user, credential = SmsFactor(), alice(), sms_credential()
    step = factor.begin_challenge(env, user, credential)
    clock.advance(20)
    with pytest.raises(FactorRejected, match="expired_code"):
        factor.verify(env, user, credential, step.state, {"code": box.last_code})
    assert "20 seconds" in step.display.instructions


@pytest.mark.parametrize("answer", ["", "12345", "1234567", "abcdef", "12 34 5",
                                    "١٢٣٤٥٦", fullwidth("123456")])
def test_malformed_answers_are_rejected(env, box, answer):
    factor, user, credential = SmsFactor(), alice(), sms_credential()
    step = factor.begin_challenge(env, user, credential)
    with pytest.raises(FactorRejected) as rejected:
        factor.verify(env, user, credential, step.state, {"code": answer})
    assert rejected.value.reason == "malformed_code"


def test_wrong_code_is_rejected_and_spaces_are_ignored(env, box):
    factor, user, credential = SmsFactor(), alice(), sms_credential()
    step = factor.begin_challenge(env, user, credential)
    code = box.last_code
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"

    with pytest.raises(FactorRejected) as rejected:
        factor.verify(env, user, credential, step.state, {"code": wrong})
    assert rejected.value.reason == "invalid_code"
    spaced = f"{code[:3]} {code[3:]}"
    assert factor.verify(env, user, credential, step.state, {"code": spaced}).method == "sms"


def test_the_comparison_is_constant_time(env, box, monkeypatch):
    calls: list[tuple[str, str]] = []

    def spy(a: str, b: str) -> bool:
        calls.append((a, b))
        return a == b

    monkeypatch.setattr(codes, "compare_digest", spy)
    factor, user, credential = SmsFactor(), alice(), sms_credential()
    step = factor.begin_challenge(env, user, credential)
    with pytest.raises(FactorRejected):
        factor.verify(env, user, credential, step.state, {"code": "000000" if box.last_code
                                                           != "000000" else "111111"})
    factor.verify(env, user, credential, step.state, {"code": box.last_code})

    assert len(calls) == 2
    assert all(expected == step.state["code_hash"] for expected, _ in calls)


# -- sending limits ----------------------------------------------------------------------------

def test_resend_cooldown_is_thirty_seconds(env, box, clock):
    factor, user, credential = SmsFactor(), alice(), sms_credential()
    factor.begin_challenge(env, user, credential)

    with pytest.raises(FactorUnavailable) as refused:
        factor.begin_challenge(env, user, credential)
    assert refused.value.retry_after == 30
    assert "30 seconds" in refused.value.message
    clock.advance(29)
    with pytest.raises(FactorUnavailable) as refused:
        factor.begin_challenge(env, user, credential)
    assert refused.value.retry_after == 1
    clock.advance(1)
    factor.begin_challenge(env, user, credential)
    assert len(box.sent) == 2


def test_cooldown_is_per_factor(env, box):
    SmsFactor().begin_challenge(env, alice(), sms_credential())
    EmailFactor().begin_challenge(env, alice(), email_credential())
    assert [channel for channel, _, _ in box.sent] == ["sms", "email"]


def test_at_most_ten_sends_in_any_hour_over_all_code_factors(env, box, clock):
    sms, email, user = SmsFactor(), EmailFactor(), alice()
    for i in range(10):
        if i % 2:
            email.begin_challenge(env, user, email_credential())
        else:
            sms.begin_challenge(env, user, sms_credential())
        clock.advance(30)
    # 300 s after the first send: the oldest of the ten frees itself at 3600 s.
    with pytest.raises(FactorUnavailable) as refused:
        sms.begin_challenge(env, user, sms_credential())
    assert refused.value.retry_after == 3600 - 300
    assert len(box.sent) == 10

    clock.advance(3600 - 300)
    sms.begin_challenge(env, user, sms_credential())
    assert len(box.sent) == 11
    clock.advance(10)
    with pytest.raises(FactorUnavailable, match="Too many codes") as refused:
        email.begin_challenge(env, user, email_credential())  # the second oldest frees at 3630
    assert refused.value.retry_after == 20


def test_enrollment_sends_count_too(env, box):
    factor, user = SmsFactor(), alice()
    factor.begin_enrollment(env, user, Credential(method="sms", data={}), {"phone": PHONE})
    with pytest.raises(FactorUnavailable):
        factor.begin_challenge(env, user, sms_credential())


def test_delivery_failure_is_a_clear_unavailable_and_gives_the_cooldown_back(env, box):
    factor, user, credential = SmsFactor(), alice(), sms_credential()
    box.failing = True
    with pytest.raises(FactorUnavailable) as failed:
        factor.begin_challenge(env, user, credential)
    assert failed.value.retry_after is None
    assert "could not send a text message" in failed.value.message
    assert "another method" in failed.value.message

    box.failing = False
    factor.begin_challenge(env, user, credential)  # no cooldown after a failure
    assert len(box.sent) == 1


# -- SMS: phone numbers, enrollment, challenges --------------------------------------------------

@pytest.mark.parametrize(("typed", "e164"), [
    ("+4915112345678", "+4915112345678"),
    ("+49 151 1234 5678", "+4915112345678"),
    ("+1 (415) 555-0100", "+14155550100"),
    ("+44\u00a07700.900123", "+447700900123"),
    ("+6834001", "+6834001"),  # short numbering plans exist
    ("004915112345678", None),  # no international prefixes: E.164 starts with +
    ("015112345678", None),
    ("+0123456789", None),  # no country code starts with 0
    ("+4915112345678901", None),  # more than 15 digits
    ("+49151abc5678", None),
    ("+" + fullwidth("4915112345678"), None),
    ("", None),
    (None, None),
])
def test_phone_numbers_must_be_e164(typed, e164):
    assert normalise_phone(typed) == e164


def test_sms_enrollment_rejects_a_number_that_is_not_e164_and_sends_nothing(env, box):
    credential = Credential(method="sms", data={})
    with pytest.raises(FactorRejected) as rejected:
        SmsFactor().begin_enrollment(env, alice(), credential, {"phone": "0151 12345678"})
    assert rejected.value.reason == "invalid_phone"
    assert "+4915112345678" in rejected.value.message
    assert box.sent == []


def test_sms_enrollment_verifies_the_number_and_records_it_on_the_user(env, box):
    factor, user = SmsFactor(), alice()
    credential = Credential(id="c-new", method="sms", data={}, status="unverified")
    step = factor.begin_enrollment(env, user, credential, {"phone": "+49 151 1234 5678"})

    assert box.sent[-1][:2] == ("sms", PHONE)
    assert PHONE not in step.display.instructions  # masked: +49•••…78
    with pytest.raises(FactorRejected):
        factor.finish_enrollment(env, user, credential, step.state, {"code": "abc"})
    assert (credential.status, user.phone_number, user.phone_number_verified) == \
        ("unverified", None, False)

    event = factor.finish_enrollment(env, user, credential, step.state,
                                     {"code": box.last_code})

    assert event.amr == ("sms",)
    assert credential.status == "verified"
    assert credential.data == {"phone": PHONE}
    assert (user.phone_number, user.phone_number_verified) == (PHONE, True)


def test_sms_is_always_enrollable_but_challenges_only_a_verified_number(env, box):
    user = alice()
    assert SmsFactor().available_for(user)
    for credential in (sms_credential(status="unverified"), sms_credential(phone="")):
        with pytest.raises(FactorUnavailable):
            SmsFactor().begin_challenge(env, user, credential)
    assert box.sent == []


# -- email -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("email", "available"), [
    (ADDRESS, True), (None, False), ("", False), ("not-an-address", False),
    ("a@b\r\nBcc: eve@example.test", False)])
def test_email_needs_an_address_on_file(email, available):
    user = alice()
    user.email = email
    assert EmailFactor().available_for(user) is available


def test_email_enrollment_sends_to_the_address_on_file_and_marks_it_verified(env, box):
    factor, user = EmailFactor(), alice()
    credential = Credential(id="c-new", method="email", data={}, status="unverified")
    step = factor.begin_enrollment(env, user, credential, {"email": "eve@example.test"})

    assert box.sent[-1][:2] == ("email", ADDRESS)
    factor.finish_enrollment(env, user, credential, step.state, {"code": box.last_code})
    assert credential.status == "verified"
    assert credential.data == {"email": ADDRESS}
    assert user.email_verified is True


def test_email_challenge_only_while_the_enrolled_address_is_on_file(env, box):
    user = alice()
    EmailFactor().begin_challenge(env, user, email_credential(address="Alice@Example.test"))
    assert box.sent[-1][:2] == ("email", ADDRESS)

    user.email = "new-address@example.test"
    with pytest.raises(FactorUnavailable, match="changed"):
        EmailFactor().begin_challenge(env, user, email_credential())


# -- through MfaService (attempts per code, single use, throttling) ----------------------------

@pytest.fixture
def app_overrides():
    # No resend cooldown here: these tests ask for new codes back to back.
    return {"mfa": {"code_resend_cooldown": 0}}


@pytest.fixture
def with_sms(app):
    with app.app_context():
        from idp.users import create_user

        create_user(username="alice", password="correct horse battery staple", email=ADDRESS)
    enroll_sms(app, "alice", PHONE)
    with app.test_request_context():
        yield db.session.scalar(select(User).where(User.username == "alice"))


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def test_five_attempts_per_code_then_the_challenge_is_gone(app, with_sms):
    user, service = with_sms, MfaService()
    credential = service.credentials(user)[0]
    started = service.begin_challenge(user, credential)
    code = latest_code(app, PHONE)

    for attempt in range(1, 6):
        with pytest.raises(FactorRejected):
            service.verify_challenge(user, started.id, {"code": _wrong(code)})
        assert (service.pending_challenge(user, started.id) is None) == (attempt == 5)
    with pytest.raises(FactorRejected) as rejected:
        service.verify_challenge(user, started.id, {"code": code})
    assert rejected.value.reason == "expired_challenge"


def test_success_is_single_use(app, with_sms):
    user, service = with_sms, MfaService()
    started = service.begin_challenge(user, service.credentials(user)[0])
    code = latest_code(app, PHONE)

    proven = service.verify_challenge(user, started.id, {"code": code})
    assert proven.event.method == "sms"
    with pytest.raises(FactorRejected) as rejected:
        service.verify_challenge(user, started.id, {"code": code})
    assert rejected.value.reason == "expired_challenge"


def test_a_new_code_replaces_the_old_one_and_keeps_the_failure_count(app, with_sms):
    user, service = with_sms, MfaService()
    first = service.begin_challenge(user, service.credentials(user)[0])
    old_code = latest_code(app, PHONE)
    for _ in range(2):
        with pytest.raises(FactorRejected):
            service.verify_challenge(user, first.id, {"code": _wrong(old_code)})
    per_factor = _limits(user, "sms")[0]
    assert Throttle(store.current).failures(per_factor) == 2

    second = service.resend_challenge(user, first.id)
    new_code = latest_code(app, PHONE)

    assert second.id != first.id
    assert service.pending_challenge(user, first.id) is None  # only the newest code works
    assert Throttle(store.current).failures(per_factor) == 2  # not reset by a new code
    with pytest.raises(FactorRejected):
        service.verify_challenge(user, second.id, {"code": _wrong(new_code)})
    assert Throttle(store.current).failures(per_factor) == 3
    assert service.verify_challenge(user, second.id, {"code": new_code}).event.method == "sms"


def test_failures_across_codes_lock_the_factor(app, with_sms):
    """mfa.max_failures_per_factor (10) consecutive failures, spread over codes, lock it."""
    from idp.errors import TooManyRequests

    user, service = with_sms, MfaService()
    started = service.begin_challenge(user, service.credentials(user)[0])
    for _ in range(2):
        code = latest_code(app, PHONE)
        for _ in range(5):
            with pytest.raises(FactorRejected):
                service.verify_challenge(user, started.id, {"code": _wrong(code)})
        started = service.begin_challenge(user, service.credentials(user)[0])
    with pytest.raises(TooManyRequests) as throttled:
        service.verify_challenge(user, started.id, {"code": latest_code(app, PHONE)})
    assert throttled.value.retry_after >= 1
    with pytest.raises(TooManyRequests):
        service.resend_challenge(user, started.id)


def test_the_parked_challenge_in_the_store_has_no_code(app, with_sms):
    from idp.factors.service import CHALLENGE_PREFIX

    user, service = with_sms, MfaService()
    started = service.begin_challenge(user, service.credentials(user)[0])
    parked = json.dumps(store.current.get(CHALLENGE_PREFIX + started.id))
    assert latest_code(app, PHONE) not in parked
    assert PHONE not in parked


def test_email_through_the_service(app):
    with app.app_context():
        from idp.users import create_user

        create_user(username="bob", password="correct horse battery staple",
                    email="bob@example.test")
    enroll_email(app, "bob")
    with app.test_request_context():
        user = db.session.scalar(select(User).where(User.username == "bob"))
        assert user.email_verified
        service = MfaService()
        started = service.begin_challenge(user, service.credentials(user)[0])
        proven = service.verify_challenge(user, started.id,
                                          {"code": latest_code(app, "bob@example.test")})
        assert proven.event.amr == ("email",)


# -- assurance: email and aal2, SMS and phr (DESIGN §3) ----------------------------------------

def _password(at: int) -> AuthEvent:
    return AuthEvent("password", "u1", ("pwd",), at)


@pytest.mark.parametrize(("factor", "email_counts", "satisfied"), [
    (SmsFactor(), False, {"aal1", "aal2"}),
    (SmsFactor(), True, {"aal1", "aal2"}),
    (EmailFactor(), False, {"aal1"}),
    (EmailFactor(), True, {"aal1", "aal2"}),
])
def test_levels_reached_with_password_and_a_code(factor, email_counts, satisfied):
    ladder = build_ladder(load_settings(
        {"policy": {"email_counts_as_factor": email_counts}}, environ={}))
    credential = sms_credential() if factor.method == "sms" else email_credential()
    events = [_password(T0), factor.expected_event(credential, T0)]

    assessed = ladder.evaluate(events, T0)

    assert set(assessed.satisfied) == satisfied  # never phr: not phishing-resistant
    assert factor.method in {"sms", "email"} and factor.amr == (factor.method,)
    if "aal2" in satisfied:
        assert assessed.amr == ("pwd", factor.method, "mfa")


def test_email_alone_is_not_a_factor_by_default():
    ladder = build_ladder(load_settings(None, environ={}))
    events = [EmailFactor().expected_event(email_credential(), T0)]
    assert ladder.evaluate(events, T0).satisfied == frozenset()
