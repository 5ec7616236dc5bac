"""WebAuthn through py_webauthn — the only module importing ``webauthn`` (STYLE §10).

Parameters are pinned here as named constants; every library exception becomes a
:class:`~idp.factors.base.FactorRejected` with a precise ``reason`` for the audit log.
Section numbers refer to W3C Web Authentication Level 3 (https://www.w3.org/TR/webauthn-3/).

- Challenges: 32 random bytes (§13.4.3 asks for at least 16), single use and short-lived; the
  caller keeps them server-side.
- Registration (§5.4, §7.1): ES256, RS256 and EdDSA (§5.8.5 ``COSEAlgorithmIdentifier``),
  ``residentKey: preferred`` so the credential can sign in without a username,
  ``userVerification: preferred``, ``attestation: direct`` so hardware attestation can be
  checked against configured trust anchors (§6.5).
- Authentication (§5.5, §7.2): ``userVerification: preferred``; the signature counter is
  checked only after the signature is known to be good, so a forged response can never raise a
  clone alarm (§6.1.1).

The library is authoritative on acceptance; before calling it the client data and the RP ID
hash are examined here only to name *why* a response is refused (wrong origin, wrong RP ID,
challenge mismatch…), which the library reports as free text.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    base64url_to_bytes,
    bytes_to_base64url,
    parse_attestation_object,
    parse_authentication_credential_json,
    parse_authenticator_data,
    parse_client_data_json,
    parse_registration_credential_json,
    validate_certificate_chain,
)
from webauthn.helpers.cose import COSEAlgorithmIdentifier
from webauthn.helpers.exceptions import InvalidCertificateChain, WebAuthnException
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AttestationFormat,
    AuthenticationCredential,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    ClientDataType,
    CredentialDeviceType,
    PublicKeyCredentialDescriptor,
    RegistrationCredential,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from idp.factors.base import FactorRejected

logger = logging.getLogger("idp.factors.webauthn")

#: §13.4.3: at least 16 bytes; 32 gives a comfortable margin.
CHALLENGE_BYTES = 32
#: §5.4 / §5.5 ``timeout`` hint for the browser, in milliseconds (5 minutes).
TIMEOUT_MS = 300_000
#: §5.4.4 / §5.5: ask for user verification, accept its absence (it lowers the level proven).
USER_VERIFICATION = UserVerificationRequirement.PREFERRED
#: §5.4.4: a discoverable credential if the authenticator can (passwordless sign-in).
RESIDENT_KEY = ResidentKeyRequirement.PREFERRED
#: §5.4.7: the attestation statement as the authenticator made it (trust anchors decide).
ATTESTATION = AttestationConveyancePreference.DIRECT
#: §5.8.5, preference order: ES256, RS256 (Windows Hello), EdDSA.
ALGORITHMS: tuple[COSEAlgorithmIdentifier, ...] = (
    COSEAlgorithmIdentifier.ECDSA_SHA_256,
    COSEAlgorithmIdentifier.RSASSA_PKCS1_v1_5_SHA_256,
    COSEAlgorithmIdentifier.EDDSA,
)
#: §14.6.1: user handles are random-looking, 64 bytes at most, never personal data.
USER_HANDLE_BYTES = 32
#: An all-zero AAGUID says nothing about the authenticator (§6.5.1, "none" attestation).
ZERO_AAGUID = "00000000-0000-0000-0000-000000000000"

MALFORMED = "The passkey response could not be read. Try again."
#: What the library may raise on hostile input besides its own errors (a signature that is
#: not DER, a key or certificate that does not parse, CBOR of the wrong shape).
LIBRARY_ERRORS = (WebAuthnException, InvalidSignature, ValueError, TypeError, KeyError,
                  IndexError)


@dataclass(frozen=True)
class TrustPolicy:
    """What makes a credential ``hardware_attested`` (DESIGN §3): an attestation certificate
    chain ending at one of ``anchors`` (PEM certificates), or an AAGUID on ``aaguids``."""

    anchors: tuple[bytes, ...] = ()
    aaguids: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Registered:
    """A verified new credential (§7.1), everything the credential record must keep (§4)."""

    credential_id: str          # base64url
    public_key: str             # base64url of the COSE_Key
    sign_count: int
    aaguid: str
    transports: tuple[str, ...]
    user_verified: bool
    backup_eligible: bool
    backed_up: bool
    attestation_format: str
    hardware_attested: bool


@dataclass(frozen=True)
class Asserted:
    """A verified assertion (§7.2)."""

    credential_id: str          # base64url
    sign_count: int
    user_verified: bool
    backup_eligible: bool
    backed_up: bool
    user_handle: str | None     # base64url, when the authenticator returned one


# -- options -----------------------------------------------------------------------------------

def new_challenge() -> bytes:
    """A fresh challenge (§13.4.3)."""
    return secrets.token_bytes(CHALLENGE_BYTES)


def derive_user_handle(key: bytes, user_id: str) -> bytes:
    """A stable user handle that reveals nothing about the account (§14.6.1): a keyed hash."""
    return hmac.new(key, user_id.encode("utf-8"), hashlib.sha256).digest()[:USER_HANDLE_BYTES]


def _descriptors(credentials: Iterable[tuple[str, Sequence[str]]]
                 ) -> list[PublicKeyCredentialDescriptor]:
    descriptors = []
    for credential_id, transports in credentials:
        known = [AuthenticatorTransport(t) for t in transports
                 if t in {m.value for m in AuthenticatorTransport}]
        descriptors.append(PublicKeyCredentialDescriptor(id=base64url_to_bytes(credential_id),
                                                         transports=known or None))
    return descriptors


def _plain(options: Any) -> dict[str, Any]:
    """The options as JSON-ready plain values (§5.1.3 ``PublicKeyCredentialCreationOptionsJSON``
    / §5.1.4 ``PublicKeyCredentialRequestOptionsJSON``)."""
    return json.loads(options_to_json(options))


def registration_options(*, rp_id: str, rp_name: str, user_handle: bytes, user_name: str,
                         display_name: str, challenge: bytes,
                         exclude: Iterable[tuple[str, Sequence[str]]] = ()) -> dict[str, Any]:
    """``PublicKeyCredentialCreationOptionsJSON`` for ``navigator.credentials.create()``
    (§5.4). ``exclude`` lists (credential id, transports) of the user's passkeys, so one
    authenticator is not registered twice (§5.4 ``excludeCredentials``)."""
    options = generate_registration_options(
        rp_id=rp_id, rp_name=rp_name, user_id=user_handle, user_name=user_name,
        user_display_name=display_name, challenge=challenge, timeout=TIMEOUT_MS,
        attestation=ATTESTATION,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=RESIDENT_KEY, user_verification=USER_VERIFICATION),
        exclude_credentials=_descriptors(exclude),
        supported_pub_key_algs=list(ALGORITHMS),
    )
    return _plain(options)


def authentication_options(*, rp_id: str, challenge: bytes,
                           allow: Iterable[tuple[str, Sequence[str]]] = ()) -> dict[str, Any]:
    """``PublicKeyCredentialRequestOptionsJSON`` for ``navigator.credentials.get()`` (§5.5).
    An empty ``allow`` asks for a discoverable credential (§5.5 ``allowCredentials``)."""
    options = generate_authentication_options(
        rp_id=rp_id, challenge=challenge, timeout=TIMEOUT_MS,
        allow_credentials=_descriptors(allow), user_verification=USER_VERIFICATION)
    return _plain(options)


# -- trust anchors -----------------------------------------------------------------------------

def load_trust_policy(anchors: Iterable[str], aaguids: Iterable[str]) -> TrustPolicy:
    """``webauthn.trust_anchors_pem`` entries (PEM text, or a path to a PEM file holding one
    or more certificates) and ``webauthn.aaguid_allowlist``. An unreadable entry is logged
    and ignored: it can only make fewer credentials count as hardware-attested."""
    pems: list[bytes] = []
    for entry in anchors:
        text = entry if "-----BEGIN" in entry else None
        if text is None:
            try:
                text = Path(entry).read_text("utf-8")
            except OSError as exc:
                logger.error("webauthn.trust_anchors_pem: cannot read %s: %s", entry, exc)
                continue
        try:
            certificates = x509.load_pem_x509_certificates(text.encode("utf-8"))
        except ValueError as exc:
            logger.error("webauthn.trust_anchors_pem: not a PEM certificate: %s", exc)
            continue
        pems.extend(cert.public_bytes(Encoding.PEM) for cert in certificates)
    allowed = frozenset(a.strip().lower() for a in aaguids if a.strip().lower() != ZERO_AAGUID)
    return TrustPolicy(tuple(pems), allowed)


def _hardware_attested(fmt: AttestationFormat, attestation_object: bytes, aaguid: str,
                       trust: TrustPolicy) -> bool:
    """§6.5.3 attestation types: only Basic/AttCA attestation (a certificate chain, ``x5c``)
    can vouch for the device; "none" and self attestation cannot. The chain must end at a
    configured anchor — the library's built-in vendor roots do not count here."""
    if aaguid.lower() in trust.aaguids:
        return True
    if not trust.anchors or fmt == AttestationFormat.NONE:
        return False
    x5c = parse_attestation_object(attestation_object).att_stmt.x5c
    if not x5c:
        return False
    try:
        return validate_certificate_chain(x5c=x5c, pem_root_certs_bytes=list(trust.anchors))
    except InvalidCertificateChain:
        return False


