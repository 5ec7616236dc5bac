"""Start and stop the servers under test: ``idp serve`` on a prepared instance.

A *back end* is a database plus a store: ``sqlite`` (SQLite file + in-process store, one
worker) or ``postgres`` (PostgreSQL database ``bench`` + Redis db 12, two workers). The
benchmark never touches the shared ``test`` database or other Redis dbs.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
#: Scratch instances (config, SQLite file, logs); BENCH_SCRATCH=/dev/shm/… takes the disk out.
SCRATCH = Path(os.environ.get("BENCH_SCRATCH") or ROOT / "benchmarks" / "results" / "tmp")
PG_ADMIN_DSN = os.environ.get("BENCH_PG_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_DATABASE = os.environ.get("BENCH_PG_DATABASE", "bench")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
SECRET_KEY = "bench-secret-key-0123456789-abcdefghijklmnopq"


@dataclass(frozen=True)
class Backend:
    """Where the IdP keeps its data during a run."""

    name: str
    database_url: str
    redis_url: str | None
    workers: int
    #: The PostgreSQL database's name (its backends' command lines carry it).
    database: str | None = None

    @staticmethod
    def named(name: str, workdir: Path, workers: int | None = None,
              database: str | None = None, redis_url: str | None = None) -> Backend:
        """``sqlite`` or ``postgres``; ``workers`` defaults to 1 and 2 respectively;
        ``database``/``redis_url`` default to ours (``bench``, Redis db 12)."""
        if name == "sqlite":
            if workers and workers > 1:
                raise ValueError("the in-process store serves one worker only")
            return Backend("sqlite", f"sqlite:///{workdir}/idp.sqlite3", None, 1)
        if name == "postgres":
            database = database or PG_DATABASE
            host_dsn = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://",
                                                            "postgresql+psycopg://")
            return Backend("postgres", f"{host_dsn}/{database}", redis_url or REDIS_URL,
                           workers or 2, database)
        raise ValueError(f"unknown back end {name!r} (sqlite, postgres)")


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(workdir: Path, backend: Backend, port: int, threads: int) -> Path:
    """The instance's YAML configuration (production argon2 parameters: the defaults)."""
    config = {
        "issuer": f"http://127.0.0.1:{port}",
        "secret_key": SECRET_KEY,
        "instance_path": str(workdir / "instance"),
        "database_url": backend.database_url,
        "redis_url": backend.redis_url,
        "store_namespace": f"bench-{port}",
        "server": {"host": "127.0.0.1", "port": port, "workers": backend.workers,
                   "threads": threads},
    }
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config), "utf-8")
    return path


def reset_backend(backend: Backend) -> None:
    """An empty database and store for this back end (our own database and Redis db only)."""
    if backend.name != "postgres":
        return
    import psycopg
    import redis

    database = backend.database or PG_DATABASE
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                              (database,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{database}"')
    bench_dsn = PG_ADMIN_DSN.rsplit("/", 1)[0] + f"/{database}"
    with psycopg.connect(bench_dsn, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    client = redis.Redis.from_url(backend.redis_url or REDIS_URL)
    client.flushdb()
    client.close()


def prepare(backend_name: str, *, workdir: Path | None = None, port: int | None = None,
            workers: int | None = None, threads: int = 4, session_users: int = 40,
            totp_users: int = 600, database: str | None = None,
            redis_url: str | None = None) -> tuple[Backend, Path, dict[str, Any]]:
    """A fresh instance: scratch folder, config, empty back end, seeded (in a subprocess, so
    this process never loads the app). Returns the back end, config path and manifest."""
    port = port or free_port()
    workdir = workdir or SCRATCH / f"{backend_name}-{port}"
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    backend = Backend.named(backend_name, workdir, workers, database, redis_url)
    config = write_config(workdir, backend, port, threads)
    reset_backend(backend)
    manifest_path = workdir / "manifest.json"
    subprocess.run([sys.executable, "-m", "benchmarks.seed",  # noqa: S603 - our own command
                    str(config), str(manifest_path),
                    "--session-users", str(session_users), "--totp-users", str(totp_users)],
                   cwd=ROOT, env=clean_env({"IDP_CONFIG": str(config)}), check=True,
                   timeout=600)
    manifest = json.loads(manifest_path.read_text("utf-8"))
    manifest.update({"backend": backend.name, "workers": backend.workers, "threads": threads,
                     "database": backend.database,
                     "base_url": manifest["issuer"], "manifest_path": str(manifest_path)})
    manifest_path.write_text(json.dumps(manifest, indent=1), "utf-8")
    return backend, config, manifest


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment without anyone's IDP_* settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
    env.update(extra)
    return env


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> float:
    """Seconds until ``url`` answers 200; raises if the process exits or time runs out."""
    started = time.perf_counter()
    deadline = started + timeout
    while time.perf_counter() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before it was ready")
        with contextlib.suppress(OSError), \
                urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
            if response.status == 200:
                return time.perf_counter() - started
        time.sleep(0.02)
    raise RuntimeError(f"{url} not ready after {timeout} s")


@dataclass
class ServerProcess:
    """A server we started (and only we stop, by its pid)."""

    name: str
    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path
    ready_seconds: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (gunicorn stops its workers gracefully), SIGKILL after ``timeout``."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_idp(config: Path, manifest: dict[str, Any]) -> ServerProcess:
    """``idp serve`` (gunicorn, gthread) for a prepared instance; measures time to ready."""
    config = config.resolve()
    port = int(manifest["base_url"].rsplit(":", 1)[1])
    log_path = config.parent / "server.log"
    log = log_path.open("ab")
    command = [str(VENV_BIN / "idp"), "serve", "--host", "127.0.0.1", "--port", str(port),
               "--workers", str(manifest["workers"])]
    process = subprocess.Popen(command, cwd=config.parent,  # noqa: S603 - our own command
                               stdout=log, stderr=log,
                               env=clean_env({"IDP_CONFIG": str(config)}))
    log.close()
    server = ServerProcess("stepup-idp", process, manifest["base_url"], log_path)
    try:
        server.ready_seconds = wait_ready(
            manifest["base_url"] + "/.well-known/openid-configuration", process)
    except Exception:
        server.stop()
        raise
    server.info = {"backend": manifest["backend"], "workers": manifest["workers"],
                   "threads": manifest["threads"]}
    return server


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.server --backend sqlite --hold 600``: prepare, start, print the
    manifest path and pid, keep serving for ``--hold`` seconds (bounded), then stop."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--backend", default="sqlite", choices=["sqlite", "postgres"])
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--totp-users", type=int, default=2000)
    parser.add_argument("--hold", type=float, default=600.0, help="seconds to keep serving")
    args = parser.parse_args(argv)
    _, config, manifest = prepare(args.backend, port=args.port, workers=args.workers,
                                  threads=args.threads, totp_users=args.totp_users)
    with start_idp(config, manifest) as server:
        print(json.dumps({"manifest": manifest["manifest_path"], "pid": server.pid,
                          "url": server.base_url, "ready_s": round(server.ready_seconds, 3)}),
              flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            time.sleep(args.hold)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
