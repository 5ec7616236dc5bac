"""Passkeys: real WebAuthn ceremonies against a software authenticator (no browser).

Registration (W3C WebAuthn Level 3 §7.1) and assertions (§7.2) go through MfaService exactly
as the hosted pages and APIs do; passwordless sign-in goes over HTTP through the live server.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from typing import Any

import pytest
from sqlalchemy import select

from idp.extensions import db
from idp.factors.base import FactorRejected
from idp.factors.service import MfaService, factor_env
from idp.models import AuditEvent, Credential, User
from tests.helpers.authenticator import AttestationCA, SoftwareAuthenticator, b64url, unb64url
from tests.helpers.rp import (
    CALLBACK,
    callback_params,
    form_action,
    hidden_inputs,
    page_name,
)

PASSWORD = "correct horse battery staple"


# -- helpers -----------------------------------------------------------------------------------

def origin_of(app: Any) -> str:
    return app.extensions["idp.settings"].issuer


def make_user(username: str = "alice") -> User:
    from idp.users import create_user

    return create_user(username=username, password=PASSWORD, email=f"{username}@example.test")


def enroll(app: Any, user: User, authenticator: SoftwareAuthenticator,
           **forge: Any) -> Credential:
    """Register a passkey through the service (``forge`` bends the client data)."""
    service = MfaService()
    started = service.begin_enrollment(user, "passkey", {})
    response = authenticator.create(started.step.display.data["options"], origin_of(app),
                                    **forge)
    return service.finish_enrollment(user, started.id,
                                     {"credential": json.dumps(response)}).credential


def authenticate(app: Any, user: User, credential: Credential,
                 authenticator: SoftwareAuthenticator, **forge: Any) -> Any:
    service = MfaService()
    started = service.begin_challenge(user, credential)
    response = authenticator.get(started.step.display.data["options"], origin_of(app), **forge)
    return service.verify_challenge(user, started.id, {"credential": json.dumps(response)})


def audit_rows(event_type: str) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.type == event_type)))


@pytest.fixture
def ctx(app: Any) -> Any:
    with app.test_request_context():
        yield app


# -- registration ------------------------------------------------------------------------------

def test_registration_options_pin_the_ceremony_parameters(ctx):
    user = make_user()
    options = MfaService().begin_enrollment(user, "passkey", {}).step.display.data["options"]

    assert options["rp"] == {"name": "StepUp IdP", "id": "localhost"}
    assert len(unb64url(options["challenge"])) == 32
    assert options["timeout"] == 300_000
    assert options["attestation"] == "direct"
    assert options["authenticatorSelection"]["residentKey"] == "preferred"
    assert options["authenticatorSelection"]["userVerification"] == "preferred"
    assert [p["alg"] for p in options["pubKeyCredParams"]] == [-7, -257, -8]
    assert options["user"]["name"] == "alice"
    assert user.id not in unb64url(options["user"]["id"]).decode("latin-1")
    assert options["excludeCredentials"] == []


def test_registration_stores_the_credential_record(ctx):
    user = make_user()
    authenticator = SoftwareAuthenticator(aaguid=bytes(range(16)))
    credential = enroll(ctx, user, authenticator)

    (credential_id,) = authenticator.credentials
    stored = db.session.get(Credential, credential.id)
    assert stored.verified and stored.method == "passkey"
    assert stored.lookup_key == b64url(credential_id)
    assert stored.counter == 0
    assert stored.data["aaguid"] == "00010203-0405-0607-0809-0a0b0c0d0e0f"
    assert stored.data["transports"] == ["internal"]
    assert stored.data["attestation_format"] == "none"
    assert stored.data["user_verified"] is True
    assert stored.data["backup_eligible"] is False
    assert stored.data["backed_up"] is False
    assert stored.data["hardware_attested"] is False
    assert stored.data["public_key"]
    assert len(audit_rows("mfa.factor_enrolled")) == 1


def test_already_registered_passkeys_are_excluded(ctx):
    user = make_user()
    authenticator = SoftwareAuthenticator()
    first = enroll(ctx, user, authenticator)

    options = MfaService().begin_enrollment(user, "passkey", {}).step.display.data["options"]

    assert [d["id"] for d in options["excludeCredentials"]] == [first.lookup_key]
    assert options["excludeCredentials"][0]["transports"] == ["internal"]
    with pytest.raises(RuntimeError, match="InvalidStateError"):
        authenticator.create(options, origin_of(ctx))


@pytest.mark.parametrize(("forge", "reason"), [
    ({"origin": "http://evil.example"}, "wrong_origin"),
    ({"rp_id": "evil.example"}, "wrong_rp_id"),
    ({"challenge": b64url(b"x" * 32)}, "challenge_mismatch"),
    ({"ceremony": "webauthn.get"}, "wrong_ceremony"),
])
def test_registration_refuses_forged_client_data(ctx, forge, reason):
    user = make_user()
    service = MfaService()
    started = service.begin_enrollment(user, "passkey", {})
    options = started.step.display.data["options"]
    origin = forge.pop("origin", origin_of(ctx))
    response = SoftwareAuthenticator().create(options, origin, **forge)

    with pytest.raises(FactorRejected) as rejected:
        service.finish_enrollment(user, started.id, {"credential": json.dumps(response)})

    assert rejected.value.reason == reason
    assert service.credentials(user) == []


@pytest.mark.parametrize(("answer", "reason"), [
    ("", "no_response"),
    ("not json", "malformed_response"),
    ('{"id": "x"}', "malformed_response"),
])
def test_registration_refuses_garbage(ctx, answer, reason):
    user = make_user()
    service = MfaService()
    started = service.begin_enrollment(user, "passkey", {})

    with pytest.raises(FactorRejected) as rejected:
        service.finish_enrollment(user, started.id, {"credential": answer})

    assert rejected.value.reason == reason


def test_an_enrollment_challenge_works_once(ctx):
    user = make_user()
    service = MfaService()
    started = service.begin_enrollment(user, "passkey", {})
    options = started.step.display.data["options"]
    service.finish_enrollment(user, started.id, {"credential": json.dumps(
        SoftwareAuthenticator().create(options, origin_of(ctx)))})

    with pytest.raises(FactorRejected) as rejected:
        service.finish_enrollment(user, started.id, {"credential": json.dumps(
            SoftwareAuthenticator().create(options, origin_of(ctx)))})

    assert rejected.value.reason == "expired_challenge"


# -- hardware attestation (DESIGN §3) ------------------------------------------------------------

CA = AttestationCA()
OTHER_CA = AttestationCA("Somebody Else's Root")
AAGUID = bytes.fromhex("ee882879721c491397753dfcce97072a")


@pytest.mark.parametrize(("app_overrides", "authenticator", "attested"), [
    pytest.param({}, SoftwareAuthenticator(attestation_ca=CA), False,
                 id="packed attestation, no anchors configured"),
    pytest.param({"webauthn": {"trust_anchors_pem": [CA.pem]}},
                 SoftwareAuthenticator(attestation_ca=CA), True,
                 id="packed attestation chaining to a configured anchor"),
    pytest.param({"webauthn": {"trust_anchors_pem": [OTHER_CA.pem]}},
                 SoftwareAuthenticator(attestation_ca=CA), False,
                 id="packed attestation from another root"),
    pytest.param({"webauthn": {"trust_anchors_pem": [CA.pem]}},
                 SoftwareAuthenticator(), False,
                 id="none attestation with anchors configured"),
    pytest.param({"webauthn": {"aaguid_allowlist": ["ee882879-721c-4913-9775-3dfcce97072a"]}},
                 SoftwareAuthenticator(aaguid=AAGUID), True,
                 id="AAGUID on the allow-list"),
    pytest.param({"webauthn": {"aaguid_allowlist": ["ee882879-721c-4913-9775-3dfcce97072a"]}},
                 SoftwareAuthenticator(aaguid=bytes(16)), False,
                 id="AAGUID not on the allow-list"),
])
def test_hardware_attestation_needs_a_configured_anchor_or_aaguid(ctx, authenticator,
                                                                  attested):
    user = make_user()
    credential = enroll(ctx, user, authenticator)

    proven = authenticate(ctx, user, credential, authenticator)

    assert credential.data["hardware_attested"] is attested
    assert proven.event.prop("hardware_attested") is attested
    assert proven.event.amr == ("pop", "user", "hwk" if attested else "swk")
    ladder = ctx.extensions["idp.ladder"]
    satisfied = ladder.evaluate([proven.event], int(time.time())).satisfied
    assert ("phrh" in satisfied) is attested
    assert "phr" in satisfied


def test_trust_anchors_may_be_pem_text_or_files(tmp_path, caplog):
    from idp.factors.webauthn import load_trust_policy

    bundle = tmp_path / "anchors.pem"
    bundle.write_text(OTHER_CA.pem + CA.pem)

    logger = logging.getLogger("idp.factors.webauthn")  # "idp" does not propagate
    logger.addHandler(caplog.handler)
    try:
        policy = load_trust_policy(
            [CA.pem, str(bundle), str(tmp_path / "missing.pem"), "-----BEGIN nonsense"],
            ["EE882879-721C-4913-9775-3DFCCE97072A", "00000000-0000-0000-0000-000000000000"])
    finally:
        logger.removeHandler(caplog.handler)

    assert len(policy.anchors) == 3
    assert policy.aaguids == {"ee882879-721c-4913-9775-3dfcce97072a"}
    assert "missing.pem" in caplog.text and "not a PEM certificate" in caplog.text


# -- authentication ------------------------------------------------------------------------------

@pytest.mark.parametrize(("user_verifying", "backup_eligible", "amr", "device_bound", "acr"), [
    (True, False, ("pop", "user", "swk"), True, "phr"),
    (True, True, ("pop", "user", "swk"), False, "phr"),
    (False, False, ("pop", "swk"), True, "aal1"),
])
def test_an_assertion_proves_possession_and_what_the_flags_say(
        ctx, user_verifying, backup_eligible, amr, device_bound, acr):
    user = make_user()
    authenticator = SoftwareAuthenticator(user_verifying=user_verifying,
                                          backup_eligible=backup_eligible,
                                          backed_up=backup_eligible)
    credential = enroll(ctx, user, authenticator)
    factor = MfaService().factor("passkey")

    proven = authenticate(ctx, user, credential, authenticator)

    event = proven.event
    assert event.method == "passkey" and event.factor_id == credential.id
    assert event.amr == amr
    assert event.properties == {"user_verified": user_verifying, "phishing_resistant": True,
                                "device_bound": device_bound, "hardware_attested": False}
    # What the picker and the pipeline expect of this credential matches what it proved.
    expected = factor.expected_event(credential, event.at)
    assert (expected.amr, expected.properties) == (event.amr, event.properties)
    ladder = ctx.extensions["idp.ladder"]
    assert ladder.evaluate([event], int(time.time())).acr == acr
    assert db.session.get(Credential, credential.id).counter == 1
    assert len(audit_rows("user.mfa_succeeded")) == 1


def test_challenge_options_name_the_credential(ctx):
    user = make_user()
    credential = enroll(ctx, user, SoftwareAuthenticator())

    options = MfaService().begin_challenge(user, credential).step.display.data["options"]

    assert options["rpId"] == "localhost"
    assert options["userVerification"] == "preferred"
    assert options["timeout"] == 300_000
    assert len(unb64url(options["challenge"])) == 32
    assert options["allowCredentials"] == [
        {"id": credential.lookup_key, "type": "public-key", "transports": ["internal"]}]


@pytest.mark.parametrize(("forge", "reason"), [
    ({"origin": "http://evil.example"}, "wrong_origin"),
    ({"origin": "http://localhost"}, "wrong_origin"),
    ({"rp_id": "evil.example"}, "wrong_rp_id"),
    ({"challenge": b64url(b"y" * 32)}, "challenge_mismatch"),
    ({"ceremony": "webauthn.create"}, "wrong_ceremony"),
    ({"user_handle": b"someone else"}, "user_handle_mismatch"),
    ({"backup_eligible": True}, "backup_eligibility_changed"),
])
def test_assertions_with_forged_client_or_authenticator_data_are_refused(ctx, forge, reason):
    user = make_user()
    authenticator = SoftwareAuthenticator()
    credential = enroll(ctx, user, authenticator)
    origin = forge.pop("origin", origin_of(ctx))
    service = MfaService()
    started = service.begin_challenge(user, credential)
    response = authenticator.get(started.step.display.data["options"], origin, **forge)

    with pytest.raises(FactorRejected) as rejected:
        service.verify_challenge(user, started.id, {"credential": json.dumps(response)})

    assert rejected.value.reason == reason
    failed = audit_rows("user.mfa_failed")
    assert [row.data["reason"] for row in failed] == [reason]


def test_a_bad_signature_is_refused(ctx):
    user = make_user()
    authenticator = SoftwareAuthenticator()
    credential = enroll(ctx, user, authenticator)
    service = MfaService()
    started = service.begin_challenge(user, credential)
    response = authenticator.get(started.step.display.data["options"], origin_of(ctx))
    signature = bytearray(unb64url(response["response"]["signature"]))
    signature[-1] ^= 0x01
    response["response"]["signature"] = b64url(bytes(signature))

    with pytest.raises(FactorRejected) as rejected:
        service.verify_challenge(user, started.id, {"credential": json.dumps(response)})

    assert rejected.value.reason == "bad_signature"
    assert db.session.get(Credential, credential.id).counter == 0


def test_an_assertion_from_an_unknown_credential_is_refused(ctx):
    user = make_user()
    credential = enroll(ctx, user, SoftwareAuthenticator())
    stranger = SoftwareAuthenticator()
    enroll(ctx, make_user("bob"), stranger)
    service = MfaService()
    started = service.begin_challenge(user, credential)
    options = {**started.step.display.data["options"], "allowCredentials": []}

    with pytest.raises(FactorRejected) as rejected:
        service.verify_challenge(user, started.id, {"credential": json.dumps(
            stranger.get(options, origin_of(ctx)))})

    assert rejected.value.reason == "unknown_credential"


def test_an_authentication_challenge_works_once(ctx):
    user = make_user()
    authenticator = SoftwareAuthenticator()
    credential = enroll(ctx, user, authenticator)
    service = MfaService()
    started = service.begin_challenge(user, credential)
    options = started.step.display.data["options"]
    service.verify_challenge(user, started.id, {"credential": json.dumps(
        authenticator.get(options, origin_of(ctx)))})

    with pytest.raises(FactorRejected) as rejected:
        service.verify_challenge(user, started.id, {"credential": json.dumps(
            authenticator.get(options, origin_of(ctx)))})

    assert rejected.value.reason == "expired_challenge"
    assert db.session.get(Credential, credential.id).counter == 1


def test_a_challenge_expires_by_the_factors_clock(ctx):
    user = make_user()
    authenticator = SoftwareAuthenticator()
    credential = enroll(ctx, user, authenticator)
    factor = MfaService().factor("passkey")
    env = factor_env()
    step = factor.begin_challenge(env, user, credential)
    response = {"credential": json.dumps(
        authenticator.get(step.display.data["options"], origin_of(ctx)))}
    late = dataclasses.replace(env, now=lambda: env.now() + 301)

    with pytest.raises(FactorRejected) as rejected:
        factor.verify(late, user, credential, step.state, response)

    assert rejected.value.reason == "expired_challenge"
    assert factor.verify(env, user, credential, step.state, response).method == "passkey"


@pytest.mark.parametrize("app_overrides", [{"mfa": {"challenge_ttl": 1}}])
def test_a_parked_challenge_expires_after_the_configured_ttl(ctx):
    user = make_user()
    authenticator = SoftwareAuthenticator()
    credential = enroll(ctx, user, authenticator)
    service = MfaService()
    started = service.begin_challenge(user, credential)
    response = authenticator.get(started.step.display.data["options"], origin_of(ctx))
    time.sleep(2.1)

    with pytest.raises(FactorRejected) as rejected:
        service.verify_challenge(user, started.id, {"credential": json.dumps(response)})

    assert rejected.value.reason == "expired_challenge"


# -- signature counter (§6.1.1) -----------------------------------------------------------------

@pytest.mark.parametrize(("stored", "received"), [(5, 5), (5, 4), (5, 0), (0, 0)])
def test_a_counter_that_does_not_increase_is_a_suspected_clone(ctx, stored, received):
    user = make_user()
    authenticator = SoftwareAuthenticator()
    credential = enroll(ctx, user, authenticator)
    credential.counter = stored
    db.session.commit()

    if stored == received == 0:
        # Both zero: an authenticator that does not count (most synced passkeys).
        proven = authenticate(ctx, user, credential, authenticator, sign_count=0)
        assert proven.event.method == "passkey"
        assert db.session.get(Credential, credential.id).counter == 0
        assert audit_rows("mfa.clone_suspected") == []
        return
    with pytest.raises(FactorRejected) as rejected:
        authenticate(ctx, user, credential, authenticator, sign_count=received)

    assert rejected.value.reason == "clone_suspected"
    (suspected,) = audit_rows("mfa.clone_suspected")
    assert suspected.user_id == user.id
    assert suspected.data == {"factor_type": "passkey", "factor_id": credential.id}
    assert db.session.get(Credential, credential.id).counter == stored


def test_authenticators_that_do_not_count_keep_working(ctx):
    user = make_user()
    authenticator = SoftwareAuthenticator(counts=False, backup_eligible=True, backed_up=True)
    credential = enroll(ctx, user, authenticator)

    for _ in range(3):
        authenticate(ctx, user, credential, authenticator)

    assert db.session.get(Credential, credential.id).counter == 0


def test_the_counter_moves_forward_with_each_assertion(ctx):
    user = make_user()
    authenticator = SoftwareAuthenticator()
    credential = enroll(ctx, user, authenticator)

    for expected in (1, 2, 3):
        authenticate(ctx, user, credential, authenticator)
        assert db.session.get(Credential, credential.id).counter == expected
    authenticate(ctx, user, credential, authenticator, sign_count=10)

    assert db.session.get(Credential, credential.id).counter == 10


def test_the_backup_state_is_refreshed(ctx):
    user = make_user()
    authenticator = SoftwareAuthenticator(backup_eligible=True, backed_up=False)
    credential = enroll(ctx, user, authenticator)
    authenticator.backed_up = True

    authenticate(ctx, user, credential, authenticator)

    assert db.session.get(Credential, credential.id).data["backed_up"] is True


# -- passwordless sign-in over HTTP ------------------------------------------------------------

def enroll_for(app: Any, username: str, authenticator: SoftwareAuthenticator) -> str:
    """Register a passkey for ``username``; returns the credential's row id."""
    with app.test_request_context():
        user = db.session.scalar(select(User).where(User.username == username))
        return enroll(app, user, authenticator).id


