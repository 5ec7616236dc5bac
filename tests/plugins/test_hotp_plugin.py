"""Third-party factors: the example HOTP plugin (``examples/hotp_factor``), installed as a real
distribution, is found through the ``idp.factors`` entry point group, is switched on only by
``policy.allowed_factors``, and enrolls, challenges and counts toward aal2 like a built-in one.

The ``hotp_plugin`` fixture (``conftest.py``) installs it once per session; ``stepup_hotp`` is
imported inside the tests because it may not be importable before that.
"""

from __future__ import annotations

import ast
import base64
import re
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from idp.config import load_defaults
from idp.crypto import SecretBox
from idp.extensions import db
from idp.factors.base import Factor, FactorEnv, FactorRejected
from idp.factors.password import password_event
from idp.factors.registry import load_registry
from idp.factors.service import MfaService
from idp.models import Credential, User
from tests.conftest import build_app, free_port
from tests.helpers.factors import enroll_totp
from tests.helpers.rp import callback_params, form_action, hidden_inputs, page_name

PLUGIN_SRC = Path(__file__).resolve().parents[2] / "examples" / "hotp_factor" / "src"
DEFAULT_ALLOWED = list(load_defaults()["policy"]["allowed_factors"])
KEY = "unit-test-master-secret-0123456789abcdef"

# RFC 4226 Appendix D: secret "12345678901234567890", counters 0-9.
RFC_SECRET = b"12345678901234567890"
RFC_VECTORS = [
    # counter, HMAC-SHA-1 (hex), Truncate (decimal), HOTP
    (0, "cc93cf18508d94934c64b65d8ba7667fb7cde4b0", 1284755224, "755224"),
    (1, "75a48a19d4cbe100644e8ac1397eea747a2d33ab", 1094287082, "287082"),
    (2, "0bacb7fa082fef30782211938bc1c5e70416ff44", 137359152, "359152"),
    (3, "66c28227d03a2d5529262ff016a1e6ef76557ece", 1726969429, "969429"),
    (4, "a904c900a64b35909874b33e61c5938a8e15ed1c", 1640338314, "338314"),
    (5, "a37e783d7b7233c083d4f62926c7a25f238d0316", 868254676, "254676"),
    (6, "bc9cd28561042c83f219324d3c607256c03272ae", 1918287922, "287922"),
    (7, "a4fb960c0bc06e1eabb804e5b397cdc4b45596fa", 82162583, "162583"),
    (8, "1b3c89f65e6c9e883012052823443f048b4332db", 673399871, "399871"),
    (9, "1637409809a679dc698207310c8c7fc07290d9e5", 645520489, "520489"),
]
RFC_SECRET_B32 = base64.b32encode(RFC_SECRET).decode()


@pytest.fixture
def app_overrides(hotp_plugin):
    """Every app in this module allows the plugin (installed before the app is built)."""
    return {"policy": {"allowed_factors": [*DEFAULT_ALLOWED, "hotp"]}}


# -- RFC 4226 --------------------------------------------------------------------------------

@pytest.mark.parametrize(("counter", "mac_hex", "truncated", "code"), RFC_VECTORS)
def test_rfc4226_appendix_d_vectors(hotp_plugin, counter, mac_hex, truncated, code):
    assert hotp_plugin.dynamic_truncate(bytes.fromhex(mac_hex)) == truncated
    assert hotp_plugin.hotp(RFC_SECRET, counter) == code


def test_hotp_zero_pads_and_supports_longer_codes(hotp_plugin):
    assert hotp_plugin.hotp(RFC_SECRET, 7, digits=8) == "82162583"
    assert hotp_plugin.hotp(RFC_SECRET, 7, digits=9) == "082162583"
    assert hotp_plugin.hotp(RFC_SECRET, 2, digits=9) == "137359152"


@pytest.mark.parametrize(("counter", "digits"), [(-1, 6), (2**64, 6), (0, 5), (0, 10)])
def test_hotp_refuses_out_of_range_parameters(hotp_plugin, counter, digits):
    with pytest.raises(ValueError):
        hotp_plugin.hotp(RFC_SECRET, counter, digits=digits)


@pytest.mark.parametrize("text", [RFC_SECRET_B32, RFC_SECRET_B32.lower(),
                                  " ".join(re.findall("....", RFC_SECRET_B32)),
                                  RFC_SECRET_B32 + "===="])
