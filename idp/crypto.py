"""Encryption of secrets at rest (signing keys, factor seeds) and keyed hashing.

One adapter around ``cryptography``: AES-256-GCM with a key derived by HKDF-SHA256 from the
master secret (``secret_key``) and a per-purpose label, so a key for one purpose never opens
another's data. Ciphertext format: ``v1.<base64url(nonce || ciphertext || tag)>``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

NONCE_BYTES = 12
KEY_BYTES = 32
FORMAT_VERSION = "v1"


class DecryptionFailed(ValueError):
    """The ciphertext was not produced with this master secret and purpose, or was altered."""


def derive_key(master_secret: str, purpose: str) -> bytes:
    """A 256-bit key for ``purpose`` (HKDF-SHA256, RFC 5869)."""
    return HKDF(
        algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None,
        info=f"stepup-idp/{purpose}".encode(),
    ).derive(master_secret.encode())


class SecretBox:
    """Encrypts and decrypts small secrets for one purpose."""

    def __init__(self, master_secret: str, purpose: str) -> None:
        self._aead = AESGCM(derive_key(master_secret, purpose))
        self._aad = purpose.encode()

    def encrypt(self, plaintext: bytes) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext, self._aad)
        return f"{FORMAT_VERSION}." + base64.urlsafe_b64encode(nonce + sealed).decode()

    def decrypt(self, token: str) -> bytes:
        version, _, body = token.partition(".")
        if version != FORMAT_VERSION:
            raise DecryptionFailed("unknown ciphertext format")
        try:
            raw = base64.urlsafe_b64decode(body.encode())
            return self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], self._aad)
        except (InvalidTag, ValueError) as exc:
            raise DecryptionFailed("ciphertext rejected") from exc


def sha256_hex(value: str) -> str:
    """Lookup hash for high-entropy secrets (codes, refresh tokens, client secrets)."""
    return hashlib.sha256(value.encode()).hexdigest()


def constant_time_equals(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
