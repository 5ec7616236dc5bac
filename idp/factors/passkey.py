"""Passkeys (WebAuthn credentials): a second factor and a passwordless first factor.

The ceremonies go through :mod:`idp.factors.webauthn` (the adapter); this module keeps the
credential record (W3C WebAuthn Level 3 §4 "credential record") on a
:class:`~idp.models.Credential`:

- ``lookup_key``: the credential id (base64url), unique — passwordless sign-in finds the
  account by it;
- ``counter``: the signature counter, moved forward atomically (``env.advance_counter``);
- ``data``: public key (COSE, base64url), AAGUID, transports, user handle, attestation format,
  the UV flag seen at registration, backup eligibility (BE) and backup state (BS) flags
  (§6.1.3), and whether the attestation was verified against a configured trust anchor.

What an assertion proves (DESIGN §3): ``amr`` ``pop``, plus ``user`` when the authenticator
verified the user, plus ``hwk`` for a hardware-attested credential, else ``swk`` (RFC 8176);
properties ``user_verified``, ``phishing_resistant`` (always: the signature covers the
origin), ``device_bound`` (BE clear) and ``hardware_attested``.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from types import ModuleType
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from idp.assurance import HAVE, AuthEvent
from idp.crypto import derive_key
from idp.extensions import db
from idp.factors.base import Display, FactorEnv, FactorRejected, Step
from idp.models import Credential, User

if TYPE_CHECKING:
    from idp.factors import webauthn

METHOD = "passkey"
#: The form field carrying the ``PublicKeyCredential`` JSON (set by ``static/webauthn.js``).
RESPONSE_FIELD = "credential"
USER_HANDLE_PURPOSE = "webauthn-user-handle"
NO_RESPONSE = "Your browser did not send a passkey. Try again, or use another method."


def _webauthn() -> ModuleType:
    """``idp.factors.webauthn``, imported on first use: py_webauthn and its ASN.1 modules are
    ~150 ms of ``idp serve``'s start-up, and most sign-ins never touch a passkey."""
    from idp.factors import webauthn

    return webauthn


@lru_cache(maxsize=8)
def _trust(anchors: tuple[str, ...], aaguids: tuple[str, ...]) -> webauthn.TrustPolicy:
    return _webauthn().load_trust_policy(anchors, aaguids)


def trust_policy(env: FactorEnv) -> webauthn.TrustPolicy:
    """``webauthn.trust_anchors_pem`` and ``webauthn.aaguid_allowlist`` from the settings."""
    cfg = env.settings.webauthn
    return _trust(tuple(cfg.trust_anchors_pem or ()), tuple(cfg.aaguid_allowlist or ()))


def user_handle(env: FactorEnv, user: User) -> bytes:
    """The user handle for ``user`` (§5.4.3 ``user.id``): stable, opaque (§14.6.1)."""
    return _webauthn().derive_user_handle(derive_key(env.master_secret, USER_HANDLE_PURPOSE),
                                       user.id)


def _response(response: Mapping[str, str]) -> str:
    raw = (response.get(RESPONSE_FIELD) or "").strip()
    if not raw:
        raise FactorRejected("no_response", NO_RESPONSE)
    return raw


def _fresh_challenge(env: FactorEnv, state: Mapping[str, Any]) -> bytes:
    """The parked challenge, if still within its lifetime (the store's TTL is the first
    guard; this one makes expiry independent of the store and testable with a clock)."""
    if "challenge" not in state or env.now() > int(state.get("expires_at", 0)):
        raise FactorRejected("expired_challenge", "This passkey request expired. Try again.")
    return _webauthn().decode(state["challenge"])


def _challenge_state(env: FactorEnv, **extra: Any) -> tuple[bytes, dict[str, Any]]:
    challenge = _webauthn().new_challenge()
    state = {"challenge": _webauthn().encode(challenge),
             "expires_at": env.now() + int(env.settings.mfa.challenge_ttl), **extra}
    return challenge, state


def registered_passkeys(user_id: str) -> list[Credential]:
    """The user's verified passkeys (for ``excludeCredentials``)."""
    return list(db.session.scalars(select(Credential).where(
        Credential.user_id == user_id, Credential.method == METHOD,
        Credential.status == "verified", Credential.lookup_key.is_not(None))))


def find_by_credential_id(credential_id: str) -> Credential | None:
    """The verified passkey whose WebAuthn credential id is ``credential_id`` (base64url)."""
    return db.session.scalar(select(Credential).where(
        Credential.lookup_key == credential_id, Credential.method == METHOD,
        Credential.status == "verified"))