def test_seeds_parse_forgivingly(hotp_plugin, text):
    assert hotp_plugin.parse_seed(text) == RFC_SECRET


@pytest.mark.parametrize("text", ["", "not base32!", "GEZDGNBV", base64.b32encode(b"x" * 15)
                                  .decode()])
def test_bad_or_short_seeds_are_refused(hotp_plugin, text):
    with pytest.raises(hotp_plugin.InvalidSeed):
        hotp_plugin.parse_seed(text)


def test_plugin_uses_the_public_interface_only():
    """No pyotp, and nothing of the IdP beyond idp.factors.base (plus annotation types)."""
    allowed = {"idp.factors.base", "idp.assurance", "idp.models"}
    imported = set()
    for path in PLUGIN_SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module)
    assert not {m for m in imported if m.split(".")[0] == "pyotp"}
    assert {m for m in imported if m.split(".")[0] == "idp"} <= allowed


# -- discovery and policy --------------------------------------------------------------------

def test_installed_distribution_exposes_the_entry_point(hotp_plugin):
    found = {ep.name: ep for ep in metadata.entry_points(group="idp.factors")}
    assert found["hotp"].value == "stepup_hotp:HotpFactor"
    assert found["hotp"].dist is not None
    assert found["hotp"].dist.name == "stepup-idp-hotp"


def test_registry_includes_the_plugin_only_when_policy_allows_it(hotp_plugin):
    allowed = load_registry([*DEFAULT_ALLOWED, "hotp"])
    default = load_registry(DEFAULT_ALLOWED)

    factor = allowed.get("hotp")
    # The entry point names a class: the registry holds an instance of it.
    assert isinstance(factor, hotp_plugin.HotpFactor)
    assert isinstance(factor, Factor)
    assert "hotp" not in default
    assert "totp" in default and "totp" in allowed
    # Picker order: after TOTP (an unused HOTP code never expires), before recovery codes.
    assert allowed.methods.index("totp") < allowed.methods.index("hotp") \
        < allowed.methods.index("recovery_code")


def test_app_built_with_hotp_allowed_registers_it(app):
    assert "hotp" in app.extensions["idp.factors"]


def test_app_with_default_policy_does_not_offer_it(tmp_path, hotp_plugin):
    other = build_app(tmp_path, free_port())
    assert "hotp" not in other.extensions["idp.factors"]
    with other.app_context():
        db.session.remove()
        db.engine.dispose()


# -- the factor against a fake environment (window, resync, replay) -------------------------

class Counters:
    """``env.advance_counter`` with the database's semantics (move forward only)."""

    def __init__(self, lose_races: bool = False) -> None:
        self.lose_races = lose_races

    def __call__(self, credential: Credential, value: int) -> bool:
        if self.lose_races or credential.counter >= value:
            return False
        credential.counter = value
        return True


def fake_env(advance: Any = None) -> FactorEnv:
    return FactorEnv(store=None, secrets=SecretBox(KEY, "factor-secrets"), master_secret=KEY,
                     settings=None, now=lambda: 1_700_000_000,
                     advance_counter=advance or Counters(), product_name="Example IdP")


def enrolled(hotp_plugin, env: FactorEnv, counter: int = 0) -> tuple[Any, Credential]:
    factor = hotp_plugin.HotpFactor()
    credential = Credential(id="c1", user_id="u1", method="hotp", counter=0, data={})
    factor.begin_enrollment(env, User(id="u1", username="alice"), credential,
                            {"seed": RFC_SECRET_B32, "counter": str(counter)})
    credential.status = "verified"
    return factor, credential


def answer(factor, env, credential, code):
    return factor.verify(env, User(id="u1", username="alice"), credential, {}, {"code": code})


def test_a_code_works_once(hotp_plugin):
    env = fake_env()
    factor, credential = enrolled(hotp_plugin, env)
    event = answer(factor, env, credential, "755224")

    assert (event.method, event.amr, event.factor_id, event.at) == \
        ("hotp", ("otp",), "c1", 1_700_000_000)
    assert credential.counter == 1
    with pytest.raises(FactorRejected) as replay:
        answer(factor, env, credential, "755224")
    assert replay.value.reason == "replayed"
    assert "already used" in replay.value.message


