"""A tiny software WebAuthn authenticator plus the client half of the ceremonies.

A fake of the *device*, not a mock of the code under test: it makes real P-256 credentials,
real ``clientDataJSON``, ``authenticatorData`` with the flags and counter asked for (W3C
WebAuthn Level 3 §6.1), "none" or "packed" (x5c) attestation (§8.2, §8.7), and real ES256
assertion signatures (§6.3.3), so the server verifies exactly what a browser would send.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import secrets
import struct
from dataclasses import dataclass, field
from typing import Any

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

UP, UV, BE, BS, AT = 0x01, 0x04, 0x08, 0x10, 0x40


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test Authenticators"),
                      x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME,
                                         "Authenticator Attestation"),
                      x509.NameAttribute(NameOID.COUNTRY_NAME, "SE")])


class AttestationCA:
    """A root certificate (the trust anchor an operator would configure) that issues batch
    attestation certificates for packed attestation (§8.2.1)."""

    def __init__(self, name: str = "Test Attestation Root") -> None:
        now = datetime.datetime.now(datetime.UTC)
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(name)).issuer_name(_name(name))
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                         crl_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .sign(self.key, hashes.SHA256()))
        self.pem = self.certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")

    def issue(self) -> tuple[ec.EllipticCurvePrivateKey, bytes]:
        """A batch attestation key and its certificate (DER)."""
        now = datetime.datetime.now(datetime.UTC)
        key = ec.generate_private_key(ec.SECP256R1())
        certificate = (
            x509.CertificateBuilder()
            .subject_name(_name("Test Authenticator Batch"))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256()))
        return key, certificate.public_bytes(serialization.Encoding.DER)


@dataclass
class StoredCredential:
    credential_id: bytes
    key: ec.EllipticCurvePrivateKey
    rp_id: str
    user_handle: bytes
    sign_count: int = 0


@dataclass
class SoftwareAuthenticator:
    """One authenticator. ``counts=False`` models one that keeps its counter at zero (most
    synced passkeys); ``attestation_ca`` makes it use packed attestation with a certificate
    from that CA, else it answers with "none" attestation."""

    user_verifying: bool = True
    backup_eligible: bool = False
    backed_up: bool = False
    counts: bool = True
    aaguid: bytes = bytes(16)
    attestation_ca: AttestationCA | None = None
    transports: tuple[str, ...] = ("internal",)
    credentials: dict[bytes, StoredCredential] = field(default_factory=dict)

    # -- pieces (§6.1) ---------------------------------------------------------------------------

    def _flags(self, user_verified: bool, attested: bool) -> int:
        flags = UP | (UV if user_verified else 0) | (BE if self.backup_eligible else 0) \
            | (BS if self.backed_up else 0)
        return flags | (AT if attested else 0)

    @staticmethod
    def _cose_key(key: ec.EllipticCurvePrivateKey) -> bytes:
        numbers = key.public_key().public_numbers()
        return cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"),
                            -3: numbers.y.to_bytes(32, "big")})

    @staticmethod
    def client_data(ceremony: str, challenge: str, origin: str,
                    cross_origin: bool = False) -> bytes:
        return json.dumps({"type": ceremony, "challenge": challenge, "origin": origin,
                           "crossOrigin": cross_origin}).encode()

    # -- navigator.credentials.create() (§5.1.3, §6.3.2) ------------------------------------------

    def create(self, options: dict[str, Any], origin: str, *, rp_id: str | None = None,
               challenge: str | None = None, ceremony: str = "webauthn.create",
               user_verified: bool | None = None) -> dict[str, Any]:
        """The ``RegistrationResponseJSON`` for ``PublicKeyCredentialCreationOptionsJSON``;
        keyword arguments forge what a browser would not send."""
        rp_id = rp_id or options["rp"]["id"]
        excluded = {unb64url(d["id"]) for d in options.get("excludeCredentials", [])}
        if excluded & set(self.credentials):
            raise RuntimeError("InvalidStateError: credential excluded")
        key = ec.generate_private_key(ec.SECP256R1())
        credential_id = secrets.token_bytes(32)
        self.credentials[credential_id] = StoredCredential(
            credential_id, key, rp_id, unb64url(options["user"]["id"]))
        uv = self.user_verifying if user_verified is None else user_verified
        auth_data = (hashlib.sha256(rp_id.encode()).digest()
                     + bytes([self._flags(uv, attested=True)])
                     + struct.pack(">I", 0)
                     + self.aaguid + struct.pack(">H", len(credential_id)) + credential_id
                     + self._cose_key(key))
        client_data = self.client_data(ceremony, challenge or options["challenge"], origin)
        if self.attestation_ca is None:
            fmt, statement = "none", {}
        else:
            batch_key, batch_cert = self.attestation_ca.issue()
            signed = auth_data + hashlib.sha256(client_data).digest()
            fmt = "packed"
            statement = {"alg": -7, "sig": batch_key.sign(signed, ec.ECDSA(hashes.SHA256())),
                         "x5c": [batch_cert]}
        attestation = cbor2.dumps({"fmt": fmt, "attStmt": statement, "authData": auth_data})
        return {
            "id": b64url(credential_id), "rawId": b64url(credential_id), "type": "public-key",
            "authenticatorAttachment": "platform", "clientExtensionResults": {},
            "response": {"clientDataJSON": b64url(client_data),
                         "attestationObject": b64url(attestation),
                         "transports": list(self.transports)},
        }

    # -- navigator.credentials.get() (§5.1.4, §6.3.3) ---------------------------------------------

    def get(self, options: dict[str, Any], origin: str, *, rp_id: str | None = None,
            challenge: str | None = None, ceremony: str = "webauthn.get",
            credential_id: bytes | None = None, sign_count: int | None = None,
            user_verified: bool | None = None, backup_eligible: bool | None = None,
            user_handle: bytes | None = None) -> dict[str, Any]:
        """The ``AuthenticationResponseJSON`` for ``PublicKeyCredentialRequestOptionsJSON``."""
        rp_id = rp_id or options["rpId"]
        stored = self._pick(options, credential_id)
        if sign_count is None:
            if self.counts:
                stored.sign_count += 1
            sign_count = stored.sign_count
        uv = self.user_verifying if user_verified is None else user_verified
        flags = self._flags(uv, attested=False)
        if backup_eligible is not None:
            flags = (flags & ~(BE | BS)) | (BE if backup_eligible else 0)
        auth_data = (hashlib.sha256(rp_id.encode()).digest() + bytes([flags])
                     + struct.pack(">I", sign_count))
        client_data = self.client_data(ceremony, challenge or options["challenge"], origin)
        signature = stored.key.sign(auth_data + hashlib.sha256(client_data).digest(),
                                    ec.ECDSA(hashes.SHA256()))
        handle = stored.user_handle if user_handle is None else user_handle
        return {
            "id": b64url(stored.credential_id), "rawId": b64url(stored.credential_id),
            "type": "public-key", "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
            "response": {"clientDataJSON": b64url(client_data),
                         "authenticatorData": b64url(auth_data),
                         "signature": b64url(signature),
                         "userHandle": b64url(handle) if handle else None},
        }

    def _pick(self, options: dict[str, Any], credential_id: bytes | None) -> StoredCredential:
        if credential_id is not None:
            return self.credentials[credential_id]
        allowed = [unb64url(d["id"]) for d in options.get("allowCredentials", [])]
        for candidate in allowed or list(self.credentials):
            if candidate in self.credentials:
                return self.credentials[candidate]
        raise RuntimeError("NotAllowedError: no matching credential")
