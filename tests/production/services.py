"""Throwaway PostgreSQL and Redis servers, and real ``idp serve`` processes, for the production
tests (scale-out, failures, metrics under gunicorn).

Never the machine's shared services: other suites use those at the same time, so these tests
start their own on free loopback ports, stop and restart them as the scenario needs, and remove
them at the end. PostgreSQL comes from Debian's binaries (``/usr/lib/postgresql/*/bin``); as
root, ``initdb`` and ``postgres`` run as the ``postgres`` OS user in a folder it owns.

Every wait is bounded; every process is started in its own process group and killed with it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
IDP_SCRIPT = Path(sys.executable).parent / "idp"
SECRET_KEY = "production-test-secret-0123456789-abcdefgh"
START_TIMEOUT = 30
STOP_TIMEOUT = 15


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    """Poll ``check`` until it is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    pytest.fail(f"{what} not within {timeout} s")


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def kill_group(proc: subprocess.Popen, grace: float = STOP_TIMEOUT) -> None:
    """SIGTERM the process group we started, then SIGKILL whatever is left of it."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(10)


def unavailable(reason: str) -> None:
    """A missing service binary: skipped on a developer's machine, a failure in CI."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (required in CI)")
    pytest.skip(reason)


# -- Redis -------------------------------------------------------------------------------------

@dataclass
class RedisServer:
    """``redis-server`` on a free port, keeping nothing on disk (a restart starts empty)."""

    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            unavailable("redis-server is not installed")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        wait_for(self.ping, START_TIMEOUT, f"redis-server on port {self.port}")
        return self

    def ping(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(port=self.port, socket_timeout=1,
                                    socket_connect_timeout=1).ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        """Like a crash: SIGKILL, nothing saved."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(STOP_TIMEOUT)
            self.proc = None
        wait_for(lambda: not port_open(self.port), STOP_TIMEOUT, "redis port closed")


# -- PostgreSQL --------------------------------------------------------------------------------

def postgres_bin_dir() -> Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                        key=lambda p: int(Path(p).parts[3]) if Path(p).parts[3].isdigit() else 0)
    if candidates:
        return Path(candidates[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@dataclass
class PostgresServer:
    """A PostgreSQL cluster in a temporary folder, listening on 127.0.0.1 only."""

    port: int = field(default_factory=free_port)
    root: Path | None = None
    bindir: Path | None = None
    owner: str | None = None

    @property
    def datadir(self) -> Path:
        assert self.root is not None
        return self.root / "data"

    def url(self, database: str = "idp") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / argv[0]), *argv[1:]] if self.bindir else list(argv)
        if self.owner:
            command = ["runuser", "-u", self.owner, "--", *command]
        proc = subprocess.run(command, cwd=self.root, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout, check=False)
        if proc.returncode != 0:
            pytest.fail(f"{' '.join(argv[:2])} failed ({proc.returncode}):\n{proc.stdout}\n"
                        f"{proc.stderr}\n{self.log_tail()}")
        return proc

    def log_tail(self) -> str:
        log = self.root / "postgres.log" if self.root else None
        return log.read_text(errors="replace")[-3000:] if log and log.exists() else ""

    def create(self) -> PostgresServer:
        self.bindir = postgres_bin_dir()
        if self.bindir is None:
            unavailable("PostgreSQL server binaries (initdb) are not installed")
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                unavailable("running as root without a 'postgres' OS user for initdb")
            if shutil.which("runuser") is None:
                unavailable("runuser is not available to run initdb as postgres")
            self.owner = "postgres"
        self.root = Path(tempfile.mkdtemp(prefix="idp-test-pg-"))
        if self.owner:
            record = pwd.getpwnam(self.owner)
            os.chown(self.root, record.pw_uid, record.pw_gid)
        self._run("initdb", "-D", str(self.datadir), "-U", "postgres", "-A", "trust",
                  "-E", "UTF8", "--no-sync", "--no-locale")
        return self

    def start(self) -> PostgresServer:
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                   "-c max_connections=200 -c shared_buffers=32MB")
        self._run("pg_ctl", "-D", str(self.datadir), "-l", str(self.root / "postgres.log"),
                  "-o", options, "-w", "-t", str(START_TIMEOUT), "start",
                  timeout=START_TIMEOUT + 10)
        wait_for(lambda: port_open(self.port), START_TIMEOUT, "PostgreSQL port open")
        return self

    def stop(self, mode: str = "fast") -> None:
        """``fast``: clean shutdown; ``immediate``: like a crash (recovery from WAL at start)."""
        self._run("pg_ctl", "-D", str(self.datadir), "-m", mode, "-w", "-t",
                  str(STOP_TIMEOUT), "stop", timeout=STOP_TIMEOUT + 10)
        wait_for(lambda: not port_open(self.port), STOP_TIMEOUT, "PostgreSQL port closed")

    def create_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres",
                             dbname="postgres", autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')

    def query(self, sql: str, *params: Any, database: str = "idp") -> list[tuple]:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres",
                             dbname=database, connect_timeout=5) as conn:
            return list(conn.execute(sql, params).fetchall())

    def destroy(self) -> None:
        if self.root is None:
            return
        if self.datadir.exists() and (self.datadir / "postmaster.pid").exists():
            with contextlib.suppress(Exception):
                self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None


# -- idp serve ---------------------------------------------------------------------------------

def idp_argv() -> list[str]:
    if IDP_SCRIPT.exists():
        return [str(IDP_SCRIPT)]
    return [sys.executable, "-c", "import sys; from idp.cli import main; sys.exit(main())"]


def idp_env(home: Path, database_url: str, redis_url: str | None, issuer: str,
            **extra: str) -> dict[str, str]:
    """A clean environment for the ``idp`` command: PATH, HOME, locale, IDP_* settings."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LC_ALL": "C.UTF-8",
        "LANG": "C.UTF-8",
        "IDP_INSTANCE_PATH": str(home / "instance"),
        "IDP_DATABASE_URL": database_url,
        "IDP_SECRET_KEY": SECRET_KEY,
        "IDP_ISSUER": issuer,
        "IDP_PASSWORD__TIME_COST": "1",
        "IDP_PASSWORD__MEMORY_COST": "8192",
    }
    if redis_url:
        env["IDP_REDIS_URL"] = redis_url
    if not IDP_SCRIPT.exists():
        env["PYTHONPATH"] = str(REPO)
    env.update(extra)
    return env


