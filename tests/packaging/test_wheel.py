"""The wheel is complete: built from a copy of the source, installed into a clean virtualenv
and run from outside the source tree, it migrates the database, renders templates and serves
its static files.

One build and one virtualenv per session. The build runs with isolation (the project needs
setuptools>=69, newer than the one in the development virtualenv) and pip installs the wheel's
dependencies from the package index, so this needs the network.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SECRET_KEY = "wheel-test-secret-0123456789-abcdefghijk"
BUILD_TIMEOUT = 300
INSTALL_TIMEOUT = 400
COMMAND_TIMEOUT = 60
SERVE_WAIT = 20
REQUIRED = [
    "idp/__init__.py",
    "idp/cli.py",
    "idp/templates/login.html",
    "idp/templates/base.html",
    "idp/templates/home.html",
    "idp/config/default.yaml",
    "idp/migrations/env.py",
    "idp/migrations/script.py.mako",
    "idp/static/idp.css",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(argv: list[str], *, cwd: Path, env: dict[str, str], timeout: float,
        ) -> subprocess.CompletedProcess[str]:
    """Run to completion in its own process group; kill the whole group on timeout."""
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"{argv} did not finish within {timeout} s")
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def tool_env(home: Path) -> dict[str, str]:
    """The caller's environment (index configuration, proxies) minus anything that would make
    the source tree or the development virtualenv importable."""
    env = {k: v for k, v in os.environ.items()
           if k not in {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "PYTHONSTARTUP"}
           and not k.startswith("IDP_")}
    env["HOME"] = env.get("HOME", str(home))
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def copy_source(dest: Path) -> Path:
    """What the build needs: the top-level files (pyproject, readme, licence...) and idp/.
    Building in a copy keeps build/ and *.egg-info out of the working tree."""
    dest.mkdir()
    for entry in REPO.iterdir():
        if entry.is_file():
            shutil.copy2(entry, dest / entry.name)
    shutil.copytree(REPO / "idp", dest / "idp",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


def source_package_files() -> set[str]:
    return {path.relative_to(REPO).as_posix() for path in (REPO / "idp").rglob("*")
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"}


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    workdir: Path

    @property
    def idp(self) -> Path:
        return self.venv / "bin" / "idp"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            "PATH": f"{self.venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": str(self.workdir),  # gunicorn keeps a control socket under $HOME
            "LC_ALL": "C.UTF-8",
            "LANG": "C.UTF-8",
            "IDP_INSTANCE_PATH": str(self.workdir / "instance"),
            "IDP_DATABASE_URL": "sqlite:///idp.sqlite3",
            "IDP_SECRET_KEY": SECRET_KEY,
        }
        env.update(extra)
        return env


@pytest.fixture(scope="session")
def wheel_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("wheel-build")
    source = copy_source(base / "src")
    outdir = base / "dist"
    result = run([sys.executable, "-m", "build", "--wheel", "--outdir", str(outdir),
                  str(source)], cwd=base, env=tool_env(base), timeout=BUILD_TIMEOUT)
    assert result.returncode == 0, f"build failed:\n{result.stdout}\n{result.stderr}"
    [wheel] = outdir.glob("stepup_idp-*.whl")
    return wheel


@pytest.fixture(scope="session")
def installed(wheel_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    base = tmp_path_factory.mktemp("wheel-venv")
    target = base / "venv"
    created = run([sys.executable, "-m", "venv", str(target)], cwd=base, env=tool_env(base),
                  timeout=COMMAND_TIMEOUT)
    assert created.returncode == 0, created.stderr
    result = run([str(target / "bin" / "python"), "-m", "pip", "install", "--quiet",
                  str(wheel_file)], cwd=base, env=tool_env(base), timeout=INSTALL_TIMEOUT)
    assert result.returncode == 0, f"pip install failed:\n{result.stdout}\n{result.stderr}"
    workdir = base / "work"  # not the repository: the source tree is not importable from here
    workdir.mkdir()
    return Installed(wheel_file, target, workdir)


def test_wheel_contains_package_data(wheel_file: Path) -> None:
    with zipfile.ZipFile(wheel_file) as archive:
        names = set(archive.namelist())
        metadata_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = archive.read(metadata_name).decode()
        entry_points = archive.read(
            metadata_name.replace("METADATA", "entry_points.txt")).decode()
    missing = [name for name in REQUIRED if name not in names]
    assert missing == []
    versions = {n for n in names if n.startswith("idp/migrations/versions/")
                and n.endswith(".py")}
    assert versions
    source_versions = {p for p in source_package_files()
                       if p.startswith("idp/migrations/versions/") and p.endswith(".py")}
    assert versions == source_versions
    # Everything under idp/ in the source tree ships (templates, static, config, migrations).
    assert sorted(source_package_files() - names) == []
    assert not any(n.startswith(("tests/", "examples/")) for n in names)
    assert "Name: stepup-idp" in metadata
    assert "idp = idp.cli:main" in entry_points


def test_installed_package_is_the_wheel_not_the_source(installed: Installed) -> None:
    result = run([str(installed.python), "-c", "import idp; print(idp.__file__)"],
                 cwd=installed.workdir, env=installed.env(), timeout=COMMAND_TIMEOUT)
    assert result.returncode == 0, result.stderr
    location = Path(result.stdout.strip()).resolve()
    assert location.is_relative_to(installed.venv.resolve())
    assert not location.is_relative_to(REPO)


@contextlib.contextmanager
def serving(installed: Installed, port: int, log: Path) -> Iterator[subprocess.Popen]:
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(installed.idp), "serve", "--port", str(port), "--workers", "1"],
            cwd=installed.workdir, env=installed.env(IDP_ISSUER=f"http://127.0.0.1:{port}"),
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(15)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def test_installed_idp_initialises_and_serves(installed: Installed) -> None:
    init = run([str(installed.idp), "init"], cwd=installed.workdir, env=installed.env(),
               timeout=COMMAND_TIMEOUT)
    assert init.returncode == 0, init.stderr
    assert "database ready; 4 new signing key(s)" in init.stdout
    assert (installed.workdir / "instance" / "idp.sqlite3").is_file()

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = installed.workdir / f"serve-{port}.log"
    http = requests.Session()
    http.trust_env = False
    with contextlib.closing(http), serving(installed, port, log) as proc:
        deadline = time.monotonic() + SERVE_WAIT
        discovery = None
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"idp serve exited with {proc.returncode}:\n{log.read_text()}")
            with contextlib.suppress(requests.ConnectionError):
                response = http.get(f"{base}/.well-known/openid-configuration", timeout=2)
                if response.status_code == 200:
                    discovery = response
                    break
            time.sleep(0.2)
        assert discovery is not None, f"no discovery within {SERVE_WAIT} s:\n{log.read_text()}"
        assert discovery.json()["issuer"] == base

        home = http.get(f"{base}/", timeout=5)  # a template-rendered page
        assert home.status_code == 200
        assert home.headers["Content-Type"].startswith("text/html")
        assert "StepUp IdP" in home.text
        assert "/static/idp.css" in home.text
        assert "/.well-known/openid-configuration" in home.text

        css = http.get(f"{base}/static/idp.css", timeout=5)
        assert css.status_code == 200
        assert css.headers["Content-Type"].startswith("text/css")
        assert css.content == (REPO / "idp" / "static" / "idp.css").read_bytes()
    assert proc.returncode is not None
    assert "Traceback" not in log.read_text()
