"""One-time codes by email (DESIGN §3, §6).

Codes go to the email address on file; enrollment proves the user reads it (and marks it
``email_verified``). NIST SP 800-63B-4 §3.1.3.1 does not accept email as an out-of-band
authenticator, so its events (method ``email``, private amr value ``email``) count toward
``aal2`` only when ``policy.email_counts_as_factor`` is true; the ladder in
:mod:`idp.assurance` decides that, and never counts email toward ``phr``.
A challenge goes only to the address the credential was enrolled with, and only while it is
still the user's address on file. Code mechanics, send limits and hashing:
:mod:`idp.factors.codes`.
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
    FactorUnavailable,
    Step,
    event_for,
)
from idp.models import Credential, User

#: Enough to refuse what no mail server would take (and header injection); not RFC 5322.
ADDRESS = re.compile(r"[^@\s]{1,64}@[^@\s]{1,253}")
DELIVERY_FAILED = ("We could not send an email just now. Choose another method, or try again "
                   "in a few minutes.")


def _address(user: User) -> str | None:
    address = (user.email or "").strip()
    return address if ADDRESS.fullmatch(address) else None


class EmailFactor:
    method = "email"
    label = "Email code"
    amr = ("email",)
    category = HAVE
    strength = 10
    templates = {"challenge": "factors/code_challenge.html",
                 "enroll": "factors/code_enroll.html"}

    def available_for(self, user: User) -> bool:
        """Only for users with an email address on file."""
        return _address(user) is not None

    # -- enrollment ----------------------------------------------------------------------------

    def begin_enrollment(self, env: FactorEnv, user: User, credential: Credential,
                         params: Mapping[str, str]) -> Step:
        address = _address(user)
        if address is None:
            raise FactorUnavailable("There is no email address on your account.")
        credential.data = {"email": address}
        return codes.code_challenge(env, user.id, self.method, "email", address, mask(address),
                                    "Confirm your email address", DELIVERY_FAILED,
                                    enrolling=True)

    def finish_enrollment(self, env: FactorEnv, user: User, credential: Credential,
                          state: Mapping[str, Any], response: Mapping[str, str]) -> AuthEvent:
        """The user reads that mailbox: the credential is verified and, if it is still the
        address on file, ``email_verified`` is set (the caller commits)."""
        codes.check_code(env, state, response)
        credential.status = "verified"
        if _address(user) == credential.data["email"]:
            user.email_verified = True
        return event_for(self, credential, env.now())

    # -- authentication ------------------------------------------------------------------------

    def begin_challenge(self, env: FactorEnv, user: User, credential: Credential) -> Step:
        enrolled = (credential.data or {}).get("email")
        address = _address(user)
        if not credential.verified or not enrolled or address is None \
                or address.casefold() != str(enrolled).casefold():
            raise FactorUnavailable("Your email address changed since you set up email codes. "
                                    "Choose another method.")
        return codes.code_challenge(env, user.id, self.method, "email", address, mask(address),
                                    "Enter the code we emailed you", DELIVERY_FAILED)

    def verify(self, env: FactorEnv, user: User, credential: Credential,
               state: Mapping[str, Any], response: Mapping[str, str]) -> AuthEvent:
        codes.check_code(env, state, response)
        return event_for(self, credential, env.now())

    def expected_event(self, credential: Credential, now: int) -> AuthEvent:
        return event_for(self, credential, now)