# -- verification ------------------------------------------------------------------------------

def _check_client_data(raw: bytes, ceremony: ClientDataType, challenge: bytes,
                       origin: str) -> None:
    """§7.1 / §7.2, the client data checks: type, challenge, origin, not cross-origin."""
    try:
        client_data = parse_client_data_json(raw)
    except (WebAuthnException, ValueError, TypeError):
        raise FactorRejected("malformed_response", MALFORMED) from None
    if client_data.type != ceremony:
        raise FactorRejected("wrong_ceremony", MALFORMED)
    if not hmac.compare_digest(client_data.challenge, challenge):
        raise FactorRejected("challenge_mismatch", "This passkey request is out of date. "
                                                   "Try again.")
    if client_data.origin != origin:
        raise FactorRejected("wrong_origin", "This passkey was used on another site.")
    if client_data.cross_origin:
        raise FactorRejected("cross_origin", "Passkeys cannot be used from an embedded page.")


def _check_rp_id(rp_id_hash: bytes, rp_id: str) -> None:
    """§7.1 / §7.2: ``rpIdHash`` is the SHA-256 of our RP ID."""
    if not hmac.compare_digest(rp_id_hash, hashlib.sha256(rp_id.encode("utf-8")).digest()):
        raise FactorRejected("wrong_rp_id", "This passkey belongs to another site.")