class PasskeyFactor:
    """WebAuthn passkeys (DESIGN §6). ``amr`` holds what every assertion proves; the event
    adds ``user`` and ``hwk``/``swk`` from the flags (:meth:`event`)."""

    method = METHOD
    label = "Passkey"
    amr = ("pop",)
    category = HAVE
    strength = 100
    templates = {"enroll": "factors/passkey_enroll.html",
                 "challenge": "factors/passkey_challenge.html"}

    def available_for(self, user: User) -> bool:
        return True

    # -- what an assertion proves ----------------------------------------------------------------

    def event(self, credential: Credential, at: int, user_verified: bool) -> AuthEvent:
        """The AuthEvent for ``credential`` (DESIGN §3 amr and properties)."""
        data = credential.data or {}
        hardware = bool(data.get("hardware_attested", False))
        amr = ("pop", *(("user",) if user_verified else ()), "hwk" if hardware else "swk")
        return AuthEvent(method=self.method, factor_id=credential.id, amr=amr, at=at,
                         category=self.category,
                         properties={
                             "user_verified": user_verified,
                             "phishing_resistant": True,
                             "device_bound": not bool(data.get("backup_eligible", True)),
                             "hardware_attested": hardware,
                         })

    def expected_event(self, credential: Credential, now: int) -> AuthEvent:
        """What this passkey would prove: the UV flag seen at registration stands for the
        authenticator's capability. A passkey not registered yet is assumed user-verifying
        (``userVerification: preferred``; platform authenticators and security keys with a
        PIN do), synced and not hardware-attested."""
        return self.event(credential, now, bool((credential.data or {}).get("user_verified",
                                                                             True)))

    # -- registration (§7.1) ---------------------------------------------------------------------

    def begin_enrollment(self, env: FactorEnv, user: User, credential: Credential,
                         params: Mapping[str, str]) -> Step:
        handle = user_handle(env, user)
        challenge, state = _challenge_state(env, user_handle=_webauthn().encode(handle))
        options = _webauthn().registration_options(
            rp_id=env.rp_id, rp_name=env.settings.webauthn.rp_name or env.product_name,
            user_handle=handle, user_name=user.username,
            display_name=user.name or user.username, challenge=challenge,
            exclude=[(c.lookup_key, (c.data or {}).get("transports", ()))
                     for c in registered_passkeys(user.id) if c.lookup_key])
        return Step(state=state, display=Display(
            title="Create a passkey",
            instructions="Your device will ask you to confirm with your fingerprint, face, "
                         "screen lock or security key.",
            data={"options": options}))

    def finish_enrollment(self, env: FactorEnv, user: User, credential: Credential,
                          state: Mapping[str, Any], response: Mapping[str, str]) -> AuthEvent:
        challenge = _fresh_challenge(env, state)
        registered = _webauthn().verify_registration(
            response=_response(response), challenge=challenge, rp_id=env.rp_id,
            origin=env.origin, trust=trust_policy(env))
        if db.session.scalar(select(Credential.id).where(
                Credential.lookup_key == registered.credential_id)) is not None:
            raise FactorRejected("credential_exists", "This passkey is already registered.")
        credential.lookup_key = registered.credential_id
        credential.counter = registered.sign_count
        credential.data = {
            "public_key": registered.public_key,
            "aaguid": registered.aaguid,
            "transports": list(registered.transports),
            "user_handle": state["user_handle"],
            "attestation_format": registered.attestation_format,
            "user_verified": registered.user_verified,
            "backup_eligible": registered.backup_eligible,
            "backed_up": registered.backed_up,
            "hardware_attested": registered.hardware_attested,
        }
        credential.status = "verified"
        return self.event(credential, env.now(), registered.user_verified)

    # -- authentication (§7.2) -------------------------------------------------------------------

    def begin_challenge(self, env: FactorEnv, user: User, credential: Credential) -> Step:
        challenge, state = _challenge_state(env)
        options = _webauthn().authentication_options(
            rp_id=env.rp_id, challenge=challenge,
            allow=[(credential.lookup_key or "", (credential.data or {}).get("transports", ()))])
        return Step(state=state, display=Display(
            title="Use your passkey",
            instructions="Confirm with the passkey on your device or security key.",
            data={"options": options}))

    def begin_discoverable(self, env: FactorEnv) -> Step:
        """A request for any of this site's discoverable credentials (passwordless sign-in:
        empty ``allowCredentials``, §5.5); the answer names the account (§7.2)."""
        challenge, state = _challenge_state(env, discoverable=True)
        options = _webauthn().authentication_options(rp_id=env.rp_id, challenge=challenge)
        return Step(state=state, display=Display(
            title="Sign in with a passkey", instructions="", data={"options": options}))

    def credential_id(self, response: Mapping[str, str]) -> str:
        """The credential id an assertion claims (to find its record). Raises
        FactorRejected."""
        return _webauthn().assertion_credential_id(_response(response))

    def verify(self, env: FactorEnv, user: User, credential: Credential,
               state: Mapping[str, Any], response: Mapping[str, str]) -> AuthEvent:
        """§7.2 for ``credential``; then the signature counter moves forward atomically and
        the backup state is refreshed. Raises FactorRejected (``clone_suspected`` when the
        counter did not increase)."""
        challenge = _fresh_challenge(env, state)
        raw = _response(response)
        data = dict(credential.data or {})
        if not credential.lookup_key or "public_key" not in data:
            raise FactorRejected("not_registered")
        # §7.2: the credential must be one that allowCredentials listed.
        if _webauthn().assertion_credential_id(raw) != credential.lookup_key:
            raise FactorRejected("unknown_credential", "Use the passkey you registered here.")
        asserted = _webauthn().verify_authentication(
            response=raw, challenge=challenge, rp_id=env.rp_id, origin=env.origin,
            public_key=data["public_key"], stored_sign_count=credential.counter)
        # §7.2: the user handle, when returned, names the credential's owner; a
        # discoverable request must get one.
        if asserted.user_handle is None and state.get("discoverable"):
            raise FactorRejected("missing_user_handle")
        if asserted.user_handle is not None and asserted.user_handle != data.get("user_handle"):
            raise FactorRejected("user_handle_mismatch")
        # §6.1.3 / §7.2 (backup state): eligibility is fixed when the credential is made.
        if asserted.backup_eligible != bool(data.get("backup_eligible")):
            raise FactorRejected("backup_eligibility_changed")
        # §6.1.1: the counter only moves forward, atomically across workers; losing the race
        # to another assertion means this one did not increase it either.
        if asserted.sign_count and not env.advance_counter(credential, asserted.sign_count):
            raise FactorRejected("clone_suspected", "This passkey cannot be used. Contact "
                                                    "support if this keeps happening.")
        if data.get("backed_up") != asserted.backed_up:
            data["backed_up"] = asserted.backed_up
            credential.data = data
        return self.event(credential, env.now(), asserted.user_verified)
