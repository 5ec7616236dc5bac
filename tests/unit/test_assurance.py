"""idp.assurance against the default ladder of idp/config/default.yaml (DESIGN §3).

The main table maps events, ladder settings and time to acr, amr, auth_time and the satisfied
levels; every row asserts all four.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

import idp
from idp.assurance import Assurance, AuthEvent, Held, Ladder, Report

DEFAULTS = yaml.safe_load(
    (Path(idp.__file__).parent / "config" / "default.yaml").read_text("utf-8"))
LEVELS: list[dict[str, Any]] = DEFAULTS["acr"]["levels"]
EMAIL_COUNTS_BY_DEFAULT: bool = DEFAULTS["policy"]["email_counts_as_factor"]

NOW = 1_700_000_000
DAY = 86_400
MULTI_FACTOR_URI = "http://schemas.openid.net/pape/policies/2007/06/multi-factor"
PHISHING_RESISTANT_URI = "http://schemas.openid.net/pape/policies/2007/06/phishing-resistant"
HARDWARE_URI = "http://schemas.openid.net/acr/2016/07/phishing-resistant-hardware"

NONE: frozenset[str] = frozenset()
AAL1 = frozenset({"aal1"})
TO_AAL2 = frozenset({"aal1", "aal2"})
TO_PHR = frozenset({"aal1", "aal2", "phr"})
ALL = frozenset({"aal1", "aal2", "phr", "phrh"})


def ladder(email_counts_as_factor: bool = EMAIL_COUNTS_BY_DEFAULT) -> Ladder:
    return Ladder.from_config(LEVELS, email_counts_as_factor=email_counts_as_factor)


def ago(seconds: int) -> int:
    return NOW - seconds


# -- events, shaped as the factors emit them (DESIGN §3 amr values) ---------------------------

def password(at: int) -> AuthEvent:
    return AuthEvent("password", "password:u1", ("pwd",), at)


def totp(at: int) -> AuthEvent:
    return AuthEvent("totp", "totp:1", ("otp",), at)


def sms(at: int) -> AuthEvent:
    return AuthEvent("sms", "sms:1", ("sms",), at)


def email(at: int) -> AuthEvent:
    return AuthEvent("email", "email:1", ("email",), at)


def recovery_code(at: int) -> AuthEvent:
    return AuthEvent("recovery_code", "recovery:1", ("lookup",), at)


def passkey(at: int, *, uv: bool = True, device_bound: bool = False,
            hardware_attested: bool = False, method: str = "passkey") -> AuthEvent:
    return AuthEvent(
        method, f"{method}:1", ("pop", "user", "hwk" if hardware_attested else "swk"), at,
        {"user_verified": uv, "device_bound": device_bound,
         "hardware_attested": hardware_attested},
    )


def hardware_passkey(at: int) -> AuthEvent:
    return passkey(at, device_bound=True, hardware_attested=True)


def remembered_device(at: int) -> AuthEvent:
    return AuthEvent("remembered_device", "device:1", ("rdev",), at, {"remembered": True})


@dataclass(frozen=True)
class Expect:
    acr: str | None
    amr: tuple[str, ...]
    auth_time: int | None
    satisfied: frozenset[str]


def row(label: str, events: list[AuthEvent], expected: Expect, *,
        last_active: int | None = None, email_counts: bool = False, marks: Any = ()) -> Any:
    return pytest.param(events, last_active, email_counts, expected, id=label, marks=marks)


EVALUATE_TABLE = [
    row("no events", [], Expect(None, (), None, NONE)),
    row("password only", [password(ago(100))],
        Expect("aal1", ("pwd",), ago(100), AAL1)),
    row("password then totp: auth_time is the later event",
        [password(ago(300)), totp(ago(100))],
        Expect("aal2", ("pwd", "otp", "mfa"), ago(100), TO_AAL2)),
    row("totp then password: auth_time is still the later event",
        [totp(ago(300)), password(ago(100))],
        Expect("aal2", ("otp", "pwd", "mfa"), ago(100), TO_AAL2)),
    row("password again after mfa: amr lists pwd once, auth_time the newest",
        [password(ago(500)), totp(ago(400)), password(ago(100))],
        Expect("aal2", ("pwd", "otp", "mfa"), ago(100), TO_AAL2)),
    row("user-verifying passkey alone is two factors and phishing resistant",
        [passkey(ago(50))],
        Expect("phr", ("pop", "user", "swk", "mfa"), ago(50), TO_PHR)),
    row("passkey without user verification alone is one factor",
        [passkey(ago(50), uv=False)],
        Expect("aal1", ("pop", "user", "swk"), ago(50), AAL1)),
    row("password + passkey without user verification",
        [password(ago(200)), passkey(ago(100), uv=False)],
        Expect("phr", ("pwd", "pop", "user", "swk", "mfa"), ago(100), TO_PHR)),
    row("password + user-verifying passkey",
        [password(ago(200)), passkey(ago(100))],
        Expect("phr", ("pwd", "pop", "user", "swk", "mfa"), ago(100), TO_PHR)),
    row("password + email, email not a factor: amr keeps email, auth_time ignores it",
        [password(ago(200)), email(ago(100))],
        Expect("aal1", ("pwd", "email"), ago(200), AAL1), email_counts=False),
    row("password + email, email a factor",
        [password(ago(200)), email(ago(100))],
        Expect("aal2", ("pwd", "email", "mfa"), ago(100), TO_AAL2), email_counts=True),
    row("email alone, email not a factor: nothing proven",
        [email(ago(100))], Expect(None, (), None, NONE), email_counts=False),
    row("password + sms never reaches phr",
        [password(ago(200)), sms(ago(100))],
        Expect("aal2", ("pwd", "sms", "mfa"), ago(100), TO_AAL2)),
    row("totp + sms are both something you have: one category, aal1, no mfa",
        [totp(ago(200)), sms(ago(100))],
        Expect("aal1", ("otp", "sms"), ago(100), AAL1)),
    row("totp + recovery code: one category",
        [totp(ago(200)), recovery_code(ago(100))],
        Expect("aal1", ("otp", "lookup"), ago(100), AAL1)),
    row("password + remembered device: know + have",
        [password(ago(200)), remembered_device(ago(100))],
        Expect("aal2", ("pwd", "rdev", "mfa"), ago(100), TO_AAL2)),
    row("an event declaring 'know' + totp: two categories",
        [AuthEvent("pin_plugin", "pin:1", ("pin",), ago(200), category="know"), totp(ago(100))],
        Expect("aal2", ("pin", "otp", "mfa"), ago(100), TO_AAL2)),
    row("password + recovery code never reaches phr",
        [password(ago(200)), recovery_code(ago(100))],
        Expect("aal2", ("pwd", "lookup", "mfa"), ago(100), TO_AAL2)),
    row("totp just inside the aal2 max_age",
        [password(ago(100)), totp(ago(DAY - 1))],
        Expect("aal2", ("pwd", "otp", "mfa"), ago(100), TO_AAL2)),
    row("totp older than the aal2 max_age: falls back to aal1",
        [password(ago(100)), totp(ago(DAY + 1))],
        Expect("aal1", ("pwd", "otp"), ago(100), AAL1)),
    row("active within the aal2 idle timeout",
        [password(ago(5000)), totp(ago(4900))],
        Expect("aal2", ("pwd", "otp", "mfa"), ago(4900), TO_AAL2), last_active=ago(3599)),
    row("idle longer than the aal2 idle timeout: aal2 lost, aal1 kept",
        [password(ago(5000)), totp(ago(4900))],
        Expect("aal1", ("pwd", "otp"), ago(4900), AAL1), last_active=ago(3601)),
    row("device-bound, hardware-attested, user-verifying passkey",
        [hardware_passkey(ago(50))],
        Expect("phrh", ("pop", "user", "hwk", "mfa"), ago(50), ALL)),
    row("user-verifying passkey, device-bound but not hardware-attested",
        [passkey(ago(50), device_bound=True)],
        Expect("phr", ("pop", "user", "swk", "mfa"), ago(50), TO_PHR)),
    row("user-verifying passkey, hardware-attested but synced (not device-bound)",
        [passkey(ago(50), hardware_attested=True)],
        Expect("phr", ("pop", "user", "hwk", "mfa"), ago(50), TO_PHR)),
    row("password + hardware key without user verification",
        [password(ago(200)),
         passkey(ago(100), uv=False, device_bound=True, hardware_attested=True)],
        Expect("phr", ("pwd", "pop", "user", "hwk", "mfa"), ago(100), TO_PHR)),
    row("hardware passkey just inside the phrh max_age",
        [hardware_passkey(ago(DAY // 2 - 1))],
        Expect("phrh", ("pop", "user", "hwk", "mfa"), ago(DAY // 2 - 1), ALL)),
    row("hardware passkey older than the phrh max_age: falls back to phr",
        [hardware_passkey(ago(DAY // 2 + 1))],
        Expect("phr", ("pop", "user", "hwk", "mfa"), ago(DAY // 2 + 1), TO_PHR)),
    row("idle longer than the phrh idle timeout: falls back to phr",
        [hardware_passkey(ago(1000))],
        Expect("phr", ("pop", "user", "hwk", "mfa"), ago(1000), TO_PHR), last_active=ago(901)),
    row("an event in the future is ignored",
        [password(ago(100)), totp(NOW + 60)],
        Expect("aal1", ("pwd",), ago(100), AAL1)),
    row("only events in the future: nothing proven",
        [password(NOW + 1)], Expect(None, (), None, NONE)),
    row("everything older than the aal1 max_age: nothing proven",
        [password(ago(30 * DAY + 1)), totp(ago(30 * DAY + 1))],
        Expect(None, (), None, NONE)),
    row("two WebAuthn assertions without user verification are one factor kind",
        [passkey(ago(200), uv=False, method="webauthn"), passkey(ago(100), uv=False)],
        Expect("aal1", ("pop", "user", "swk"), ago(100), AAL1)),
]


@pytest.mark.parametrize(("events", "last_active", "email_counts", "expected"), EVALUATE_TABLE)
def test_evaluate(events: list[AuthEvent], last_active: int | None, email_counts: bool,
                  expected: Expect) -> None:
    result = ladder(email_counts).evaluate(events, NOW, last_active=last_active)

    assert result == Assurance(expected.acr, expected.amr, expected.auth_time,
                               expected.satisfied, result.expires, result.held)
    assert set(result.expires) == set(expected.satisfied) == set(result.held)
    if expected.acr is not None:
        assert result.held[expected.acr] == Held(expected.amr, expected.auth_time)
    assert all(expiry > NOW for expiry in result.expires.values())


# -- per-level amr/auth_time and what a request reports (DESIGN §4.6) -------------------------

#: Password and TOTP two days old (fresh for aal1 only), then a user-verifying passkey.
OLD_MFA_NEW_PASSKEY = [password(ago(2 * DAY)), totp(ago(2 * DAY)), passkey(ago(50))]
#: A passkey, then a remembered device (which phr does not count).
PASSKEY_THEN_REMEMBERED = [passkey(ago(1000)), remembered_device(ago(10))]
PWD_OTP = [password(ago(300)), totp(ago(100))]


@pytest.mark.parametrize(
    ("events", "level", "held"),
    [
        pytest.param(OLD_MFA_NEW_PASSKEY, "aal1", Held(("pwd", "otp", "pop", "user", "swk"),
                                                       ago(50)),
                     id="aal1 counts the old proofs too, without mfa"),
        pytest.param(OLD_MFA_NEW_PASSKEY, "aal2", Held(("pop", "user", "swk", "mfa"), ago(50)),
                     id="aal2 counts only the passkey"),
        pytest.param(PASSKEY_THEN_REMEMBERED, "aal2",
                     Held(("pop", "user", "swk", "rdev", "mfa"), ago(10)),
                     id="aal2 counts the remembered device: its auth_time is the device's"),
        pytest.param(PASSKEY_THEN_REMEMBERED, "phr",
                     Held(("pop", "user", "swk", "rdev", "mfa"), ago(1000)),
                     id="phr ignores the remembered device: its auth_time is the passkey's"),
        pytest.param(PWD_OTP, "aal1", Held(("pwd", "otp"), ago(100)),
                     id="aal1 of an aal2 session has no mfa"),
    ],
)
def test_each_level_holds_its_own_amr_and_auth_time(events: list[AuthEvent], level: str,
                                                     held: Held) -> None:
    assert ladder().evaluate(events, NOW).held[level] == held


@pytest.mark.parametrize(
    ("events", "requested", "expected"),
    [
        pytest.param(PWD_OTP, ("aal1",), Report("aal1", ("pwd", "otp"), ago(100),
                                                {"aal1": ago(100) + 30 * DAY}),
                     id="RP asks aal1 while aal2 holds: aal1, no mfa"),
        pytest.param(PWD_OTP, ("1",), Report("1", ("pwd", "otp"), ago(100),
                                             {"aal1": ago(100) + 30 * DAY}),
                     id="an alias is reported as requested"),
        pytest.param(PWD_OTP, ("phr", "mfa"),
                     Report("mfa", ("pwd", "otp", "mfa"), ago(100),
                            {"aal1": ago(100) + 30 * DAY, "aal2": ago(300) + DAY}),
                     id="first satisfied value in preference order"),
        pytest.param(PWD_OTP, ("phr", "gold"),
                     Report("aal2", ("pwd", "otp", "mfa"), ago(100),
                            {"aal1": ago(100) + 30 * DAY, "aal2": ago(300) + DAY}),
                     id="nothing requested is satisfied: the strongest level"),
        pytest.param(PWD_OTP, (), Report("aal2", ("pwd", "otp", "mfa"), ago(100),
                                         {"aal1": ago(100) + 30 * DAY,
                                          "aal2": ago(300) + DAY}),
                     id="nothing requested: the strongest level"),
        pytest.param(PASSKEY_THEN_REMEMBERED, ("phr", "aal2"),
                     Report("phr", ("pop", "user", "swk", "rdev", "mfa"), ago(1000),
                            {"aal1": ago(10) + 30 * DAY, "aal2": ago(1000) + DAY,
                             "phr": ago(1000) + DAY}),
                     id="phr reports the passkey's auth_time, not the remembered device's"),
        pytest.param(OLD_MFA_NEW_PASSKEY, ("aal1",),
                     Report("aal1", ("pwd", "otp", "pop", "user", "swk"), ago(50),
                            {"aal1": ago(50) + 30 * DAY}),
                     id="aal1 from an old totp and a new passkey: amr without mfa"),
        pytest.param([], ("aal1",), Report(None, (), None, {}), id="nothing proven"),
    ],
)
def test_report(events: list[AuthEvent], requested: tuple[str, ...],
                expected: Report) -> None:
    lad = ladder()
    assert lad.report(lad.evaluate(events, NOW), requested) == expected


# -- satisfies -------------------------------------------------------------------------------

MFA_SESSION = [password(ago(300)), totp(ago(100))]


@pytest.mark.parametrize(
    ("events", "value", "last_active", "max_age", "expected"),
    [
        pytest.param(MFA_SESSION, "aal2", None, None, True, id="aal2 by name"),
        pytest.param(MFA_SESSION, "mfa", None, None, True, id="aal2 by alias"),
        pytest.param(MFA_SESSION, "1", None, None, True, id="a higher level satisfies aal1"),
        pytest.param(MFA_SESSION, "phr", None, None, False, id="totp is not phishing resistant"),
        pytest.param(MFA_SESSION, "gold", None, None, False, id="unknown value"),
        pytest.param(MFA_SESSION, "aal2", None, 100, True, id="max_age equal to the age"),
        pytest.param(MFA_SESSION, "aal2", None, 99, False, id="max_age shorter than the age"),
        pytest.param(MFA_SESSION, "aal1", None, 99, False,
                     id="max_age applies to the session's auth_time at any level"),
        pytest.param(MFA_SESSION, "aal2", ago(3601), None, False, id="aal2 lost to idleness"),
        pytest.param(MFA_SESSION, "aal1", ago(3601), None, True, id="aal1 survives idleness"),
        pytest.param([password(ago(100))], "mfa", None, None, False, id="password only"),
        pytest.param([], "aal1", None, None, False, id="no events"),
        pytest.param([hardware_passkey(ago(50))], "aal3", None, 3600, True, id="aal3 alias"),
        pytest.param([passkey(ago(50))], HARDWARE_URI, None, None, False,
                     id="phrh needs a hardware-attested device-bound passkey"),
        pytest.param(PASSKEY_THEN_REMEMBERED, "aal2", None, 500, True,
                     id="max_age against aal2's own auth_time (the remembered device)"),
        pytest.param(PASSKEY_THEN_REMEMBERED, "phr", None, 500, False,
                     id="max_age against phr's own auth_time (the older passkey)"),
    ],
)
def test_satisfies(events: list[AuthEvent], value: str, last_active: int | None,
                   max_age: int | None, expected: bool) -> None:
    assert ladder().satisfies(events, value, NOW, last_active=last_active,
                              max_age=max_age) is expected


# -- the ladder as data ----------------------------------------------------------------------

@pytest.mark.parametrize(
    ("value", "name"),
    [
        ("aal1", "aal1"), ("0", "aal1"), ("1", "aal1"),
        ("aal2", "aal2"), ("mfa", "aal2"), (MULTI_FACTOR_URI, "aal2"),
        ("phr", "phr"), (PHISHING_RESISTANT_URI, "phr"),
        ("phrh", "phrh"), ("aal3", "phrh"), (HARDWARE_URI, "phrh"),
        ("AAL1", None), ("2", None), ("", None), ("urn:unknown", None),
    ],
)
def test_resolve(value: str, name: str | None) -> None:
    level = ladder().resolve(value)
    assert (level.name if level else None) == name


@pytest.mark.parametrize(
    ("value", "rank"),
    [("aal1", 0), ("0", 0), ("mfa", 1), ("phr", 2), ("aal3", 3), ("gold", -1)],
)
def test_rank(value: str, rank: int) -> None:
    assert ladder().rank(value) == rank


@pytest.mark.parametrize(
    ("values", "strongest"),
    [
        (("aal1", "mfa"), "aal2"),
        (("aal3", "phr", "0"), "phrh"),
        ((None, "1"), "aal1"),
        ((PHISHING_RESISTANT_URI, "gold"), "phr"),
        (("gold", None, ""), None),
        ((), None),
    ],
)
def test_strongest(values: tuple[str | None, ...], strongest: str | None) -> None:
    assert ladder().strongest(*values) == strongest


def test_values_supported_lists_names_then_aliases_weakest_first() -> None:
    assert ladder().values_supported == [
        "aal1", "aal2", "phr", "phrh",
        "0", "1", "mfa", MULTI_FACTOR_URI, PHISHING_RESISTANT_URI, "aal3", HARDWARE_URI,
    ]


def _level(name: str, *aliases: str) -> dict[str, Any]:
    return {"name": name, "aliases": list(aliases), "max_age": 60}


@pytest.mark.parametrize(
    ("levels", "message"),
    [
        pytest.param([_level("a", "x"), _level("b", "x")], "'x' names two levels",
                     id="alias shared by two levels"),
        pytest.param([_level("a"), _level("b", "a")], "'a' names two levels",
                     id="alias equal to another level's name"),
        pytest.param([_level("a"), _level("a")], "'a' names two levels", id="name repeated"),
        pytest.param([], "at least one level", id="empty ladder"),
    ],
)
def test_invalid_ladder_raises_value_error(levels: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Ladder.from_config(levels)


# -- AuthEvent -------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "event",
    [
        pytest.param(password(ago(1)), id="password"),
        pytest.param(hardware_passkey(ago(2)), id="passkey with properties"),
        pytest.param(AuthEvent("email", None, (), NOW, category="have"),
                     id="no factor id, no amr"),
    ],
)
def test_auth_event_round_trips_through_a_json_dict(event: AuthEvent) -> None:
    stored = json.loads(json.dumps(event.to_dict()))
    assert AuthEvent.from_dict(stored) == event


@pytest.mark.parametrize(("method", "kind"), [("password", "know"), ("totp", "have"),
                                              ("passkey", "have"), ("hotp", "have")])
def test_event_stored_without_a_category_gets_the_method_default(method: str,
                                                                 kind: str) -> None:
    event = AuthEvent.from_dict({"method": method, "at": NOW})
    assert (event.category, event.kind) == (None, kind)


@pytest.mark.parametrize(
    ("properties", "name", "expected"),
    [
        ({"user_verified": True}, "user_verified", True),
        ({"user_verified": False}, "user_verified", False),
        ({}, "user_verified", False),
    ],
)
def test_auth_event_prop_defaults_to_false(properties: dict[str, bool], name: str,
                                           expected: bool) -> None:
    event = AuthEvent("passkey", "passkey:1", ("pop",), NOW, properties)
    assert event.prop(name) is expected