def test_a_code_ahead_within_the_window_resynchronises(hotp_plugin):
    env = fake_env()
    factor, credential = enrolled(hotp_plugin, env)
    answer(factor, env, credential, RFC_VECTORS[9][3])  # counter 0 expected, 9 = last in window

    assert credential.counter == 10
    for skipped in RFC_VECTORS[1:9]:  # burnt by the resynchronisation
        with pytest.raises(FactorRejected):
            answer(factor, env, credential, skipped[3])
    assert credential.counter == 10


def test_a_code_beyond_the_window_is_rejected_and_moves_nothing(hotp_plugin):
    env = fake_env()
    factor, credential = enrolled(hotp_plugin, env)
    beyond = hotp_plugin.hotp(RFC_SECRET, hotp_plugin.WINDOW)
    assert beyond not in {v[3] for v in RFC_VECTORS}

    with pytest.raises(FactorRejected) as rejected:
        answer(factor, env, credential, beyond)
    assert rejected.value.reason == "invalid_code"
    assert credential.counter == 0
    answer(factor, env, credential, "755224")


def test_losing_the_counter_race_rejects_the_code(hotp_plugin):
    """Another worker accepted the same code first: advance_counter returns False."""
    env = fake_env()
    factor, credential = enrolled(hotp_plugin, env)
    with pytest.raises(FactorRejected) as rejected:
        answer(factor, fake_env(Counters(lose_races=True)), credential, "755224")
    assert rejected.value.reason == "replayed"


@pytest.mark.parametrize("code", ["", "12345", "1234567", "abcdef", None])
def test_malformed_codes_are_rejected_before_any_work(hotp_plugin, code):
    env = fake_env()
    factor, credential = enrolled(hotp_plugin, env)
    with pytest.raises(FactorRejected) as rejected:
        factor.verify(env, User(id="u1", username="alice"), credential, {}, {"code": code})
    assert rejected.value.reason == "malformed_code"


def test_a_smaller_window_is_configurable(hotp_plugin):
    env = fake_env()
    factor, credential = enrolled(hotp_plugin, env)
    factor.window = 1
    with pytest.raises(FactorRejected):
        answer(factor, env, credential, "287082")
    answer(factor, env, credential, "755224")
    with pytest.raises(ValueError):
        hotp_plugin.HotpFactor(window=0)


def test_spaces_in_a_code_are_ignored(hotp_plugin):
    env = fake_env()
    factor, credential = enrolled(hotp_plugin, env)
    answer(factor, env, credential, " 755 224 ")
    assert credential.counter == 1


# -- through the IdP's MfaService ------------------------------------------------------------

def _user(username: str) -> User:
    return db.session.scalar(select(User).where(User.username == username))


def _hotp_credential(app, username: str) -> Credential:
    with app.app_context():
        user = _user(username)
        return db.session.scalar(select(Credential).where(
            Credential.user_id == user.id, Credential.method == "hotp"))


def wrong_code(hotp_plugin, seed: bytes, counter: int) -> str:
    """A well-formed code matching no value in the window starting at ``counter``."""
    window = {hotp_plugin.hotp(seed, c) for c in range(counter, counter + hotp_plugin.WINDOW)}
    return next(code for code in (f"{n:06d}" for n in range(10**6)) if code not in window)


def enroll_hotp(app, hotp_plugin, username: str, seed: bytes | None = None) -> bytes:
    """Enroll a token for ``username`` — a generated seed, or ``seed`` as provided — and
    consume its first code (counter 0); returns the seed."""
    with app.test_request_context():
        service = MfaService()
        params = {"seed": base64.b32encode(seed).decode()} if seed else {}
        started = service.begin_enrollment(_user(username), "hotp", params)
        seed = seed or hotp_plugin.parse_seed(started.step.display.data["secret"])
        service.finish_enrollment(_user(username), started.id,
                                  {"code": hotp_plugin.hotp(seed, 0)})
        return seed


def verify_once(app, username: str, code: str) -> Any:
    with app.test_request_context():
        service = MfaService()
        user = _user(username)
        credential = next(c for c in service.credentials(user) if c.method == "hotp")
        started = service.begin_challenge(user, credential)
        assert started.step.display.fields[0].name == "code"
        return service.verify_challenge(user, started.id, {"code": code})


