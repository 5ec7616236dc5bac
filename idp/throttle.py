"""Failure counting for guessable secrets, shared by all workers through the store.

NIST SP 800-63B-4 §3.2.2: at most ``limit`` consecutive failures per key before an
increasing delay (base * 2^(n - limit), capped); a success resets the key.

The decision is atomic under concurrency: :meth:`Throttle.begin` counts the attempt as a
failure *before* the secret is evaluated (increment-then-compare in the store), and the attempt
that reaches the limit takes the delay lock at once (``add``: one winner). So N racing guesses
can never get more than ``limit`` evaluations past the check; a success refunds its count.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from idp.errors import TooManyRequests
from idp.store import Store

FAIL_PREFIX = "fail:"
LOCK_PREFIX = "lock:"
LOCKED_MESSAGE = "Too many failed attempts. Try again later."


@dataclass(frozen=True)
class Limit:
    key: str
    limit: int
    window: int
    base_delay: int
    max_delay: int

    def delay(self, count: int) -> int:
        return min(self.max_delay, self.base_delay * 2 ** (count - self.limit))


@dataclass
class Attempt:
    """One reserved evaluation: already counted as a failure (and holding any delay lock it
    took) unless :meth:`succeeded` is called, so a wrong secret needs no further call."""

    store: Store
    counts: dict[Limit, int]
    locked: list[Limit] = field(default_factory=list)  # delay locks this attempt took

    def failures_before(self, limit: Limit) -> int:
        """Consecutive failures on ``limit`` before this attempt."""
        return self.counts[limit] - 1

    def succeeded(self, *reset: Limit) -> None:
        """The secret was right: ``reset`` keys start again; the others get this attempt's
        count back (a success is not a failure) and lose the lock it took."""
        for limit in self.counts:
            if limit in reset:
                self.store.delete(FAIL_PREFIX + limit.key, LOCK_PREFIX + limit.key)
            else:
                self._refund(limit)

    def withdraw(self) -> None:
        """The secret was never evaluated: take the attempt back on every key."""
        for limit in self.counts:
            self._refund(limit)

    def _refund(self, limit: Limit) -> None:
        self.store.decr(FAIL_PREFIX + limit.key)
        if limit in self.locked:
            self.store.delete(LOCK_PREFIX + limit.key)


class Throttle:
    def __init__(self, store: Store) -> None:
        self.store = store

    def check(self, *limits: Limit) -> None:
        """Raise TooManyRequests (with Retry-After) while any key is in its delay (a peek,
        for pages that only lead to an attempt; evaluations go through :meth:`begin`)."""
        for left in self.store.ttls(*(LOCK_PREFIX + limit.key for limit in limits)):
            if left:
                raise TooManyRequests(LOCKED_MESSAGE, left)

    def begin(self, *limits: Limit) -> Attempt:
        """Reserve one evaluation of a secret, or raise TooManyRequests.

        The attempt is counted first; the one whose count reaches a limit must also win that
        key's delay lock, so it alone is evaluated and everyone after it waits the delay.
        """
        self.check(*limits)
        counts = self.store.incr_each([FAIL_PREFIX + limit.key for limit in limits],
                                      [limit.window for limit in limits])
        attempt = Attempt(self.store, dict(zip(limits, counts, strict=True)))
        for limit, count in attempt.counts.items():
            if count < limit.limit:
                continue
            delay = max(1, limit.delay(count))
            if not self.store.add(LOCK_PREFIX + limit.key, {"until": int(time.time()) + delay},
                                  delay):
                attempt.withdraw()  # lost the race: not evaluated, no failure, no lock of ours
                raise TooManyRequests(LOCKED_MESSAGE,
                                      self.store.ttl(LOCK_PREFIX + limit.key) or 1)
            attempt.locked.append(limit)
        return attempt

    def failures(self, limit: Limit) -> int:
        return int(self.store.get(FAIL_PREFIX + limit.key) or 0)
