"""Request body limit for bodies without a Content-Length (chunked transfer encoding).

Flask refuses an announced body over ``MAX_CONTENT_LENGTH`` (``server.max_request_bytes``)
before reading it. A chunked body announces nothing, and a server that sets
``wsgi.input_terminated`` (gunicorn does) hands it over unbounded: this middleware caps it at
the same limit, so a longer body raises 413 (RequestEntityTooLarge) instead of being buffered
whole, or cut silently at the limit by Werkzeug's own cap.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from werkzeug.exceptions import RequestEntityTooLarge

CHUNK = 65536


class CappedInput:
    """A ``wsgi.input`` that raises RequestEntityTooLarge once more than ``limit`` bytes come."""

    def __init__(self, stream: Any, limit: int) -> None:
        self._stream = stream
        self._left = limit

    def _take(self, data: bytes) -> bytes:
        self._left -= len(data)
        # At the limit, look one byte ahead: Werkzeug reads at most the limit and would
        # otherwise cut the body there silently.
        if self._left < 0 or (self._left == 0 and data and self._stream.read(1)):
            raise RequestEntityTooLarge()
        return data

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            parts = []
            while chunk := self._take(self._stream.read(min(CHUNK, self._left + 1))):
                parts.append(chunk)
            return b"".join(parts)
        return self._take(self._stream.read(min(size, self._left + 1)))

    def readline(self, size: int | None = -1) -> bytes:
        cap = self._left + 1 if size is None or size < 0 else min(size, self._left + 1)
        return self._take(self._stream.readline(cap))

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line


class BodyLimit:
    """WSGI middleware: cap bodies without Content-Length at ``limit`` bytes."""

    def __init__(self, app: Callable[..., Iterable[bytes]], limit: int) -> None:
        self.app = app
        self.limit = limit

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        if not environ.get("CONTENT_LENGTH") and environ.get("wsgi.input_terminated"):
            environ["wsgi.input"] = CappedInput(environ["wsgi.input"], self.limit)
        return self.app(environ, start_response)
