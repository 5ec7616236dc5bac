"""``idp.views.security.check_encoded``: the page contract's parameter check (DESIGN §7) —
every name and value, percent-decoded, is UTF-8 without NUL. It decodes the whole string at
once; this checks it agrees with decoding pair by pair (``parse_qsl``, strict), on a table of
edge cases and on random inputs built from the characters that matter."""

from __future__ import annotations

import random
from urllib.parse import parse_qsl

import pytest

from idp.errors import InvalidRequest
from idp.views.security import check_encoded


def pairwise_verdict(raw: bytes) -> str:
    """What decoding pair by pair says: "ok", "utf-8" or "nul"."""
    try:
        pairs = parse_qsl(raw.decode("utf-8", errors="strict"), keep_blank_values=True,
                          encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        return "utf-8"
    if any("\x00" in name or "\x00" in value for name, value in pairs):
        return "nul"
    return "ok"


def verdict(raw: bytes) -> str:
    try:
        check_encoded(raw)
    except InvalidRequest as exc:
        return "nul" if "NUL" in exc.description else "utf-8"
    return "ok"


@pytest.mark.parametrize(("raw", "expected"), [
    (b"", "ok"),
    (b"client_id=rp1&scope=openid+profile", "ok"),
    (b"name=%C3%A9t%C3%A9", "ok"),                # UTF-8, escaped
    ("name=été".encode(), "ok"),                  # UTF-8, raw
    (b"a=%zz&b=%", "ok"),                          # malformed escapes stay as they are
    (b"login_hint=%ff", "utf-8"),
    (b"login_hint=\xff", "utf-8"),                 # a raw byte that is not UTF-8
    (b"n=%C3", "utf-8"),                           # a sequence cut short
    (b"n=%C3&m=%A9", "utf-8"),                     # ... and not completed across '&'
    (b"%C3=%A9", "utf-8"),                         # ... nor across '='
    (b"login_hint=al%00ice", "nul"),
    (b"al\x00ice=1", "nul"),
    (b"a=1&%00=2", "nul"),
])
def test_edge_cases(raw: bytes, expected: str):
    assert verdict(raw) == expected
    assert pairwise_verdict(raw) == expected


def test_agrees_with_pairwise_decoding_on_random_inputs():
    pieces = [b"a", b"=", b"&", b"+", b"%", b"%00", b"%C3", b"%A9", b"%e2%82", b"%ac", b"%ff",
              b"%zz", b"\xc3", b"\xa9", b"\xff", b"\x00", "é".encode(), b"%3D", b"%26"]
    rng = random.Random(7)
    for _ in range(20000):
        raw = b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 8)))
        assert verdict(raw) == pairwise_verdict(raw), raw
