"""The client's address behind trusted reverse proxies (``trusted_proxies``).

Behind a load balancer the TCP peer is the proxy, so throttles, the ``ip_in`` policy rule,
audit rows and the request log would all see one address. When, and only when, the immediate
peer is inside a ``trusted_proxies`` network, this middleware replaces ``REMOTE_ADDR`` with the
right-most ``X-Forwarded-For`` address that is not itself a trusted proxy: every hop to the
right of it was appended by a proxy we trust, every hop to its left was written by the client
and can be forged (RFC 7239 §7.4 and the ``X-Forwarded-For`` practice it describes). An
untrusted peer's ``X-Forwarded-For`` is ignored. ``X-Forwarded-Proto``/``-Host`` are not
read: every URL the IdP publishes derives from the configured ``issuer``.

The original peer stays in ``environ[PEER_KEY]``, and ``environ[TRUSTED_KEY]`` says whether it
was a trusted proxy (headers such as ``policy.country_header`` are honoured only then).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Sequence
from typing import Any

PEER_KEY = "idp.proxy_peer"
TRUSTED_KEY = "idp.via_trusted_proxy"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: Sequence[Any]) -> list[Network]:
    """CIDR text → networks (``trusted_proxies`` is validated when settings load)."""
    return [ipaddress.ip_network(str(value), strict=False) for value in values]


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:443"
        text = text[1:text.index("]")]
    elif text.count(":") == 1:  # "192.0.2.1:443"
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


class TrustedProxies:
    """WSGI middleware setting ``REMOTE_ADDR`` to the client address a trusted proxy saw."""

    def __init__(self, app: Callable[..., Iterable[bytes]], networks: Sequence[Network]) -> None:
        self.app = app
        self.networks = tuple(networks)

    def _trusted(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address | None) -> bool:
        return address is not None and any(address in network for network in self.networks)

    def client_address(self, peer: str, forwarded_for: str) -> tuple[str, bool]:
        """(client address, whether the peer is a trusted proxy)."""
        if not self._trusted(_address(peer)):
            return peer, False
        nearest = peer  # the client-most address known to come from a trusted proxy
        for hop in reversed([hop for hop in forwarded_for.split(",") if hop.strip()]):
            address = _address(hop)
            if address is None:
                break  # garbage: no trusted proxy wrote it, nor anything to its left
            if not self._trusted(address):
                return str(address), True
            nearest = str(address)
        return nearest, True

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if self.networks:
            peer = environ.get("REMOTE_ADDR", "")
            client, trusted = self.client_address(peer, environ.get("HTTP_X_FORWARDED_FOR", ""))
            environ[PEER_KEY] = peer
            environ[TRUSTED_KEY] = trusted
            environ["REMOTE_ADDR"] = client
        return self.app(environ, start_response)
