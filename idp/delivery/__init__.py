"""How codes reach people: a channel (``sms`` or ``email``) maps to a configured transport.

``console`` (the default) logs the message and keeps it in a per-recipient outbox in the store
for the demo and the tests. Transports raise :class:`DeliveryFailed` with a user-presentable
reason; callers let the user pick another factor.
"""

from __future__ import annotations

import json
import logging
import time

from idp.extensions import settings, store

logger = logging.getLogger("idp.delivery")
OUTBOX_PREFIX = "outbox:"
OUTBOX_TTL = 3600


class DeliveryFailed(RuntimeError):
    """The message could not be handed to the transport."""


def deliver(channel: str, recipient: str, message: str) -> None:
    transport = settings().get(f"delivery.{channel}")
    if transport == "console":
        console(channel, recipient, message)
        return
    raise DeliveryFailed(f"no transport configured for {channel}")


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
