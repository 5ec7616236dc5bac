"""SMS delivery through an HTTP gateway (``delivery.sms: http``; DESIGN §6).

One JSON POST ``{"to": "+E.164", "message": "..."}`` to ``delivery.sms_gateway.url`` with
``Authorization: Bearer <token>``. Any 2xx answer means the gateway accepted the message.
Bounded: connecting and each read wait at most ``timeout`` seconds. Redirects are not
followed (the bearer token goes to the configured URL only). Every failure — a non-2xx
answer, a timeout, a refused connection — becomes :class:`~idp.delivery.DeliveryFailed`
whose reason names the status or the kind of error, never the message or the gateway's body.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests

from idp.delivery import DeliveryFailed


@dataclass(frozen=True)
class GatewayConfig:
    """The gateway (``delivery.sms_gateway`` in the settings)."""

    url: str
    token: str | None = None
    timeout: float = 10.0

    @classmethod
    def from_settings(cls, section: Mapping[str, Any]) -> GatewayConfig:
        if not section.get("url"):
            raise DeliveryFailed("no SMS gateway URL configured")
        return cls(url=str(section["url"]), token=section.get("token"),
                   timeout=float(section["timeout"]))


def send(config: GatewayConfig, recipient: str, message: str,
         session: requests.Session | None = None) -> None:
    """POST one message to the gateway. Raises DeliveryFailed."""
    headers = {"Accept": "application/json"}
    if config.token:
        headers["Authorization"] = f"Bearer {config.token}"
    poster = session or requests
    try:
        response = poster.post(config.url, json={"to": recipient, "message": message},
                               headers=headers, timeout=config.timeout,
                               allow_redirects=False)
    except requests.Timeout:
        raise DeliveryFailed("SMS gateway timed out") from None
    except requests.ConnectionError:
        raise DeliveryFailed("SMS gateway unreachable") from None
    except requests.RequestException as exc:
        raise DeliveryFailed(f"SMS gateway request failed ({type(exc).__name__})") from None
    try:
        if not 200 <= response.status_code < 300:
            raise DeliveryFailed(f"SMS gateway answered HTTP {response.status_code}")
    finally:
        response.close()
