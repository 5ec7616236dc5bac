"""The client address behind trusted proxies (idp/proxy.py)."""

from __future__ import annotations

import pytest

from idp.proxy import TrustedProxies, parse_networks

PROXIES = TrustedProxies(lambda environ, start: [], parse_networks(["10.0.0.0/8", "::1/128"]))


@pytest.mark.parametrize("peer, forwarded, expected", [
    ("198.51.100.7", "203.0.113.9", ("198.51.100.7", False)),     # untrusted peer: ignored
    ("10.0.0.2", "", ("10.0.0.2", True)),                          # nothing forwarded
    ("10.0.0.2", "203.0.113.9", ("203.0.113.9", True)),
    ("10.0.0.2", "1.1.1.1, 203.0.113.9, 10.9.9.9", ("203.0.113.9", True)),  # forged left part
    ("10.0.0.2", "10.1.1.1, 10.9.9.9", ("10.1.1.1", True)),       # only proxies
    ("10.0.0.2", "1.1.1.1, garbage, 10.9.9.9", ("10.9.9.9", True)),  # stop at garbage
    ("::1", "[2001:db8::5]:443", ("2001:db8::5", True)),
    ("10.0.0.2", "192.0.2.4:5555", ("192.0.2.4", True)),
])
def test_client_address(peer, forwarded, expected):
    assert PROXIES.client_address(peer, forwarded) == expected