def passkey_sign_in(flows: Any, browser: Any, rp: Any, authenticator: SoftwareAuthenticator,
                    **params: Any) -> tuple[Any, dict[str, str]]:
    """Open the login page, ask for passkey options, answer them; the response and secrets."""
    url, secrets = rp.authorize_url(**params)
    page = browser.follow(browser.get(url))
    assert page_name(page.text) == "login"
    assert "Sign in with a passkey" in page.text
    fields = hidden_inputs(page.text)
    options_url = page.text.split('data-webauthn-options-url="')[1].split('"')[0]
    answer = browser.post(options_url, {"csrf_token": fields["csrf_token"]})
    assert answer.status_code == 200, answer.text[:300]
    assert answer.headers["Cache-Control"] == "no-store"
    options = answer.json()["publicKey"]
    assert options["allowCredentials"] == []
    assert options["userVerification"] == "preferred"
    credential = authenticator.get(options, flows.base_url)
    action = form_action(page.text, "/passkey")
    response = browser.post(action, {"csrf_token": fields["csrf_token"],
                                     "credential": json.dumps(credential)})
    return response, secrets


def test_passwordless_sign_in_with_a_user_verifying_passkey_gives_aal2(flows, app):
    flows.user("alice")
    authenticator = SoftwareAuthenticator()
    credential_id = enroll_for(app, "alice", authenticator)
    rp = flows.client("rp1")
    browser = flows.browser()

    response, secrets = passkey_sign_in(flows, browser, rp, authenticator, acr_values="aal2")

    callback = callback_params(browser.follow(response))
    claims = rp.verify_id_token(rp.exchange(callback.code, secrets["code_verifier"])["id_token"],
                                secrets["nonce"])
    assert claims["acr"] == "aal2"
    assert claims["amr"] == ["pop", "user", "swk", "mfa"]
    with app.app_context():
        (login,) = audit_rows("user.login_succeeded")
        assert login.data == {"method": "passkey", "factor_id": credential_id}
        assert db.session.get(Credential, credential_id).last_used_at is not None