def run_idp(env: dict[str, str], *args: str, timeout: float = 120) -> str:
    """Run one ``idp`` command to completion; its output, or the test fails."""
    proc = subprocess.Popen([*idp_argv(), *args], cwd=env["HOME"], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc, grace=2)
        proc.communicate()
        pytest.fail(f"`idp {' '.join(args)}` did not finish within {timeout} s")
    assert proc.returncode == 0, f"`idp {' '.join(args)}` failed:\n{out}\n{err}"
    return out


@dataclass
class IdpServer:
    """``idp serve`` (gunicorn, several workers) on a free loopback port."""

    env: dict[str, str]
    workers: int = 2
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    log_path: Path | None = None
    #: PROMETHEUS_MULTIPROC_DIR: by default a folder of this server's inside the test's HOME
    #: (so a killed server leaves nothing elsewhere); None = the server makes its own.
    metrics_dir: Path | None = None
    own_metrics_dir: bool = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> IdpServer:
        home = Path(self.env["HOME"])
        self.log_path = home / f"serve-{self.port}.log"
        env = dict(self.env)
        if self.own_metrics_dir:
            self.metrics_dir = self.metrics_dir or home / f"metrics-{self.port}"
            env["PROMETHEUS_MULTIPROC_DIR"] = str(self.metrics_dir)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [*idp_argv(), "serve", "--host", "127.0.0.1", "--port", str(self.port),
                 "--workers", str(self.workers)],
                cwd=home, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True)
        wait_for(self._healthy, START_TIMEOUT, f"idp serve on port {self.port}")
        return self

    def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            pytest.fail(f"idp serve exited with {self.proc.returncode}:\n{self.log()}")
        try:
            return requests.get(self.url + "/healthz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:] if self.log_path and \
            self.log_path.exists() else ""

    def worker_pids(self) -> list[int]:
        """The gunicorn workers: children of the master process."""
        assert self.proc is not None
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return [int(pid) for pid in path.read_text().split()] if path.exists() else []

    def stop(self, graceful: bool = False) -> int | None:
        """Graceful: SIGTERM to the master only (as Kubernetes does), SIGKILL after
        ``STOP_TIMEOUT``; else SIGKILL at once (teardown). Returns the exit status."""
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        if graceful:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(STOP_TIMEOUT)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        return proc.returncode