def test_enrollment_with_a_generated_seed(app, flows, hotp_plugin):
    flows.user("alice")
    with app.test_request_context():
        service = MfaService()
        started = service.begin_enrollment(_user("alice"), "hotp", {})
        display = started.step.display
        secret = display.data["secret"]
        credential = started.credential
        assert credential.status == "unverified"
        assert len(secret) == 32  # 160 bits
        assert secret not in (credential.secret_encrypted or "")
        assert display.data["uri"].startswith("otpauth://hotp/StepUp%20IdP:alice?secret=")
        assert "counter=0" in display.data["uri"]
        assert " ".join(re.findall("....", secret)) in display.instructions
        seed = hotp_plugin.parse_seed(secret)

        with pytest.raises(FactorRejected):
            service.finish_enrollment(_user("alice"), started.id,
                                      {"code": wrong_code(hotp_plugin, seed, 0)})
        proven = service.finish_enrollment(_user("alice"), started.id,
                                           {"code": hotp_plugin.hotp(seed, 0)})
        assert proven.event.method == "hotp"
        assert proven.event.amr == ("otp",)

    stored = _hotp_credential(app, "alice")
    assert stored.status == "verified"
    assert stored.counter == 1
    assert stored.data == {"seed_source": "generated"}


def test_enrollment_with_a_provided_seed_and_counter(app, flows, hotp_plugin):
    flows.user("alice")
    with app.test_request_context():
        service = MfaService()
        started = service.begin_enrollment(_user("alice"), "hotp",
                                           {"seed": RFC_SECRET_B32.lower(), "counter": "5"})
        assert started.step.display.data == {}  # a provided seed is never echoed
        assert RFC_SECRET_B32 not in started.step.display.instructions
        service.finish_enrollment(_user("alice"), started.id, {"code": "254676"})
    stored = _hotp_credential(app, "alice")
    assert (stored.status, stored.counter) == ("verified", 6)
    assert stored.data == {"seed_source": "provided"}


@pytest.mark.parametrize(("params", "reason"), [
    ({"seed": "not base32!"}, "malformed_seed"),
    ({"seed": "GEZDGNBVGY3TQOJQ"}, "malformed_seed"),  # 80 bits < RFC 4226's 128
    ({"seed": RFC_SECRET_B32, "counter": "-1"}, "malformed_counter"),
    ({"counter": "ten"}, "malformed_counter"),
])
def test_enrollment_refuses_bad_parameters_and_leaves_nothing(app, flows, params, reason):
    flows.user("alice")
    with app.test_request_context(), pytest.raises(FactorRejected) as rejected:
        MfaService().begin_enrollment(_user("alice"), "hotp", params)
    assert rejected.value.reason == reason
    assert _hotp_credential(app, "alice") is None


def test_challenge_verify_once_resync_and_window(app, flows, hotp_plugin):
    flows.user("alice")
    seed = enroll_hotp(app, hotp_plugin, "alice", RFC_SECRET)  # counter 0 consumed

    proven = verify_once(app, "alice", hotp_plugin.hotp(seed, 1))
    assert proven.event.method == "hotp"
    assert _hotp_credential(app, "alice").counter == 2

    with pytest.raises(FactorRejected) as replay:
        verify_once(app, "alice", hotp_plugin.hotp(seed, 1))
    assert replay.value.reason == "replayed"

    verify_once(app, "alice", hotp_plugin.hotp(seed, 6))  # 4 presses lost: resynchronised
    assert _hotp_credential(app, "alice").counter == 7

    beyond_code = hotp_plugin.hotp(seed, 7 + hotp_plugin.WINDOW)
    assert beyond_code not in {hotp_plugin.hotp(seed, c) for c in range(6, 17)}
    with pytest.raises(FactorRejected) as beyond:
        verify_once(app, "alice", beyond_code)
    assert beyond.value.reason == "invalid_code"
    assert _hotp_credential(app, "alice").counter == 7