def test_passwordless_sign_in_reaches_phr(flows, app):
    flows.user("alice")
    authenticator = SoftwareAuthenticator()
    enroll_for(app, "alice", authenticator)
    rp = flows.client("rp1")
    browser = flows.browser()

    response, secrets = passkey_sign_in(flows, browser, rp, authenticator, acr_values="phr")

    callback = callback_params(browser.follow(response))
    claims = rp.verify_id_token(rp.exchange(callback.code, secrets["code_verifier"])["id_token"])
    assert claims["acr"] == "phr"


def test_passwordless_challenge_works_once(flows, app):
    flows.user("alice")
    authenticator = SoftwareAuthenticator()
    enroll_for(app, "alice", authenticator)
    rp = flows.client("rp1")
    browser = flows.browser()
    url, _ = rp.authorize_url()
    page = browser.follow(browser.get(url))
    fields = hidden_inputs(page.text)
    options_url = page.text.split('data-webauthn-options-url="')[1].split('"')[0]
    options = browser.post(options_url, {"csrf_token": fields["csrf_token"]}).json()["publicKey"]
    action = form_action(page.text, "/passkey")
    first = authenticator.get(options, flows.base_url)
    # A wrong first answer uses the challenge up too.
    signature = bytearray(unb64url(first["response"]["signature"]))
    signature[-1] ^= 0x01
    first["response"]["signature"] = b64url(bytes(signature))
    refused = browser.post(action, {"csrf_token": fields["csrf_token"],
                                    "credential": json.dumps(first)})
    again = browser.post(action, {"csrf_token": fields["csrf_token"],
                                  "credential": json.dumps(
                                      authenticator.get(options, flows.base_url))})

    assert refused.status_code == 401 and page_name(refused.text) == "login"
    assert again.status_code == 401
    assert "expired" in again.text
    with app.app_context():
        reasons = [row.data["reason"] for row in audit_rows("user.login_failed")]
    assert reasons == ["bad_signature", "expired_challenge"]


