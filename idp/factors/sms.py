"""One-time codes by text message (DESIGN §3, §6; NIST SP 800-63B-4 §3.1.3).

Enrollment asks for a mobile number in E.164 form and proves possession with a code; only
then is the credential verified and the number recorded as the user's verified
``phone_number``. Challenges go only to that verified number (kept on the credential).
amr ``sms`` (RFC 8176). SMS is a restricted authenticator and never phishing-resistant: its
events carry no WebAuthn properties, so the ladder never counts them toward ``phr``.
Code mechanics, send limits and hashing: :mod:`idp.factors.codes`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from idp.assurance import HAVE, AuthEvent
from idp.delivery import mask
from idp.factors import codes
from idp.factors.base import (
    FactorEnv,
    FactorRejected,
    FactorUnavailable,
    InputField,
    Step,
    event_for,
)
from idp.models import Credential, User

#: ITU-T E.164: "+", a country code not starting with 0, at most 15 digits in all.
E164 = re.compile(r"\+[1-9][0-9]{6,14}")
#: Visual separators people type inside numbers; removed before checking E.164.
SEPARATORS = frozenset(" -().\u00a0")
PHONE_FIELD = InputField("phone", "Mobile number (E.164, e.g. +4915112345678)",
                         autocomplete="tel", inputmode="tel", pattern=None, maxlength=16,
                         input_type="tel")
DELIVERY_FAILED = ("We could not send a text message just now. Choose another method, or try "
                   "again in a few minutes.")


def normalise_phone(raw: str | None) -> str | None:
    """The number in E.164 form, or None when it is not one."""
    text = "".join(ch for ch in (raw or "") if ch not in SEPARATORS)
    return text if E164.fullmatch(text) else None


class SmsFactor:
    method = "sms"
    label = "Text message (SMS)"
    amr = ("sms",)
    category = HAVE
    strength = 20
    templates = {"challenge": "factors/code_challenge.html",
                 "enroll": "factors/code_enroll.html"}
    enroll_fields = (PHONE_FIELD,)

    def available_for(self, user: User) -> bool:
        """Anyone may enroll: enrollment itself verifies the number."""
        return True

    # -- enrollment ----------------------------------------------------------------------------

    def begin_enrollment(self, env: FactorEnv, user: User, credential: Credential,
                         params: Mapping[str, str]) -> Step:
        phone = normalise_phone(params.get("phone"))
        if phone is None:
            raise FactorRejected("invalid_phone", "Enter your mobile number in international "
                                                  "format: + and the country code, e.g. "
                                                  "+4915112345678.")
        credential.data = {"phone": phone}
        return codes.code_challenge(env, user.id, self.method, "sms", phone, mask(phone),
                                    "Confirm your mobile number", DELIVERY_FAILED,
                                    enrolling=True)

    def finish_enrollment(self, env: FactorEnv, user: User, credential: Credential,
                          state: Mapping[str, Any], response: Mapping[str, str]) -> AuthEvent:
        """Possession of the number is proven: the credential is verified and the number
        becomes the user's verified ``phone_number`` (the caller commits)."""
        codes.check_code(env, state, response)
        credential.status = "verified"
        user.phone_number = credential.data["phone"]
        user.phone_number_verified = True
        return event_for(self, credential, env.now())

    # -- authentication ------------------------------------------------------------------------

    def begin_challenge(self, env: FactorEnv, user: User, credential: Credential) -> Step:
        phone = (credential.data or {}).get("phone")
        if not credential.verified or not phone or normalise_phone(phone) != phone:
            raise FactorUnavailable("This phone number is not verified. Choose another method.")
        return codes.code_challenge(env, user.id, self.method, "sms", phone, mask(phone),
                                    "Enter the code we texted you", DELIVERY_FAILED)

    def verify(self, env: FactorEnv, user: User, credential: Credential,
               state: Mapping[str, Any], response: Mapping[str, str]) -> AuthEvent:
        codes.check_code(env, state, response)
        return event_for(self, credential, env.now())

    def expected_event(self, credential: Credential, now: int) -> AuthEvent:
        return event_for(self, credential, now)