def test_password_plus_hotp_is_aal2_like_a_builtin_factor(app, flows, hotp_plugin):
    flows.user("alice")
    enroll_hotp(app, hotp_plugin, "alice")
    now = int(time.time())
    ladder = app.extensions["idp.ladder"]
    with app.test_request_context():
        user = _user("alice")
        service = MfaService()
        pwd = password_event(user.id, now)
        hotp_event = service.expected_events(user, now)[0]
        assert service.reachable(ladder, user, [pwd], now) >= {"aal1", "aal2"}
        assert [c.method for c in service.options(ladder, user, [pwd], "aal2", now)] == ["hotp"]

    assert ladder.evaluate([hotp_event], now).acr == "aal1"
    both = ladder.evaluate([pwd, hotp_event], now)
    assert (both.acr, both.amr) == ("aal2", ("pwd", "otp", "mfa"))


def test_hotp_and_totp_are_one_category_for_the_ladder(app, flows, hotp_plugin):
    """Kinds are NIST SP 800-63B categories: two OTP devices are both something you have."""
    flows.user("alice")
    enroll_hotp(app, hotp_plugin, "alice")
    enroll_totp(app, "alice")
    now = int(time.time())
    with app.test_request_context():
        events = MfaService().expected_events(_user("alice"), now)
    assert sorted((e.method, e.kind) for e in events) == [("hotp", "have"), ("totp", "have")]
    assert app.extensions["idp.ladder"].evaluate(events, now).acr == "aal1"


# -- the hosted pages, end to end ------------------------------------------------------------

def test_aal1_session_steps_up_to_aal2_with_one_hotp_challenge(flows, app, hotp_plugin):
    flows.user("alice")
    seed = enroll_hotp(app, hotp_plugin, "alice")
    rp = flows.client("rp1")
    browser = flows.browser()
    first = flows.sign_in(browser, rp)
    assert first.claims["acr"] == "aal1"

    url, secrets = rp.authorize_url(acr_values="aal2")
    page = browser.follow(browser.get(url))
    assert page_name(page.text) == "mfa-hotp", page.text[:400]
    assert 'autocomplete="one-time-code"' in page.text
    fields = hidden_inputs(page.text)
    action = form_action(page.text, "/mfa/verify")

    wrong = browser.post(action, {**fields, "code": wrong_code(hotp_plugin, seed, 1)})
    assert wrong.status_code == 400
    assert page_name(wrong.text) == "mfa-hotp"

    answered = browser.follow(browser.post(action, {**fields,
                                                    "code": hotp_plugin.hotp(seed, 1)}))
    callback = callback_params(answered)
    token = rp.exchange(callback.code, secrets["code_verifier"])
    claims = rp.verify_id_token(token["id_token"], secrets["nonce"])

    assert claims["acr"] == "aal2"
    assert claims["amr"] == ["pwd", "otp", "mfa"]
    assert claims["sid"] == first.claims["sid"]
    assert claims["auth_time"] >= first.claims["auth_time"]
    assert _hotp_credential(app, "alice").counter == 2


def test_enrollment_during_login_offers_the_plugin_then_aal2(flows, app, hotp_plugin):
    flows.user("alice")
    rp = flows.client("rp1")
    browser = flows.browser()
    url, secrets = rp.authorize_url(acr_values="aal2")
    page = browser.follow(browser.get(url))
    page = browser.follow(browser.submit_login(page, "alice"))
    assert page_name(page.text) == "enroll-picker", page.text[:300]
    assert 'data-factor="hotp"' in page.text

    page = browser.post(form_action(page.text, "/enroll/start"),
                        {**hidden_inputs(page.text), "method": "hotp"})
    assert page_name(page.text) == "enroll-hotp", page.text[:400]
    shown = re.search(r"with this key: ([A-Z2-7 ]+)\.", page.text)
    assert shown, page.text[:1000]
    seed = hotp_plugin.parse_seed(shown.group(1))
    page = browser.post(form_action(page.text, "/enroll/verify"),
                        {**hidden_inputs(page.text), "code": hotp_plugin.hotp(seed, 0)})
    assert page_name(page.text) == "recovery-codes"
    done = browser.follow(browser.post(form_action(page.text, "/enroll/done"),
                                       hidden_inputs(page.text)))
    callback = callback_params(done)
    claims = rp.verify_id_token(rp.exchange(callback.code, secrets["code_verifier"])["id_token"])

    assert claims["acr"] == "aal2"
    assert claims["amr"] == ["pwd", "otp", "mfa"]
