"""Ephemeral state (SSO sessions, interactions, challenges, counters, nonces) behind one interface.

``redis.RedisStore`` serves production; ``memory.MemoryStore`` is the embedded default and works
only inside one process. Values are JSON-serialisable; every key has a time to live.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol


class StoreUnavailable(RuntimeError):
    """The backing service cannot be reached; callers fail closed (HTTP 503)."""


class Store(Protocol):
    """The contract both stores honour (see ``tests/unit/store/test_contract.py``)."""

    #: False for the in-process store: it must not serve more than one worker process.
    shared: bool

    def get(self, key: str) -> Any | None:
        """The value under ``key``, or None when absent or expired."""

    def put(self, key: str, value: Any, ttl: int) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds, replacing any previous value."""

    def add(self, key: str, value: Any, ttl: int) -> bool:
        """Store only if ``key`` is absent; True when this call stored it (atomic)."""

    def pop(self, key: str) -> Any | None:
        """Remove and return the value (atomic: of two concurrent pops one gets None)."""

    def delete(self, *keys: str) -> None:
        """Remove the keys if present."""

    def incr(self, key: str, ttl: int) -> int:
        """Add one to a counter and return it; a new counter lives ``ttl`` seconds."""

    def decr(self, key: str) -> None:
        """Take one back from a live, positive counter (atomic); never creates the key nor
        changes its expiry. Refunds an :meth:`incr` made in advance."""

    def ttl(self, key: str) -> int | None:
        """Seconds left for ``key``, or None when absent."""

    def ttls(self, *keys: str) -> list[int | None]:
        """:meth:`ttl` of each key, in one round trip."""

    def incr_each(self, keys: Sequence[str], ttl: Sequence[int]) -> list[int]:
        """:meth:`incr` of each key (``ttl[i]`` for a new ``keys[i]``), in one round trip;
        each increment is atomic on its own."""

    def ping(self) -> None:
        """Raise :class:`StoreUnavailable` when the backing service is down."""


def create_store(url: str | None, namespace: str) -> Store:
    """A Redis store for a ``redis://``/``rediss://`` URL, else the in-process store."""
    if url:
        from idp.store.redis import RedisStore

        return RedisStore(url, namespace)
    from idp.store.memory import MemoryStore

    return MemoryStore()
