"""In-process store: the embedded default. One process only (``idp serve`` enforces it)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any


class MemoryStore:
    """A dict with expiry, guarded by a lock. Values are kept as JSON text, like a real store:
    only what a shared store accepts goes in, and every reader gets its own copy (parsing the
    text is several times cheaper than a deep copy of the parsed value)."""

    shared = False

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._items: dict[str, tuple[Any, float]] = {}
        self._lock = threading.Lock()
        self._writes = 0

    def _live(self, key: str) -> Any | None:
        item = self._items.get(key)
        if item is None:
            return None
        if item[1] <= self._clock():
            del self._items[key]
            return None
        return item

    def _sweep(self) -> None:
        # Occasional sweep so expired keys do not accumulate in a long-running process.
        self._writes += 1
        if self._writes % 1024:
            return
        now = self._clock()
        for key in [k for k, (_, exp) in self._items.items() if exp <= now]:
            del self._items[key]

    @staticmethod
    def _freeze(value: Any) -> str:
        return json.dumps(value)

    @staticmethod
    def _thaw(item: tuple[Any, float]) -> Any:
        # Counters (incr/decr) are kept as ints, everything else as JSON text.
        value = item[0]
        return json.loads(value) if isinstance(value, str) else value

    def get(self, key: str) -> Any | None:
        with self._lock:
            item = self._live(key)
        return self._thaw(item) if item else None

    def put(self, key: str, value: Any, ttl: int) -> None:
        frozen = self._freeze(value)
        with self._lock:
            self._sweep()
            self._items[key] = (frozen, self._clock() + ttl)

    def add(self, key: str, value: Any, ttl: int) -> bool:
        frozen = self._freeze(value)
        with self._lock:
            if self._live(key):
                return False
            self._sweep()
            self._items[key] = (frozen, self._clock() + ttl)
            return True

    def pop(self, key: str) -> Any | None:
        with self._lock:
            item = self._live(key)
            if item is None:
                return None
            del self._items[key]
        return self._thaw(item)

    def delete(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._items.pop(key, None)

    def incr(self, key: str, ttl: int) -> int:
        with self._lock:
            item = self._live(key)
            if item is None:
                self._sweep()
                self._items[key] = (1, self._clock() + ttl)
                return 1
            value = int(item[0]) + 1
            self._items[key] = (value, item[1])
            return value

    def decr(self, key: str) -> None:
        with self._lock:
            item = self._live(key)
            if item is not None and int(item[0]) > 0:
                self._items[key] = (int(item[0]) - 1, item[1])

    def ttl(self, key: str) -> int | None:
        with self._lock:
            item = self._live(key)
            return None if item is None else max(0, int(item[1] - self._clock() + 0.999))

    def ttls(self, *keys: str) -> list[int | None]:
        return [self.ttl(key) for key in keys]

    def incr_each(self, keys: Sequence[str], ttl: Sequence[int]) -> list[int]:
        return [self.incr(key, seconds) for key, seconds in zip(keys, ttl, strict=True)]

    def ping(self) -> None:
        return None
