"""The one Protocol every factor implements (kratos's strategy shape, DESIGN §6).

A factor proves something and returns an :class:`~idp.assurance.AuthEvent`; it never sets
acr, amr or session state. Views and APIs iterate the registry and never name a factor: what a
page shows comes from the factor's :class:`Display` and template names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from idp.assurance import AuthEvent
from idp.crypto import SecretBox
from idp.models import Credential, User
from idp.store import Store


class FactorRejected(Exception):
    """The response does not prove the factor. ``reason`` is for audit, never for the user
    beyond the generic ``message``."""

    def __init__(self, reason: str, message: str = "That did not work. Try again.") -> None:
        super().__init__(reason)
        self.reason = reason
        self.message = message


class FactorUnavailable(Exception):
    """The factor cannot be used right now (delivery failed, cooldown…); say so to the user."""

    def __init__(self, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


@dataclass(frozen=True)
class InputField:
    """One input of a factor's form (DESIGN §7 page contract)."""

    name: str
    label: str
    autocomplete: str = "one-time-code"
    inputmode: str = "numeric"
    pattern: str | None = r"[0-9]{6}"
    maxlength: int = 6
    input_type: str = "text"


@dataclass
class Display:
    """What a page or API response shows for an enrollment or a challenge."""

    title: str
    instructions: str
    fields: tuple[InputField, ...] = ()
    #: Extra data for the factor's own template or the API (secret, QR SVG, options JSON…).
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Step:
    """An enrollment or a challenge in progress: ``state`` stays on the server."""

    state: dict[str, Any]
    display: Display


@dataclass
class FactorEnv:
    """What factors may use: nothing else of the application."""

    store: Store
    #: Encrypts factor secrets at rest (TOTP/HOTP seeds).
    secrets: SecretBox
    #: The master secret, for factors that derive keyed hashes of their own.
    master_secret: str
    settings: Any
    now: Callable[[], int]
    deliver: Callable[[str, str, str], None] = field(default=lambda *_: None)
    #: Atomic "UPDATE credentials SET counter=new WHERE id=? AND counter < new" (True if moved).
    advance_counter: Callable[[Credential, int], bool] = field(default=lambda *_: False)
    #: RP ID / origin for WebAuthn, issuer name for TOTP labels.
    #: What a verification wants shown to the user once (e.g. a replacement recovery code,
    #: under the key "recovery_codes"); the caller displays it after success.
    revealed: dict[str, Any] = field(default_factory=dict)
    rp_id: str = "localhost"
    origin: str = "http://localhost"
    product_name: str = "StepUp IdP"


@runtime_checkable
class Factor(Protocol):
    """A second (or passwordless first) factor.

    Attributes: ``method`` (stable id, e.g. ``"totp"``), ``label`` (user-facing), ``amr``
    (RFC 8176 values), ``category`` (NIST SP 800-63B factor category: ``"know"``,
    ``"have"`` or ``"are"``; two factors reach aal2 only from two categories), ``strength``
    (picker order: higher first), ``templates`` (page names; ``None`` uses the generic
    code-entry page).
    """

    method: str
    label: str
    amr: tuple[str, ...]
    category: str
    strength: int
    templates: Mapping[str, str] | None

    def available_for(self, user: User) -> bool:
        """Whether ``user`` can enroll this factor (e.g. SMS needs a phone on file)."""

    def begin_enrollment(self, env: FactorEnv, user: User, credential: Credential,
                         params: Mapping[str, str]) -> Step:
        """Fill in the new (unverified) ``credential`` and return what the user must do.
        Raises FactorUnavailable or FactorRejected (bad params)."""

    def finish_enrollment(self, env: FactorEnv, user: User, credential: Credential,
                          state: Mapping[str, Any], response: Mapping[str, str]) -> AuthEvent:
        """Check the user's answer; on success the credential becomes verified (the caller
        commits). Raises FactorRejected."""

    def begin_challenge(self, env: FactorEnv, user: User, credential: Credential) -> Step:
        """Start a challenge (send a code, make WebAuthn options…)."""

    def verify(self, env: FactorEnv, user: User, credential: Credential,
               state: Mapping[str, Any], response: Mapping[str, str]) -> AuthEvent:
        """Check the answer; returns what it proved. Raises FactorRejected."""

    def expected_event(self, credential: Credential, now: int) -> AuthEvent:
        """What a successful verification of ``credential`` would prove (used to decide which
        levels a user can reach and which factors can satisfy a step-up)."""


def event_for(factor: Factor, credential: Credential, at: int,
              properties: Mapping[str, bool] | None = None) -> AuthEvent:
    return AuthEvent(method=factor.method, factor_id=credential.id, amr=tuple(factor.amr),
                     at=at, properties=dict(properties or {}), category=factor.category)
