"""Redis store for production: shared by every worker and replica."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import redis

from idp.store import StoreUnavailable

# Bounded timeouts: a stalled Redis must turn into a quick 503, never a hung worker.
SOCKET_TIMEOUT_SECONDS = 2.0
CONNECT_TIMEOUT_SECONDS = 2.0

# INCR, and set the expiry only when the counter is new (one round trip, atomic).
_INCR_WITH_TTL = """
local value = redis.call('INCR', KEYS[1])
if value == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return value
"""

# DECR only a live, positive counter: a refund never creates a key or drops below zero.
_DECR_IF_POSITIVE = """
local value = tonumber(redis.call('GET', KEYS[1]))
if value and value > 0 then redis.call('DECR', KEYS[1]) end
return 0
"""


class RedisStore:
    """Keys live under ``<namespace>:``; values are JSON text."""

    shared = True

    def __init__(self, url: str, namespace: str) -> None:
        self._prefix = f"{namespace}:"
        self._redis = redis.Redis.from_url(
            url,
            socket_timeout=SOCKET_TIMEOUT_SECONDS,
            socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
            health_check_interval=30,
        )
        self._incr = self._redis.register_script(_INCR_WITH_TTL)
        self._decr = self._redis.register_script(_DECR_IF_POSITIVE)

    def _k(self, key: str) -> str:
        return self._prefix + key

    def _call(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except redis.RedisError as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc

    @staticmethod
    def _load(raw: bytes | None) -> Any | None:
        return None if raw is None else json.loads(raw)

    def get(self, key: str) -> Any | None:
        return self._load(self._call(self._redis.get, self._k(key)))

    def put(self, key: str, value: Any, ttl: int) -> None:
        self._call(lambda: self._redis.set(self._k(key), json.dumps(value), ex=ttl))

    def add(self, key: str, value: Any, ttl: int) -> bool:
        return bool(
            self._call(lambda: self._redis.set(self._k(key), json.dumps(value), ex=ttl, nx=True))
        )

    def pop(self, key: str) -> Any | None:
        return self._load(self._call(self._redis.getdel, self._k(key)))

    def delete(self, *keys: str) -> None:
        if keys:
            self._call(self._redis.delete, *[self._k(k) for k in keys])

    def incr(self, key: str, ttl: int) -> int:
        return int(self._call(lambda: self._incr(keys=[self._k(key)], args=[ttl])))

    def decr(self, key: str) -> None:
        self._call(lambda: self._decr(keys=[self._k(key)]))

    def ttl(self, key: str) -> int | None:
        left = self._call(self._redis.ttl, self._k(key))
        return None if left is None or left < 0 else int(left)

    def ttls(self, *keys: str) -> list[int | None]:
        def run() -> list[Any]:
            pipe = self._redis.pipeline(transaction=False)
            for key in keys:
                pipe.ttl(self._k(key))
            return list(pipe.execute())
        return [None if left is None or left < 0 else int(left) for left in self._call(run)]

    def incr_each(self, keys: Sequence[str], ttl: Sequence[int]) -> list[int]:
        def run() -> list[Any]:
            pipe = self._redis.pipeline(transaction=False)
            for key, seconds in zip(keys, ttl, strict=True):
                self._incr(keys=[self._k(key)], args=[seconds], client=pipe)
            return list(pipe.execute())
        return [int(value) for value in self._call(run)]

    def ping(self) -> None:
        self._call(self._redis.ping)

    def flush_namespace(self) -> None:
        """Delete every key of this namespace (tests and `idp` maintenance only)."""
        cursor = 0
        while True:
            cursor, keys = self._call(
                lambda c=cursor: self._redis.scan(c, match=self._prefix + "*", count=500)
            )
            if keys:
                self._call(self._redis.delete, *keys)
            if cursor == 0:
                return
