"""A WSGI wrapper for the test servers that run real browsers against the app.

Werkzeug's development server does not call ``close()`` on the response iterable when the
client resets the connection while the body is being sent (a browser abandoning a script
download as it navigates away): reading the reset socket raises before ``close()`` is reached.
The file that ``send_file`` opened for a static asset is then only closed by the garbage
collector, which reports it as a ResourceWarning — an error under ``-W error``. Reading the
body in full and closing the iterable before the server writes a byte makes that impossible;
the app has no streaming responses, so nothing is lost.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def buffered(app: WSGIApp) -> WSGIApp:
    """``app`` with every response body read into memory and its iterable closed at once."""

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        body = app(environ, start_response)
        try:
            return [b"".join(body)]
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()

    return wsgi
