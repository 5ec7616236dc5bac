"""Failure counting for guessable secrets, shared by all workers through the store.

NIST SP 800-63B-4 §3.2.2: at most ``limit`` consecutive failures per key before an
increasing delay (base * 2^(n - limit), capped); a success resets the key.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from idp.errors import TooManyRequests
from idp.store import Store

FAIL_PREFIX = "fail:"
LOCK_PREFIX = "lock:"


@dataclass(frozen=True)
class Limit:
    key: str
    limit: int
    window: int
    base_delay: int
    max_delay: int


class Throttle:
    def __init__(self, store: Store) -> None:
        self.store = store

    def check(self, *limits: Limit) -> None:
        """Raise TooManyRequests (with Retry-After) while any key is in its delay."""
        for limit in limits:
            left = self.store.ttl(LOCK_PREFIX + limit.key)
            if left:
                raise TooManyRequests("Too many failed attempts. Try again later.", left)

    def failed(self, *limits: Limit) -> None:
        for limit in limits:
            count = self.store.incr(FAIL_PREFIX + limit.key, limit.window)
            if count >= limit.limit:
                delay = min(limit.max_delay, limit.base_delay * 2 ** (count - limit.limit))
                self.store.put(LOCK_PREFIX + limit.key, {"until": int(time.time()) + delay},
                               max(1, delay))

    def succeeded(self, *limits: Limit) -> None:
        for limit in limits:
            self.store.delete(FAIL_PREFIX + limit.key, LOCK_PREFIX + limit.key)

    def failures(self, limit: Limit) -> int:
        return int(self.store.get(FAIL_PREFIX + limit.key) or 0)
