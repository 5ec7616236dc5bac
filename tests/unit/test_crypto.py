"""idp.crypto: SecretBox (AES-256-GCM, HKDF-derived key per purpose) and the hashing helpers."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest

from idp.crypto import (
    FORMAT_VERSION,
    KEY_BYTES,
    NONCE_BYTES,
    DecryptionFailed,
    SecretBox,
    constant_time_equals,
    derive_key,
    sha256_hex,
)

MASTER = "m" * 32
PURPOSE = "totp-seed"


def _raw(token: str) -> bytes:
    return base64.urlsafe_b64decode(token.partition(".")[2])


def _token(raw: bytes) -> str:
    return f"{FORMAT_VERSION}." + base64.urlsafe_b64encode(raw).decode()


def _flip(index: int) -> Callable[[str], str]:
    def tamper(token: str) -> str:
        raw = bytearray(_raw(token))
        raw[index] ^= 0x01
        return _token(bytes(raw))
    return tamper


@pytest.mark.parametrize(
    "plaintext",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"JBSWY3DPEHPK3PXP", id="totp seed"),
        pytest.param("Zoë ✓".encode(), id="utf-8"),
        pytest.param(bytes(range(256)) * 8, id="2 KiB binary"),
    ],
)
def test_round_trip(plaintext: bytes) -> None:
    token = SecretBox(MASTER, PURPOSE).encrypt(plaintext)
    assert token.startswith(f"{FORMAT_VERSION}.")
    assert SecretBox(MASTER, PURPOSE).decrypt(token) == plaintext


@pytest.mark.parametrize(
    ("master", "purpose"),
    [
        pytest.param(MASTER, "signing-key", id="other purpose"),
        pytest.param("n" * 32, PURPOSE, id="other master secret"),
        pytest.param(MASTER + "x", PURPOSE, id="master secret with one more character"),
    ],
)
def test_another_key_cannot_decrypt(master: str, purpose: str) -> None:
    token = SecretBox(MASTER, PURPOSE).encrypt(b"secret")
    with pytest.raises(DecryptionFailed):
        SecretBox(master, purpose).decrypt(token)


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(_flip(0), id="nonce bit flipped"),
        pytest.param(_flip(NONCE_BYTES), id="ciphertext bit flipped"),
        pytest.param(_flip(-1), id="tag bit flipped"),
        pytest.param(lambda t: _token(_raw(t)[:-1]), id="tag truncated"),
        pytest.param(lambda t: _token(_raw(t)[:NONCE_BYTES]), id="nonce only"),
        pytest.param(lambda t: _token(_raw(t)[:4]), id="short nonce"),
        pytest.param(lambda t: _token(_raw(t) + b"\0"), id="byte appended"),
        pytest.param(lambda t: f"{FORMAT_VERSION}.", id="empty body"),
        pytest.param(lambda t: t[:-3], id="base64 padding broken"),
        pytest.param(lambda t: f"{FORMAT_VERSION}.!!!!", id="not base64"),
    ],
)
def test_altered_ciphertext_is_rejected(tamper: Callable[[str], str]) -> None:
    token = SecretBox(MASTER, PURPOSE).encrypt(b"secret seed bytes")
    with pytest.raises(DecryptionFailed):
        SecretBox(MASTER, PURPOSE).decrypt(tamper(token))


@pytest.mark.parametrize(
    "prefix",
    [
        pytest.param("v2.", id="future version"),
        pytest.param("V1.", id="wrong case"),
        pytest.param("", id="no version"),
        pytest.param("v1", id="no separator"),
    ],
)
def test_unknown_version_prefix_is_rejected(prefix: str) -> None:
    token = SecretBox(MASTER, PURPOSE).encrypt(b"secret")
    body = token.partition(".")[2]
    with pytest.raises(DecryptionFailed, match="unknown ciphertext format"):
        SecretBox(MASTER, PURPOSE).decrypt(prefix + body)


def test_every_encryption_uses_a_fresh_nonce() -> None:
    box = SecretBox(MASTER, PURPOSE)
    tokens = [box.encrypt(b"same plaintext") for _ in range(100)]
    assert len(set(tokens)) == len(tokens)
    assert len({_raw(t)[:NONCE_BYTES] for t in tokens}) == len(tokens)


@pytest.mark.parametrize(
    ("other_master", "other_purpose", "same"),
    [
        (MASTER, PURPOSE, True),
        (MASTER, "signing-key", False),
        ("n" * 32, PURPOSE, False),
    ],
)
def test_derive_key_is_deterministic_and_separated(other_master: str, other_purpose: str,
                                                   same: bool) -> None:
    key = derive_key(MASTER, PURPOSE)
    assert len(key) == KEY_BYTES
    assert (derive_key(other_master, other_purpose) == key) is same


@pytest.mark.parametrize(
    ("value", "digest"),
    [
        # FIPS 180-2 / well-known SHA-256 test vectors.
        ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
    ],
)
def test_sha256_hex_known_vectors(value: str, digest: str) -> None:
    assert sha256_hex(value) == digest


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        ("token", "token", True),
        ("", "", True),
        ("Zoë", "Zoë", True),
        ("token", "tokeN", False),
        ("token", "token ", False),
        ("", "x", False),
        ("Zoë", "Zoe", False),
    ],
)
def test_constant_time_equals(a: str, b: str, equal: bool) -> None:
    assert constant_time_equals(a, b) is equal