def test_passwordless_sign_in_with_an_unknown_passkey_fails(flows, app):
    flows.user("alice")
    rp = flows.client("rp1")
    browser = flows.browser()
    stranger = SoftwareAuthenticator()
    stranger.create({"rp": {"id": "localhost"}, "user": {"id": b64url(b"nobody")},
                     "challenge": b64url(b"c" * 32)}, flows.base_url)

    response, _ = passkey_sign_in(flows, browser, rp, stranger)

    assert response.status_code == 401
    assert page_name(response.text) == "login"
    assert "did not sign you in" in response.text
    assert "Location" not in response.headers
    with app.app_context():
        (failed,) = audit_rows("user.login_failed")
    assert failed.data["reason"] == "unknown_credential" and failed.user_id is None


def test_passwordless_clone_suspected_is_audited(flows, app):
    flows.user("alice")
    authenticator = SoftwareAuthenticator()
    credential_id = enroll_for(app, "alice", authenticator)
    with app.app_context():
        stored = db.session.get(Credential, credential_id)
        stored.counter = 7
        db.session.commit()
    rp = flows.client("rp1")
    browser = flows.browser()
    (held,) = authenticator.credentials.values()
    held.sign_count = 6  # the copy lags behind the original: the next assertion says 7

    response, _ = passkey_sign_in(flows, browser, rp, authenticator)

    assert response.status_code == 401
    with app.app_context():
        (suspected,) = audit_rows("mfa.clone_suspected")
        assert suspected.user_id == db.session.get(Credential, credential_id).user_id
        assert db.session.get(Credential, credential_id).counter == 7


