"""How codes reach people: a channel (``sms`` or ``email``) maps to a configured transport.

``console`` (the default) logs the message and keeps it in a per-recipient outbox in the store
for the demo and the tests; it is the one place a code is ever logged, because logging it *is*
the delivery (development only). ``smtp`` (:mod:`idp.delivery.smtp`) sends email and ``http``
(:mod:`idp.delivery.http_sms`) posts SMS to a gateway. Transports raise :class:`DeliveryFailed`
with a reason fit for logs (never the message); callers let the user pick another factor.
"""

from __future__ import annotations

import json
import logging
import time
from urllib.parse import urlsplit

from idp.extensions import settings, store

logger = logging.getLogger("idp.delivery")
OUTBOX_PREFIX = "outbox:"
OUTBOX_TTL = 3600


class DeliveryFailed(RuntimeError):
    """The message could not be handed to the transport."""


def deliver(channel: str, recipient: str, message: str) -> None:
    """Send ``message`` to ``recipient`` over the transport configured for ``channel``
    (``delivery.sms`` / ``delivery.email``). Raises DeliveryFailed, logged without the
    message or the full recipient."""
    cfg = settings()
    transport = cfg.get(f"delivery.{channel}")
    try:
        if transport == "console":
            console(channel, recipient, message)
        elif channel == "email" and transport == "smtp":
            from idp.delivery import smtp

            sender = f"no-reply@{urlsplit(cfg.issuer).hostname or 'localhost'}"
            smtp.send(smtp.SmtpConfig.from_settings(cfg.get("delivery.smtp"), sender),
                      recipient, f"{cfg.branding.product_name} verification code", message)
        elif channel == "sms" and transport == "http":
            from idp.delivery import http_sms

            http_sms.send(http_sms.GatewayConfig.from_settings(cfg.get("delivery.sms_gateway")),
                          recipient, message)
        else:
            raise DeliveryFailed(f"no transport configured for {channel}")
    except DeliveryFailed as exc:
        logger.warning(json.dumps({"event": "delivery.failed", "channel": channel,
                                   "transport": transport, "to": mask(recipient),
                                   "reason": str(exc)}))
        raise


def mask(recipient: str) -> str:
    """A recipient as shown to users and in logs: ``+49•••••••••78``, ``a•••@example.org``."""
    local, at, domain = recipient.partition("@")
    if at:
        return f"{local[:1]}•••@{domain}"
    return f"{recipient[:3]}{'•' * max(0, len(recipient) - 5)}{recipient[-2:]}"


def console(channel: str, recipient: str, message: str) -> None:
    key = OUTBOX_PREFIX + recipient
    box = store.current.get(key) or []
    box.append({"channel": channel, "to": recipient, "message": message, "at": int(time.time())})
    store.current.put(key, box[-settings().delivery.outbox_size:], OUTBOX_TTL)
    logger.info(json.dumps({"event": "delivery.console", "channel": channel, "to": recipient,
                            "message": message}))


def outbox(recipient: str) -> list[dict]:
    """Messages the console transport kept for ``recipient`` (newest last)."""
    return store.current.get(OUTBOX_PREFIX + recipient) or []
