"""The HOTP factor: an OATH event-based token (RFC 4226) as a stepup-idp second factor.

Built on the IdP's public factor interface only (:mod:`idp.factors.base`); the application's
models and :class:`~idp.assurance.AuthEvent` are imported for annotations alone.

Enrollment — two ways, one factor:

- **generated seed** (default): the factor draws a 160-bit seed and shows it, with an
  ``otpauth://hotp/`` URI, to be programmed into a programmable token (e.g. a YubiKey's OATH
  applet) or an HOTP-capable app; the user proves it took by entering the first code.
- **provided seed**: whoever calls ``MfaService.begin_enrollment(user, "hotp", params)`` (an
  admin tool, an account API) passes ``params["seed"]`` — the base32 seed from the vendor's
  seed file — and optionally ``params["counter"]`` if the token has been pressed before. A
  provided seed is never echoed back.

Verification: the code must match one of the ``window`` values starting at the credential's
counter (RFC 4226 §7.4 look-ahead resynchronisation, ``s = 10`` by default). On a match the
counter moves past it through ``env.advance_counter`` — an atomic conditional UPDATE — so a code
works once even when two workers race for it, and codes skipped by pressing the button too
often are burnt by the resynchronisation.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from idp.factors.base import (
    Display,
    FactorEnv,
    FactorRejected,
    InputField,
    Step,
    event_for,
)
from stepup_hotp.hotp import (
    DIGITS,
    InvalidSeed,
    encode_seed,
    generate_seed,
    group,
    hotp,
    parse_seed,
)

if TYPE_CHECKING:
    from idp.assurance import AuthEvent
    from idp.models import Credential, User

#: RFC 4226 §7.4 look-ahead window ``s``: the expected value and the 9 after it are accepted.
WINDOW = 10
#: The credentials table stores the counter as a signed 64-bit integer.
MAX_COUNTER = 2**63 - 1 - WINDOW
CODE_FIELD = InputField("code", f"{DIGITS}-digit code from your token",
                        pattern=f"[0-9]{{{DIGITS}}}", maxlength=DIGITS)
REPLAYED = "That code was already used. Press the token's button for a new one."


def _clean(code: str | None) -> str:
    return "".join((code or "").split())


class HotpFactor:
    """HOTP (RFC 4226) hardware token.

    ``amr`` is ``("otp",)`` (RFC 8176 §2: "one-time password"). Not ``hwk``: that value means
    proof-of-possession of a *hardware-secured key*, and HOTP proves no such thing — the IdP
    holds the same symmetric seed, sees only a 6-digit code that anyone who read it off the
    token can replay until it is used, and with a generated seed the key may well live in
    software. Claiming ``hwk`` would tell relying parties more than was proven.

    ``strength`` 40 puts it after TOTP (50) in the picker: an unused HOTP code never expires,
    a TOTP code does after 30 s. For the acr ladder both are one possession factor each; the
    ladder counts factor kinds by ``method``, so password + hotp reaches aal2.

    The Protocol's data attributes are set per instance, not on the class: the registry
    instantiates an entry point only when the loaded object is not itself a Factor, and a
    class carrying them as class attributes would pass that check uninstantiated.
    """

    method: str
    label: str
    amr: tuple[str, ...]
    category: str
    strength: int
    templates: Mapping[str, str] | None

    def __init__(self, window: int = WINDOW) -> None:
        if window < 1:
            raise ValueError("the look-ahead window holds at least the expected value")
        self.method = "hotp"
        self.label = "Hardware token (HOTP)"
        self.amr = ("otp",)
        self.category = "have"  # NIST SP 800-63B: a token is something you have
        self.strength = 40
        self.templates = None  # the IdP's generic enrollment and code-entry pages
        self.window = window

    def available_for(self, user: User) -> bool:
        """Anyone can enroll a token."""
        return True

    # -- enrollment ----------------------------------------------------------------------------

    def begin_enrollment(self, env: FactorEnv, user: User, credential: Credential,
                         params: Mapping[str, str]) -> Step:
        """Store the (encrypted) seed and starting counter on the unverified credential."""
        provided = (params.get("seed") or "").strip()
        counter = self._starting_counter(params.get("counter"))
        if provided:
            try:
                seed = parse_seed(provided)
            except InvalidSeed as exc:
                raise FactorRejected("malformed_seed",
                                     "That token key is not valid. Enter the base32 key from "
                                     "the token's seed file.") from exc
        else:
            seed = generate_seed()
        credential.secret_encrypted = env.secrets.encrypt(seed)
        credential.counter = counter
        credential.data = {"seed_source": "provided" if provided else "generated"}
        if provided:
            return Step(state={}, display=Display(
                title="Confirm your hardware token",
                instructions="Press the button on your token and enter the code it shows.",
                fields=(CODE_FIELD,)))
        secret = encode_seed(seed)
        return Step(state={}, display=Display(
            title="Set up a hardware token",
            instructions=f"Program your token (HOTP, SHA-1, {DIGITS} digits, counter "
                         f"{counter}) with this key: {group(secret)}. Then press its button "
                         f"and enter the code it shows.",
            fields=(CODE_FIELD,),
            data={"secret": secret, "counter": counter,
                  "uri": self._uri(env, user, secret, counter)}))

    def finish_enrollment(self, env: FactorEnv, user: User, credential: Credential,
                          state: Mapping[str, Any], response: Mapping[str, str]) -> AuthEvent:
        """The first code proves the token holds the seed; it is consumed like any other."""
        event = self.verify(env, user, credential, state, response)
        credential.status = "verified"
        return event

    @staticmethod
    def _starting_counter(raw: str | None) -> int:
        if raw is None or not raw.strip():
            return 0
        text = raw.strip()
        if not text.isdigit() or int(text) > MAX_COUNTER:
            raise FactorRejected("malformed_counter", "The token counter must be a whole "
                                                      "number.")
        return int(text)

    @staticmethod
    def _uri(env: FactorEnv, user: User, secret: str, counter: int) -> str:
        """Key Uri Format (``otpauth://hotp/Issuer:account?...``), for token tools and apps."""
        label = quote(f"{env.product_name}:{user.username}", safe=":@")
        query = urlencode({"secret": secret, "issuer": env.product_name, "counter": counter,
                           "digits": DIGITS, "algorithm": "SHA1"}, quote_via=quote)
        return f"otpauth://hotp/{label}?{query}"

    # -- authentication ------------------------------------------------------------------------

    def begin_challenge(self, env: FactorEnv, user: User, credential: Credential) -> Step:
        """Nothing to send: the token computes the code itself."""
        return Step(state={}, display=Display(
            title="Enter a code from your hardware token",
            instructions=f"Press the button on your token and enter the {DIGITS}-digit code "
                         f"it shows.",
            fields=(CODE_FIELD,)))

    def verify(self, env: FactorEnv, user: User, credential: Credential,
               state: Mapping[str, Any], response: Mapping[str, str]) -> AuthEvent:
        """Accept a code within the look-ahead window once; resynchronise past it."""
        code = _clean(response.get("code"))
        if len(code) != DIGITS or not code.isdigit():
            raise FactorRejected("malformed_code", f"Enter the {DIGITS}-digit code.")
        if not credential.secret_encrypted:
            raise FactorRejected("no_secret")
        key = env.secrets.decrypt(credential.secret_encrypted)
        expected = credential.counter
        matched = None
        # Compare every value in the window (no early exit), so timing does not tell which.
        for counter in range(expected, expected + self.window):
            if hmac.compare_digest(hotp(key, counter), code) and matched is None:
                matched = counter
        if matched is None:
            # The last accepted code: a replay deserves its own audit reason.
            if expected > 0 and hmac.compare_digest(hotp(key, expected - 1), code):
                raise FactorRejected("replayed", REPLAYED)
            raise FactorRejected("invalid_code", "That code is not right. Try again.")
        # The counter holds the next expected value; only one request can move it past a code.
        if not env.advance_counter(credential, matched + 1):
            raise FactorRejected("replayed", REPLAYED)
        return event_for(self, credential, env.now())

    def expected_event(self, credential: Credential, now: int) -> AuthEvent:
        """What a verification proves: one ``hotp`` event with amr ``otp``."""
        return event_for(self, credential, now)