def _reason(exc: Exception) -> str:
    """Name what the library refused, for what the pre-checks above cannot see."""
    if isinstance(exc, InvalidSignature):
        return "bad_signature"
    if not isinstance(exc, WebAuthnException):
        return "malformed_response"
    text = str(exc).lower()
    if "signature" in text:
        return "bad_signature"
    if "user verification" in text:
        return "user_not_verified"
    if "not present" in text:
        return "user_not_present"
    if "alg" in text:
        return "unsupported_algorithm"
    if "attestation" in text or "certificate" in text:
        return "bad_attestation"
    return "invalid_response"


def _parse_registration(response: str) -> RegistrationCredential:
    try:
        return parse_registration_credential_json(response)
    except (WebAuthnException, ValueError, TypeError):
        raise FactorRejected("malformed_response", MALFORMED) from None


def _parse_assertion(response: str) -> AuthenticationCredential:
    try:
        return parse_authentication_credential_json(response)
    except (WebAuthnException, ValueError, TypeError):
        raise FactorRejected("malformed_response", MALFORMED) from None


def verify_registration(*, response: str, challenge: bytes, rp_id: str, origin: str,
                        trust: TrustPolicy) -> Registered:
    """§7.1 Registering a New Credential. ``response`` is the JSON of the
    ``PublicKeyCredential`` (§5.1 ``RegistrationResponseJSON``). Raises FactorRejected."""
    credential = _parse_registration(response)
    _check_client_data(credential.response.client_data_json, ClientDataType.WEBAUTHN_CREATE,
                       challenge, origin)
    try:
        attestation = parse_attestation_object(credential.response.attestation_object)
    except (WebAuthnException, ValueError, TypeError, KeyError):
        raise FactorRejected("malformed_response", MALFORMED) from None
    _check_rp_id(attestation.auth_data.rp_id_hash, rp_id)
    try:
        verified = verify_registration_response(
            credential=credential, expected_challenge=challenge, expected_rp_id=rp_id,
            expected_origin=origin, require_user_presence=True,
            require_user_verification=False, supported_pub_key_algs=list(ALGORITHMS))
    except LIBRARY_ERRORS as exc:
        raise FactorRejected(_reason(exc), "That passkey could not be registered. Try "
                                           "again.") from None
    transports = tuple(t.value for t in credential.response.transports or ())
    return Registered(
        credential_id=bytes_to_base64url(verified.credential_id),
        public_key=bytes_to_base64url(verified.credential_public_key),
        sign_count=verified.sign_count,
        aaguid=verified.aaguid,
        transports=transports,
        user_verified=verified.user_verified,
        backup_eligible=verified.credential_device_type == CredentialDeviceType.MULTI_DEVICE,
        backed_up=verified.credential_backed_up,
        attestation_format=str(getattr(verified.fmt, "value", verified.fmt)),
        hardware_attested=_hardware_attested(verified.fmt, verified.attestation_object,
                                             verified.aaguid, trust),
    )


