"""The HTTP server's own cost: server CPU per request for a WSGI app that does nothing.

``python -m benchmarks.http_floor [--servers …] [--concurrency 8] [--duration 6]``

The same trivial application (a fixed 11-byte JSON answer) under each WSGI server with the
worker model ``idp serve`` uses (2 workers x 4 threads), driven closed loop over keep-alive
connections by aiohttp; the server's process tree is sampled with psutil as in
:mod:`benchmarks.cpu`. What it isolates is the per-request floor below the application:
HTTP parsing, WSGI environ, response writing, the worker's threading — the part of every
stepup-idp request that Flask and the IdP never see (benchmarks/README.md, session 6).

Servers: ``gunicorn-gthread`` (plain), ``gunicorn-bounded`` (``idp.server.BoundedThreadWorker``,
what ``idp serve`` runs), ``gunicorn-sync``; ``granian`` and ``uwsgi`` (pyuwsgi) when their
executables are installed in this environment (not dependencies of the project: ``pip install
granian pyuwsgi`` to include them), skipped otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from benchmarks.cpu import ProcessTree
from benchmarks.results import conditions
from benchmarks.server import ROOT, VENV_BIN, ServerProcess, free_port, wait_ready

BODY = b'{"ok":true}'
WORKERS = 2
THREADS = 4
RESULTS = ROOT / "benchmarks" / "results"


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """The application under every server: no work at all."""
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(BODY)))])
    return [BODY]


def _gunicorn(worker_class: str) -> Callable[[int], list[str]]:
    def command(port: int) -> list[str]:
        return [str(VENV_BIN / "gunicorn"), "--workers", str(WORKERS), "--threads",
                str(THREADS), "--worker-class", worker_class, "--bind", f"127.0.0.1:{port}",
                "--keep-alive", "5", "benchmarks.http_floor:app"]
    return command


def _granian(port: int) -> list[str]:
    return [str(VENV_BIN / "granian"), "--interface", "wsgi", "--workers", str(WORKERS),
            "--blocking-threads", str(THREADS), "--http", "1", "--host", "127.0.0.1",
            "--port", str(port), "benchmarks.http_floor:app"]


def _uwsgi(port: int) -> list[str]:
    return [str(VENV_BIN / "uwsgi"), "--http-socket", f"127.0.0.1:{port}", "--master",
            "--processes", str(WORKERS), "--threads", str(THREADS), "--module",
            "benchmarks.http_floor:app", "--disable-logging", "--http-keepalive",
            "--add-header", "Connection: Keep-Alive", "--die-on-term"]


#: name → (executable that must exist, command for a port).
SERVERS: dict[str, tuple[str, Callable[[int], list[str]]]] = {
    "gunicorn-gthread": ("gunicorn", _gunicorn("gthread")),
    "gunicorn-bounded": ("gunicorn", _gunicorn("idp.server.BoundedThreadWorker")),
    "gunicorn-sync": ("gunicorn", _gunicorn("sync")),
    "granian": ("granian", _granian),
    "uwsgi": ("uwsgi", _uwsgi),
}


async def _drive(url: str, tree: ProcessTree, concurrency: int, duration: float,
                 warmup: float) -> dict[str, float]:
    import aiohttp

    done = 0
    stopping = False
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def user() -> None:
            nonlocal done
            while not stopping:
                async with session.get(url) as response:
                    if await response.read() != BODY:
                        raise RuntimeError(f"unexpected answer {response.status}")
                    done += 1

        users = [asyncio.create_task(user()) for _ in range(concurrency)]
        await asyncio.sleep(warmup)
        tree.start()
        first, started = done, time.perf_counter()
        await asyncio.sleep(duration)
        cpu, requests, elapsed = tree.read(), done - first, time.perf_counter() - started
        stopping = True
        await asyncio.gather(*users)
    return {"requests_per_s": requests / elapsed,
            "server_cpu_ms_per_request": cpu * 1000 / max(requests, 1)}


def measure(name: str, concurrency: int, duration: float, warmup: float) -> dict[str, Any]:
    """One server: start, drive, stop; its figures (or why it was skipped)."""
    executable, command = SERVERS[name]
    if not (VENV_BIN / executable).exists():
        return {"server": name, "skipped": f"{executable} is not installed in {VENV_BIN}"}
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(command(port), cwd=ROOT, env=env,  # noqa: S603 - our commands
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    with ServerProcess(name, process, url, Path(os.devnull)):
        wait_ready(url, process, timeout=20.0)
        figures = asyncio.run(_drive(url, ProcessTree(name, process.pid), concurrency,
                                     duration, warmup))
    return {"server": name, "concurrency": concurrency, **figures}


def markdown(records: list[dict[str, Any]], machine: dict[str, Any]) -> str:
    lines = ["## HTTP server floor: a WSGI app that does nothing", "",
             f"{WORKERS} workers x {THREADS} threads, keep-alive, closed loop; "
             f"commit {machine['git']}, load average at start {machine['loadavg_start']}.", "",
             "| server | c | requests/s | server CPU ms/request |", "|---|---|---|---|"]
    for record in records:
        if "skipped" in record:
            lines.append(f"| {record['server']} | - | skipped: {record['skipped']} | - |")
        else:
            lines.append(f"| {record['server']} | {record['concurrency']} | "
                         f"{record['requests_per_s']:.0f} | "
                         f"{record['server_cpu_ms_per_request']:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", default=",".join(SERVERS),
                        help=f"comma-separated, of: {', '.join(SERVERS)}")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--duration", type=float, default=6.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds")
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.servers.split(",") if name.strip()]
    unknown = set(names) - set(SERVERS)
    if unknown:
        parser.error(f"unknown servers: {', '.join(sorted(unknown))}")
    machine = conditions()
    records = []
    for _ in range(args.rounds):
        for name in names:
            record = measure(name, args.concurrency, args.duration, args.warmup)
            records.append(record)
            print(record, flush=True)
    report = markdown(records, machine)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{time.strftime('%Y%m%d-%H%M%S')}-http-floor.md"
    path.write_text(report)
    print(report + f"\nwritten: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
