"""One-time codes sent out of band: the mechanics the SMS and email factors share (DESIGN §6).

- A code is 6 decimal digits from :mod:`secrets` (NIST SP 800-63B-4 §3.1.3.1 / §3.1.3.3 ask for
  at least 6 digits from an approved random generator), valid for ``mfa.code_ttl`` seconds
  (default 300).
- The parked challenge state (Redis in production) never holds the code: it holds
  HMAC-SHA256(key, nonce ‖ code) with a key derived from the master secret and a fresh nonce,
  and the answer is compared in constant time (:func:`hmac.compare_digest`).
- Attempts: :class:`~idp.factors.service.MfaService` allows ``mfa.max_attempts_per_challenge``
  (5) answers per code and counts failures per user and factor and per IP in the store
  (§3.2.2); a new code starts a new challenge but does not reset that failure count.
- Sending is limited per user in the store, shared by all workers: one code per factor per
  ``mfa.code_resend_cooldown`` seconds (30), and ``mfa.code_max_sends_per_hour`` codes (10)
  in any sliding hour over all code factors together. Refusals are
  :class:`~idp.factors.base.FactorUnavailable` with ``retry_after``.
- Messages hold the code and the product name, nothing else (no user name, no number, no link).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from hmac import compare_digest
from typing import Any

from idp.crypto import derive_key
from idp.delivery import DeliveryFailed
from idp.factors.base import (
    Display,
    FactorEnv,
    FactorRejected,
    FactorUnavailable,
    InputField,
    Step,
)

CODE_DIGITS = 6
NONCE_BYTES = 16
HASH_PURPOSE = "one-time-codes"
SEND_WINDOW = 3600  # "per hour" for mfa.code_max_sends_per_hour
COOLDOWN_PREFIX = "codes:cooldown:"
SEND_SLOT_PREFIX = "codes:sent:"
CODE_FIELD = InputField("code", "6-digit code")


def generate() -> str:
    """A uniformly random 6-digit code (leading zeros kept)."""
    return f"{secrets.randbelow(10 ** CODE_DIGITS):0{CODE_DIGITS}d}"


def code_hash(master_secret: str, nonce: str, code: str) -> str:
    """Keyed hash of a code as parked in the store: useless without the master secret."""
    key = derive_key(master_secret, HASH_PURPOSE)
    return hmac.new(key, f"{nonce}:{code}".encode(), hashlib.sha256).hexdigest()


def message(code: str, product_name: str) -> str:
    """The whole text sent: the code and the product name only."""
    return f"{code} is your {product_name} verification code."


def lifetime_text(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} seconds"
    return f"{(seconds + 59) // 60} minutes"


def cooldown_key(user_id: str, method: str) -> str:
    return f"{COOLDOWN_PREFIX}{user_id}:{method}"


def _reserve_send(env: FactorEnv, user_id: str, method: str) -> None:
    """Take the factor's cooldown and one of the user's hourly send slots, atomically through
    the store. Raises FactorUnavailable (with retry_after) when either is taken."""
    cfg = env.settings.mfa
    cooldown = int(cfg.code_resend_cooldown)
    if cooldown > 0 and not env.store.add(cooldown_key(user_id, method), 1, cooldown):
        left = env.store.ttl(cooldown_key(user_id, method)) or cooldown
        raise FactorUnavailable(f"A code was sent moments ago. Wait {left} seconds before "
                                f"asking for a new one.", retry_after=left)
    # A sliding hour without a read-modify-write race: each send takes the first free one of
    # N slots, and a slot frees itself an hour after it was taken.
    slots = int(cfg.code_max_sends_per_hour)
    for slot in range(slots):
        if env.store.add(f"{SEND_SLOT_PREFIX}{user_id}:{slot}", 1, SEND_WINDOW):
            return
    left = min((env.store.ttl(f"{SEND_SLOT_PREFIX}{user_id}:{slot}") or SEND_WINDOW)
               for slot in range(slots))
    raise FactorUnavailable("Too many codes were sent to you in the last hour. Choose another "
                            "method or try again later.", retry_after=max(1, left))


def send_code(env: FactorEnv, user_id: str, method: str, channel: str, recipient: str,
              failure_message: str) -> dict[str, Any]:
    """Send a fresh code to ``recipient`` over ``channel`` and return the challenge state to
    park (nonce, keyed hash, expiry) — never the code itself.

    Raises FactorUnavailable: during the cooldown or over the hourly cap (``retry_after``
    set), or with ``failure_message`` when delivery fails (no ``retry_after``; the cooldown is
    given back so the user may retry, the hourly slot is not).
    """
    _reserve_send(env, user_id, method)
    code = generate()
    try:
        env.deliver(channel, recipient, message(code, env.product_name))
    except DeliveryFailed:
        env.store.delete(cooldown_key(user_id, method))
        raise FactorUnavailable(failure_message) from None
    nonce = secrets.token_hex(NONCE_BYTES)
    return {"nonce": nonce, "code_hash": code_hash(env.master_secret, nonce, code),
            "expires_at": env.now() + int(env.settings.mfa.code_ttl)}


def check_code(env: FactorEnv, state: Mapping[str, Any], response: Mapping[str, str]) -> None:
    """Check the user's answer against the parked state. Raises FactorRejected
    (``malformed_code``, ``expired_code``, ``invalid_code``)."""
    code = "".join((response.get("code") or "").split())
    if len(code) != CODE_DIGITS or not (code.isascii() and code.isdigit()):
        raise FactorRejected("malformed_code", f"Enter the {CODE_DIGITS}-digit code.")
    matches = compare_digest(str(state.get("code_hash", "")),
                             code_hash(env.master_secret, str(state.get("nonce", "")), code))
    if env.now() >= int(state.get("expires_at", 0)):
        raise FactorRejected("expired_code", "This code has expired. Ask for a new one.")
    if not matches:
        raise FactorRejected("invalid_code", "That code is not right. Try again.")


def code_challenge(env: FactorEnv, user_id: str, method: str, channel: str, recipient: str,
                   shown_as: str, title: str, delivery_failed: str,
                   enrolling: bool = False) -> Step:
    """Send a code to ``recipient`` and describe the page that asks for it (a challenge, or
    the confirmation step of an enrollment, which offers no resend)."""
    state = send_code(env, user_id, method, channel, recipient, delivery_failed)
    finish = " Enter it to finish." if enrolling else ""
    data: dict[str, Any] = {"sent_to": shown_as} if enrolling else {"sent_to": shown_as,
                                                                   "resend": True}
    return Step(state=state, display=Display(
        title=title,
        instructions=f"We sent a {CODE_DIGITS}-digit code to {shown_as}.{finish} It expires "
                     f"in {lifetime_text(int(env.settings.mfa.code_ttl))}.",
        fields=(CODE_FIELD,), data=data))