def assertion_credential_id(response: str) -> str:
    """The base64url credential id an assertion claims to come from (not yet verified): the
    key to find the credential record (§7.2, identifying the user and credential).
    Raises FactorRejected."""
    credential = _parse_assertion(response)
    if bytes_to_base64url(credential.raw_id) != credential.id:
        raise FactorRejected("malformed_response", MALFORMED)
    return credential.id


def check_sign_count(stored: int, received: int) -> None:
    """§6.1.1 Signature Counter Considerations and the counter check of §7.2: when either is
    non-zero, the new one must be greater, else the authenticator may be cloned. Both zero
    means the authenticator does not count (common for synced passkeys): accepted."""
    if (received or stored) and received <= stored:
        raise FactorRejected("clone_suspected", "This passkey cannot be used. Contact "
                                                "support if this keeps happening.")


def verify_authentication(*, response: str, challenge: bytes, rp_id: str, origin: str,
                          public_key: str, stored_sign_count: int) -> Asserted:
    """§7.2 Verifying an Authentication Assertion for the credential whose COSE public key
    (base64url) is ``public_key``. The signature counter is compared with
    ``stored_sign_count`` only after the signature verified. Raises FactorRejected."""
    credential = _parse_assertion(response)
    _check_client_data(credential.response.client_data_json, ClientDataType.WEBAUTHN_GET,
                       challenge, origin)
    try:
        auth_data = parse_authenticator_data(credential.response.authenticator_data)
    except (WebAuthnException, ValueError, TypeError):
        raise FactorRejected("malformed_response", MALFORMED) from None
    _check_rp_id(auth_data.rp_id_hash, rp_id)
    try:
        verified = verify_authentication_response(
            credential=credential, expected_challenge=challenge, expected_rp_id=rp_id,
            expected_origin=origin, credential_public_key=base64url_to_bytes(public_key),
            # 0: the counter is checked below, once the signature is known to be genuine.
            credential_current_sign_count=0, require_user_verification=False)
    except LIBRARY_ERRORS as exc:
        raise FactorRejected(_reason(exc)) from None
    check_sign_count(stored_sign_count, verified.new_sign_count)
    handle = credential.response.user_handle
    return Asserted(
        credential_id=bytes_to_base64url(verified.credential_id),
        sign_count=verified.new_sign_count,
        user_verified=verified.user_verified,
        backup_eligible=verified.credential_device_type == CredentialDeviceType.MULTI_DEVICE,
        backed_up=verified.credential_backed_up,
        user_handle=bytes_to_base64url(handle) if handle else None,
    )


def encode(raw: bytes) -> str:
    """base64url without padding, as WebAuthn's JSON forms use (§5.1)."""
    return bytes_to_base64url(raw)


def decode(text: str) -> bytes:
    """Inverse of :func:`encode`; raises FactorRejected on garbage."""
    try:
        return base64url_to_bytes(text)
    except (ValueError, TypeError):
        raise FactorRejected("malformed_response", MALFORMED) from None
