"""RFC 4226 HOTP with the standard library only (``hmac`` + ``hashlib``).

HOTP(K, C) = Truncate(HMAC-SHA-1(K, C)) mod 10^Digit, where C is the 8-byte big-endian moving
factor (RFC 4226 §5.3). Seeds travel as base32 (the format tokens, seed files and
authenticator apps use); at rest the IdP encrypts the raw bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

#: RFC 4226 R4: at least 6 digits. 6 is what the code-entry page and most tokens use.
DIGITS = 6
#: RFC 4226 R6: the shared secret must be at least 128 bits; 160 bits is recommended.
MIN_SEED_BYTES = 16
SEED_BYTES = 20
_MAX_COUNTER = 2**64 - 1


class InvalidSeed(ValueError):
    """A provided seed is not base32 or is shorter than RFC 4226 allows."""


def dynamic_truncate(mac: bytes) -> int:
    """RFC 4226 §5.3 DT: 31 bits from the offset named by the low nibble of the last byte."""
    if len(mac) < 20:
        raise ValueError("HMAC-SHA-1 output is 20 bytes")
    offset = mac[-1] & 0x0F
    return int.from_bytes(mac[offset:offset + 4], "big") & 0x7FFFFFFF


def hotp(key: bytes, counter: int, digits: int = DIGITS) -> str:
    """The ``digits``-digit HOTP value of ``key`` at ``counter`` (zero-padded)."""
    if not 0 <= counter <= _MAX_COUNTER:
        raise ValueError("the HOTP counter is an unsigned 64-bit integer")
    if not 6 <= digits <= 9:
        raise ValueError("HOTP values have 6 to 9 digits")
    mac = hmac.new(key, counter.to_bytes(8, "big"), hashlib.sha1).digest()
    return str(dynamic_truncate(mac) % 10**digits).zfill(digits)


def generate_seed() -> bytes:
    """A fresh 160-bit secret from the OS CSPRNG (RFC 4226 §7.5, R7)."""
    return secrets.token_bytes(SEED_BYTES)


def encode_seed(seed: bytes) -> str:
    """Unpadded upper-case base32, as printed on tokens and typed into authenticator apps."""
    return base64.b32encode(seed).decode("ascii").rstrip("=")


def parse_seed(text: str) -> bytes:
    """Decode a base32 seed, forgiving case, spaces, dashes and missing padding."""
    cleaned = "".join(text.split()).replace("-", "").upper().rstrip("=")
    if not cleaned:
        raise InvalidSeed("empty seed")
    try:
        seed = base64.b32decode(cleaned + "=" * (-len(cleaned) % 8))
    except (binascii.Error, ValueError) as exc:
        raise InvalidSeed("not base32") from exc
    if len(seed) < MIN_SEED_BYTES:
        raise InvalidSeed(f"seeds must have at least {MIN_SEED_BYTES * 8} bits")
    return seed


def group(text: str, size: int = 4) -> str:
    """``ABCDEFGH`` → ``ABCD EFGH``: easier to read off a screen and type into a token tool."""
    return " ".join(text[i:i + size] for i in range(0, len(text), size))
