"""Install the example factor plugin (``examples/hotp_factor``) into the running interpreter.

Once per session, and only when needed: if ``stepup-idp-hotp`` is already installed editable
from this checkout with the entry points its ``pyproject.toml`` declares (``make install`` can
do that), nothing runs. Else ``pip install --no-deps -e`` (its only dependency is the IdP under
test): offline with ``--no-build-isolation`` when the virtualenv's setuptools can build a wheel
by itself (setuptools >= 70.1, or ``wheel`` installed), else — or if that fails — with build
isolation, which fetches setuptools from the package index (a few seconds). A file lock in the
virtualenv keeps concurrent test sessions from installing at once.

A ``.pth`` file is read only at interpreter start, so after a fresh install this process puts
the plugin's source directory on ``sys.path`` itself; later sessions import it normally.
"""

from __future__ import annotations

import fcntl
import importlib
import importlib.util
import json
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from types import ModuleType

import pytest
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
PLUGIN_DIR = REPO / "examples" / "hotp_factor"
PLUGIN_SRC = PLUGIN_DIR / "src"
DISTRIBUTION = "stepup-idp-hotp"
GROUP = "idp.factors"


def declared_entry_points() -> dict[str, str]:
    project = tomllib.loads((PLUGIN_DIR / "pyproject.toml").read_text("utf-8"))["project"]
    return dict(project["entry-points"][GROUP])


def installed_from_this_checkout() -> bool:
    """Installed editable from ``PLUGIN_DIR``, with the entry points declared today."""
    try:
        dist = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return False
    direct_url = json.loads(dist.read_text("direct_url.json") or "{}")
    if not direct_url.get("dir_info", {}).get("editable") \
            or direct_url.get("url") != PLUGIN_DIR.as_uri():
        return False
    installed = {ep.name: ep.value for ep in dist.entry_points if ep.group == GROUP}
    return installed == declared_entry_points()


def can_build_offline() -> bool:
    """setuptools < 70.1 needs the ``wheel`` package for ``bdist_wheel``."""
    try:
        setuptools = Version(metadata.version("setuptools"))
    except metadata.PackageNotFoundError:
        return False
    return setuptools >= Version("70.1") or importlib.util.find_spec("wheel") is not None


def pip_install() -> None:
    base = [sys.executable, "-m", "pip", "install", "--quiet", "--no-input",
            "--disable-pip-version-check", "--no-deps", "--editable", str(PLUGIN_DIR)]
    failures = []
    for extra in ([["--no-build-isolation"]] if can_build_offline() else []) + [[]]:
        done = subprocess.run([*base, *extra], capture_output=True, text=True, timeout=300,
                              check=False)
        if done.returncode == 0:
            return
        failures.append(f"$ {' '.join([*base, *extra])}\n{done.stdout}{done.stderr}")
    pytest.fail("could not install the example plugin:\n" + "\n".join(failures))


@pytest.fixture(scope="session")
def hotp_plugin() -> Iterator[ModuleType]:
    """The installed ``stepup_hotp`` module (installing it first if needed)."""
    lock_path = Path(sys.prefix) / f".{DISTRIBUTION}.install.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not installed_from_this_checkout():
                pip_install()
                importlib.invalidate_caches()
                assert installed_from_this_checkout(), "pip ran but the metadata is not there"
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    if importlib.util.find_spec("stepup_hotp") is None and str(PLUGIN_SRC) not in sys.path:
        sys.path.append(str(PLUGIN_SRC))
    module = importlib.import_module("stepup_hotp")
    assert Path(module.__file__ or "").resolve().is_relative_to(PLUGIN_SRC), (
        f"stepup_hotp imported from {module.__file__}, not this checkout: restart pytest")
    yield module
