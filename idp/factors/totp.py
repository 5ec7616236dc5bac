"""TOTP (RFC 6238) through pyotp — the only module importing it.

Pinned parameters: SHA-1, 6 digits, 30 s steps (what authenticator apps support), ±1 step of
clock drift. The last accepted time step is stored and advanced with an atomic conditional
UPDATE, so one code works once across all workers and restarts (warehouse's replay guard).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import pyotp

from idp import qr
from idp.assurance import HAVE, AuthEvent
from idp.factors.base import (
    Display,
    FactorEnv,
    FactorRejected,
    InputField,
    Step,
    event_for,
)
from idp.models import Credential, User

DIGITS = 6
INTERVAL_SECONDS = 30
VALID_WINDOW_STEPS = 1
SECRET_LENGTH = 32  # base32 characters = 160 bits (RFC 4226 §4 recommends ≥ 160)
CODE_FIELD = InputField("code", "6-digit code from your authenticator app")


def _clean(code: str | None) -> str:
    return "".join((code or "").split())


class TotpFactor:
    method = "totp"
    label = "Authenticator app"
    amr = ("otp",)
    category = HAVE
    strength = 50
    templates = {"enroll": "factors/totp_enroll.html"}

    def available_for(self, user: User) -> bool:
        return True

    # -- enrollment ----------------------------------------------------------------------------

    def begin_enrollment(self, env: FactorEnv, user: User, credential: Credential,
                         params: Mapping[str, str]) -> Step:
        secret = pyotp.random_base32(SECRET_LENGTH)
        credential.secret_encrypted = env.secrets.encrypt(secret.encode())
        uri = pyotp.TOTP(secret, digits=DIGITS, interval=INTERVAL_SECONDS).provisioning_uri(
            name=user.username, issuer_name=env.product_name)
        image = qr.svg(uri)  # rendered once: inline for the page, a data URI for the API
        return Step(state={}, display=Display(
            title="Set up an authenticator app",
            instructions="Scan the QR code with your authenticator app (or enter the key by "
                         "hand), then type the 6-digit code it shows.",
            fields=(CODE_FIELD,),
            data={"secret": secret, "uri": uri, "qr_svg": image,
                  "qr_code": qr.data_uri(image),
                  "account": quote(user.username)},
        ))

    def finish_enrollment(self, env: FactorEnv, user: User, credential: Credential,
                          state: Mapping[str, Any], response: Mapping[str, str]) -> AuthEvent:
        event = self.verify(env, user, credential, state, response)
        credential.status = "verified"
        return event

    # -- authentication ------------------------------------------------------------------------

    def begin_challenge(self, env: FactorEnv, user: User, credential: Credential) -> Step:
        return Step(state={}, display=Display(
            title="Enter a code from your authenticator app",
            instructions=f"Open your authenticator app and enter the code for "
                         f"{env.product_name}.",
            fields=(CODE_FIELD,)))

    def verify(self, env: FactorEnv, user: User, credential: Credential,
               state: Mapping[str, Any], response: Mapping[str, str]) -> AuthEvent:
        code = _clean(response.get("code"))
        if len(code) != DIGITS or not (code.isascii() and code.isdigit()):
            raise FactorRejected("malformed_code", "Enter the 6-digit code.")
        if not credential.secret_encrypted:
            raise FactorRejected("no_secret")
        totp = pyotp.TOTP(env.secrets.decrypt(credential.secret_encrypted).decode(),
                          digits=DIGITS, interval=INTERVAL_SECONDS)
        now = env.now()
        current = now // INTERVAL_SECONDS
        matched = None
        # Check every step in the window (no early exit): timing does not reveal which matched.
        for step in range(current - VALID_WINDOW_STEPS, current + VALID_WINDOW_STEPS + 1):
            expected = totp.at(step * INTERVAL_SECONDS)
            if hmac.compare_digest(expected, code) and matched is None:
                matched = step
        if matched is None:
            raise FactorRejected("invalid_code", "That code is not right. Try again.")
        if matched <= credential.counter or not env.advance_counter(credential, matched):
            raise FactorRejected("replayed", "That code was already used. Wait for the next "
                                             "one.")
        return event_for(self, credential, now)

    def expected_event(self, credential: Credential, now: int) -> AuthEvent:
        return event_for(self, credential, now)
