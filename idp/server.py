"""``idp serve``: gunicorn as a library, with the settings' workers, threads and timeouts."""

from __future__ import annotations

from typing import Any

import click
from gunicorn.app.base import BaseApplication

from idp.config import Settings


class _Gunicorn(BaseApplication):
    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        # Each worker builds its own app (no database connections shared across forks).
        from idp import create_app

        return create_app()


def check_workers(workers: int, settings: Settings) -> None:
    """The in-process store lives in one process: refuse to run it under several workers."""
    if workers > 1 and not settings.redis_url:
        raise click.ClickException(
            f"{workers} workers need a shared store: set IDP_REDIS_URL (the in-process store "
            "works with one worker only)")


def run_gunicorn(host: str, port: int, workers: int, settings: Settings) -> None:
    check_workers(workers, settings)
    _Gunicorn({
        "bind": f"{host}:{port}",
        "workers": workers,
        "threads": settings.server.threads,
        "worker_class": "gthread",
        "timeout": settings.server.timeout,
        "graceful_timeout": 10,
        "keepalive": 5,
        "limit_request_line": 8190,
        "limit_request_fields": 100,
        "accesslog": None,
        # Several servers may run side by side (replicas, tests): no shared control socket.
        "control_socket_disable": True,
    }).run()