@pytest.mark.parametrize("app_overrides", [{"login": {"max_failures_per_ip": 2}}])
def test_passwordless_failures_are_throttled_per_ip(flows, app):
    flows.user("alice")
    rp = flows.client("rp1")
    browser = flows.browser()
    stranger = SoftwareAuthenticator()
    stranger.create({"rp": {"id": "localhost"}, "user": {"id": b64url(b"nobody")},
                     "challenge": b64url(b"c" * 32)}, flows.base_url)
    for _ in range(2):
        response, _ = passkey_sign_in(flows, browser, rp, stranger)
        assert response.status_code == 401

    url, _ = rp.authorize_url()
    page = browser.follow(browser.get(url))
    options_url = page.text.split('data-webauthn-options-url="')[1].split('"')[0]
    throttled = browser.post(options_url, {"csrf_token": hidden_inputs(page.text)["csrf_token"]})

    assert throttled.status_code == 429
    assert int(throttled.headers["Retry-After"]) >= 1
    # The password form shares the per-IP budget.
    assert browser.submit_login(page, "alice").status_code == 429


def test_the_passkey_options_need_the_csrf_token(flows):
    flows.user("alice")
    rp = flows.client("rp1")
    browser = flows.browser()
    url, _ = rp.authorize_url()
    page = browser.follow(browser.get(url))
    options_url = page.text.split('data-webauthn-options-url="')[1].split('"')[0]

    assert browser.post(options_url, {}).status_code == 400


