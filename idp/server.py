"""``idp serve``: gunicorn as a library, with the settings' workers, threads and timeouts.

Metrics are multi-process (DESIGN §8): the workers share ``PROMETHEUS_MULTIPROC_DIR`` — the
operator's folder when set (emptied of a previous run's files at start), else a temporary one
removed at exit — and the master marks each exiting worker dead for prometheus-client.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from typing import Any

import click
from gunicorn.app.base import BaseApplication
from gunicorn.workers.gthread import ThreadWorker

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


class BoundedThreadWorker(ThreadWorker):
    """gunicorn's threaded worker with a deadline per request.

    A worker thread reads the request (head and body) itself, so a client that trickles its
    bytes (slowloris) would hold a thread for as long as it likes. Here a request's head must
    arrive within ``HEAD_TIMEOUT`` seconds (at most ``server.timeout``) of a thread taking it,
    and the whole request gets ``server.timeout`` seconds to its answer; past either deadline
    a watchdog shuts the socket down, the blocked read returns, and the thread is free again.
    A buffering reverse proxy in front (see README, Deploying) is still the first line: this
    bounds what reaches the IdP directly.
    """

    WATCH_INTERVAL = 0.25
    HEAD_TIMEOUT = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadlines: dict[Any, float] = {}
        self._deadlines_lock = threading.Lock()

    def init_process(self) -> None:
        threading.Thread(target=self._watch, name="idp-request-deadlines", daemon=True).start()
        super().init_process()

    def _set_deadline(self, conn: Any, seconds: float) -> None:
        with self._deadlines_lock:
            self._deadlines[conn] = time.monotonic() + seconds

    def handle(self, conn: Any) -> Any:
        self._set_deadline(conn, min(self.HEAD_TIMEOUT, self.cfg.timeout))
        try:
            return super().handle(conn)
        finally:
            with self._deadlines_lock:
                self._deadlines.pop(conn, None)

    def handle_request(self, req: Any, conn: Any) -> Any:
        # The head is in: the body, the application and the answer get server.timeout.
        self._set_deadline(conn, self.cfg.timeout)
        return super().handle_request(req, conn)

    def _watch(self) -> None:
        while True:
            time.sleep(self.WATCH_INTERVAL)
            now = time.monotonic()
            with self._deadlines_lock:
                late = [conn for conn, deadline in self._deadlines.items() if deadline <= now]
                for conn in late:
                    self._deadlines.pop(conn, None)
            for conn in late:
                self.log.warning("request from %s exceeded %s s: connection closed",
                                 conn.client[0] if conn.client else "?", self.cfg.timeout)
                with contextlib.suppress(OSError):
                    conn.sock.shutdown(socket.SHUT_RDWR)


#: glibc's ``mallopt`` parameter number for the mmap threshold (malloc.h).
M_MMAP_THRESHOLD = -3
#: Allocations at least this large get their own mapping, returned to the system when freed.
MMAP_THRESHOLD_BYTES = 128 * 1024


def limit_malloc_retention(environ: Any = os.environ) -> bool:
    """Fix glibc's mmap threshold at 128 KiB in this process; True if it was set here.

    Each argon2id verification allocates 19 MiB (the configured memory cost). glibc serves
    large blocks with mmap but raises that threshold dynamically after the first such block is
    freed, so later hashes come from the per-thread arenas, which keep the memory: a worker
    grew from 70 MB to 157 MB in 60 s of sign-ins and SSO (benchmarks/README.md, candidate 9).
    A fixed threshold turns off the dynamic rise: the hash memory is unmapped when freed. An
    operator's ``MALLOC_MMAP_THRESHOLD_`` wins; elsewhere than glibc this does nothing.
    """
    if "MALLOC_MMAP_THRESHOLD_" in environ or not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - present in glibc only (not musl)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))


def _post_fork(server: Any, worker: Any) -> None:
    limit_malloc_retention()


def check_workers(workers: int, settings: Settings) -> None:
    """The in-process store lives in one process: refuse to run it under several workers."""
    if workers > 1 and not settings.redis_url:
        raise click.ClickException(
            f"{workers} workers need a shared store: set IDP_REDIS_URL (the in-process store "
            "works with one worker only)")


def prepare_metrics_dir(environ: Any = os.environ) -> tuple[str, bool]:
    """Point ``PROMETHEUS_MULTIPROC_DIR`` at a folder for this run's metric files.

    Returns the folder and whether it was created here (then it is removed at exit). Files of a
    previous run in an operator's folder (a restarted container keeps its volume) are deleted:
    their counters belong to processes that no longer exist.
    """
    from idp.metrics import MULTIPROC_ENV

    path = environ.get(MULTIPROC_ENV)
    if path:
        os.makedirs(path, exist_ok=True)
        for stale in glob.glob(os.path.join(path, "*.db")):
            with contextlib.suppress(FileNotFoundError):
                os.remove(stale)
        return path, False
    path = tempfile.mkdtemp(prefix="idp-metrics-")
    environ[MULTIPROC_ENV] = path
    return path, True


def _child_exit(server: Any, worker: Any) -> None:
    """A worker exited (or was killed): its live gauges go; its counters stay counted."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def run_gunicorn(host: str, port: int, workers: int, settings: Settings) -> None:
    check_workers(workers, settings)
    metrics_dir, created = prepare_metrics_dir()

    def on_exit(server: Any) -> None:
        if created:
            shutil.rmtree(metrics_dir, ignore_errors=True)

    _Gunicorn({
        "bind": f"{host}:{port}",
        "workers": workers,
        "threads": settings.server.threads,
        "worker_class": "idp.server.BoundedThreadWorker",
        "timeout": settings.server.timeout,
        "graceful_timeout": 10,
        "keepalive": 5,
        "limit_request_line": 8190,
        "limit_request_fields": 100,
        "accesslog": None,
        "limit_request_field_size": 8190,
        # Several servers may run side by side (replicas, tests): no shared control socket.
        "control_socket_disable": True,
        "post_fork": _post_fork,
        "child_exit": _child_exit,
        "on_exit": on_exit,
    }).run()
