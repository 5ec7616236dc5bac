"""The browser-test servers' wrapper closes every response iterable before the server sends it
(see tests/helpers/buffered_wsgi.py for the Werkzeug behaviour it guards against)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.helpers.buffered_wsgi import buffered


class TrackedBody:
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.chunks)

    def close(self) -> None:
        self.closed = True


def test_the_body_is_read_whole_and_closed_before_the_server_sees_it() -> None:
    body = TrackedBody([b"con", b"sole.log(1)"])
    statuses: list[str] = []

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> TrackedBody:
        start_response("200 OK", [("Content-Type", "text/javascript")])
        return body

    result = buffered(app)({}, lambda status, headers, exc_info=None: statuses.append(status))

    assert body.closed
    assert result == [b"console.log(1)"]
    assert statuses == ["200 OK"]


def test_the_body_is_closed_even_when_reading_it_fails() -> None:
    class FailingBody(TrackedBody):
        def __iter__(self) -> Iterator[bytes]:
            raise OSError("disk gone")

    body = FailingBody([])

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> TrackedBody:
        return body

    with pytest.raises(OSError, match="disk gone"):
        buffered(app)({}, lambda *args: None)
    assert body.closed