@pytest.mark.parametrize("app_overrides", [{"policy": {"allowed_factors": ["totp"]}}])
def test_no_passkey_button_when_passkeys_are_not_allowed(flows):
    flows.user("alice")
    rp = flows.client("rp1")
    browser = flows.browser()
    url, _ = rp.authorize_url()
    page = browser.follow(browser.get(url))

    assert page_name(page.text) == "login"
    assert "passkey" not in page.text.lower()


# -- passkey as a second factor over HTTP ------------------------------------------------------

def test_step_up_from_a_password_session_to_phr_asks_only_for_the_passkey(flows, app):
    flows.user("alice")
    authenticator = SoftwareAuthenticator()
    enroll_for(app, "alice", authenticator)
    rp = flows.client("rp1")
    browser = flows.browser()
    first = flows.sign_in(browser, rp)
    assert first.claims["acr"] == "aal1"

    url, secrets = rp.authorize_url(acr_values="phr")
    page = browser.follow(browser.get(url))
    assert page_name(page.text) == "mfa-passkey", page.text[:300]
    options = json.loads(page.text.split('id="webauthn-options-passkey">')[1]
                         .split("</script>")[0])
    assert 'src="/static/webauthn.js"' in page.text
    response = authenticator.get(options, flows.base_url)
    answered = browser.post(form_action(page.text, "/mfa/verify"),
                            {**hidden_inputs(page.text), "credential": json.dumps(response)})
    callback = callback_params(browser.follow(answered))
    claims = rp.verify_id_token(rp.exchange(callback.code, secrets["code_verifier"])["id_token"])

    assert claims["acr"] == "phr"
    assert claims["amr"] == ["pwd", "pop", "user", "swk", "mfa"]


def test_a_failed_passkey_challenge_shows_the_same_challenge_again(flows, app):
    flows.user("alice")
    authenticator = SoftwareAuthenticator()
    enroll_for(app, "alice", authenticator)
    rp = flows.client("rp1")
    browser = flows.browser()
    flows.sign_in(browser, rp)
    url, _ = rp.authorize_url(acr_values="phr")
    page = browser.follow(browser.get(url))

    answered = browser.post(form_action(page.text, "/mfa/verify"),
                            {**hidden_inputs(page.text), "credential": ""})

    assert answered.status_code == 400
    assert page_name(answered.text) == "mfa-passkey"
    assert "did not send a passkey" in answered.text
    assert hidden_inputs(answered.text)["challenge_id"] == hidden_inputs(page.text)["challenge_id"]
    assert not answered.headers.get("Location", "").startswith(CALLBACK)
