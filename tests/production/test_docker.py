"""The Docker image, without a Docker engine (none runs here): the Dockerfile's properties
(a lint of what matters: multi-stage, slim base, only runtime dependencies, non-root numeric
USER, HEALTHCHECK on /healthz, ENTRYPOINT ``idp serve``, configuration only from the
environment), the build context that ``.dockerignore`` lets through, and the entrypoint and
health check running in a virtualenv built the way the Dockerfile builds /opt/venv.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import pytest
import requests
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.production.services import free_port, kill_group, wait_for

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"


# -- a small Dockerfile reader -----------------------------------------------------------------

@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for args in self.all("ENV"):
            for token in shlex.split(args):
                name, _, value = token.partition("=")
                values[name] = value
        return values


def instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) with continuation lines joined and comments dropped."""
    logical, current = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or (stripped.startswith("#") and not current):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        logical.append(current + stripped)
        current = ""
    result = []
    for entry in logical:
        keyword, _, args = entry.partition(" ")
        result.append((keyword.upper(), args.strip()))
    return result


def stages(text: str) -> tuple[dict[str, str], list[Stage]]:
    args: dict[str, str] = {}
    found: list[Stage] = []
    for keyword, rest in instructions(text):
        if keyword == "ARG" and not found:
            name, _, default = rest.partition("=")
            args[name] = default
        elif keyword == "FROM":
            match = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", rest, re.IGNORECASE)
            assert match, rest
            base = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), ""), match.group(1))
            found.append(Stage(base, match.group(2)))
        else:
            assert found or keyword in ("ARG",), f"{keyword} before FROM"
            found[-1].instructions.append((keyword, rest))
    return args, found


@pytest.fixture(scope="module")
def dockerfile() -> list[Stage]:
    return stages(DOCKERFILE.read_text())[1]


def test_multi_stage_on_a_slim_python_base(dockerfile):
    assert len(dockerfile) >= 2
    build, runtime = dockerfile[0], dockerfile[-1]
    assert build.name == "build" and runtime.name == "runtime"
    for stage in dockerfile:
        assert re.fullmatch(r"python:3\.1[1-9]-slim(-\w+)?", stage.base), stage.base
    assert build.base == runtime.base  # the venv's interpreter path exists in the runtime
    assert any(c.startswith("--from=build /opt/venv /opt/venv") for c in runtime.all("COPY"))


def test_only_runtime_dependencies_reach_the_image(dockerfile):
    build, runtime = dockerfile[0], dockerfile[-1]
    installs = " ".join(build.all("RUN"))
    assert re.search(r"/opt/venv/bin/pip install \.(\s|$)", installs), installs
    assert "[test]" not in installs and "-e " not in installs
    # The runtime stage installs nothing, builds nothing, and gets no source or tests.
    runtime_runs = " ".join(runtime.all("RUN"))
    for forbidden in ("pip install", "apt-get install", "gcc", "build-essential"):
        assert forbidden not in runtime_runs
    assert [c for c in runtime.all("COPY") if not c.startswith("--from=build")] == []
    assert not runtime.all("ADD") and not build.all("ADD")
    for copied in build.all("COPY"):
        assert "tests" not in copied.split() and not copied.startswith(". ")


def test_runs_as_a_non_root_numeric_user(dockerfile):
    users = dockerfile[-1].all("USER")
    assert users, "no USER in the runtime stage"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) > 0, users[-1]
    assert not gid or (gid.isdigit() and int(gid) > 0)
    assert any(f"--uid {uid}" in run for run in dockerfile[-1].all("RUN"))


def test_entrypoint_and_healthcheck(dockerfile):
    runtime = dockerfile[-1]
    assert [json.loads(e) for e in runtime.all("ENTRYPOINT")] == [["idp", "serve"]]
    (healthcheck,) = runtime.all("HEALTHCHECK")
    options, _, command = healthcheck.partition("CMD ")
    for option in ("--interval=", "--timeout=", "--start-period=", "--retries="):
        assert option in options
    argv = json.loads(command)
    assert argv[0] == "python" and "/healthz" in argv[-1]
    env = runtime.env()
    exposed = runtime.all("EXPOSE")
    assert exposed == [env["IDP_SERVER__PORT"]]
    assert env["IDP_SERVER__HOST"] == "0.0.0.0"


def test_configuration_only_from_the_environment(dockerfile):
    env = dockerfile[-1].env()
    assert env["IDP_ENVIRONMENT"] == "production"
    for secret in ("IDP_SECRET_KEY", "IDP_DATABASE_URL", "IDP_REDIS_URL"):
        assert secret not in env, f"{secret} must come from the deployment, not the image"
    assert env["IDP_INSTANCE_PATH"].startswith("/tmp/")  # writable on a read-only root
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    text = DOCKERFILE.read_text()
    assert "IDP_CONFIG" not in dockerfile[-1].env()  # optional, mounted by the deployment
    assert "curl" not in text and "wget" not in text


# -- the build context -------------------------------------------------------------------------

def _pattern(raw: str) -> re.Pattern[str]:
    text = raw.strip().lstrip("/").rstrip("/")
    out, i = "", 0
    while i < len(text):
        if text.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif text.startswith("**", i):
            out, i = out + ".*", i + 2
        elif text[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif text[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(text[i]), i + 1
    return re.compile(out + "$")


def build_context(root: Path = REPO) -> set[str]:
    """Files Docker sends as the build context: .dockerignore semantics (the last matching
    pattern wins; a pattern matching a parent folder matches what is inside it)."""
    rules, exceptions = [], []
    for line in (root / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            rules.append((line.startswith("!"), _pattern(line.lstrip("!"))))
            if line.startswith("!"):
                exceptions.append(line[1:].lstrip("/"))

    def kept(relative: str) -> bool:
        parts = relative.split("/")
        candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
        keep = True
        for negated, pattern in rules:
            if any(pattern.match(c) for c in candidates):
                keep = negated
        return keep

    def may_reinclude(folder: str) -> bool:
        """Whether an exception could bring back something inside an excluded folder."""
        return any(e.startswith(("*", folder + "/")) or e.rstrip("/") == folder
                   for e in exceptions)

    included = set()
    for current, folders, files in os.walk(root):
        base = Path(current).relative_to(root).as_posix()
        prefix = "" if base == "." else base + "/"
        # Like Docker, do not descend into excluded folders nothing can re-include (.git,
        # .venv): the answer is the same, only faster.
        folders[:] = [f for f in folders if kept(prefix + f) or may_reinclude(prefix + f)]
        included.update(prefix + f for f in files if kept(prefix + f))
    return included


@pytest.fixture(scope="module")
def context() -> set[str]:
    return build_context()


def test_build_context_has_the_package_and_nothing_else(context):
    package = {p.relative_to(REPO).as_posix() for p in (REPO / "idp").rglob("*")
               if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}
    assert package <= context, sorted(package - context)[:10]
    assert {"pyproject.toml", "README.md"} <= context
    for leaked in context:
        top = leaked.split("/")[0]
        assert top in ("idp", "pyproject.toml", "README.md"), leaked
        assert "__pycache__" not in leaked and not leaked.endswith((".pyc", ".sqlite3"))
    # Everything the Dockerfile copies is there.
    for copied in ("pyproject.toml", "README.md", "idp/__init__.py", "idp/config/default.yaml",
                   "idp/templates/base.html", "idp/migrations/env.py"):
        assert copied in context


def test_context_rules_keep_secrets_and_local_state_out(tmp_path):
    shutil.copy(REPO / ".dockerignore", tmp_path / ".dockerignore")
    for name in ("pyproject.toml", "README.md", "idp/__init__.py", "idp/sub/x.py",
                 "idp/__pycache__/a.pyc", "idp/instance/idp.sqlite3", ".env", "instance/secret_key",
                 ".venv/bin/python", "tests/t.py", "helm/stepup-idp/values.yaml"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    assert build_context(tmp_path) == {"pyproject.toml", "README.md", "idp/__init__.py",
                                       "idp/sub/x.py"}


# -- the entrypoint in a virtualenv built the same way -----------------------------------------

def runtime_distributions() -> set[str]:
    """The installed distributions [project].dependencies pulls in (markers honoured)."""
    import tomllib

    pending = [Requirement(s) for s in tomllib.loads(
        (REPO / "pyproject.toml").read_text())["project"]["dependencies"]]
    seen: set[str] = set()
    while pending:
        req = pending.pop()
        name = canonicalize_name(req.name)
        if name in seen:
            continue
        try:
            requires = metadata.requires(req.name) or []
        except metadata.PackageNotFoundError:
            continue
        seen.add(name)
        for spec in requires:
            sub = Requirement(spec)
            if sub.marker is None or any(sub.marker.evaluate({"extra": e})
                                         for e in ("", *req.extras)):
                pending.append(sub)
    return seen


def link_runtime_dependencies(target: Path) -> None:
    """Symlink only the runtime dependencies' files from this virtualenv into ``target``."""
    target.mkdir()
    wanted = runtime_distributions()
    for dist in metadata.distributions():
        if canonicalize_name(dist.metadata["Name"]) not in wanted:
            continue
        base = Path(str(dist.locate_file("")))
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops:
            source = base / top
            if source.exists() and not (target / top).exists():
                (target / top).symlink_to(source)


@pytest.mark.slow
def test_entrypoint_and_healthcheck_work_in_a_venv_built_like_the_image(tmp_path, dockerfile,
                                                                        context):
    """The Dockerfile's build stage, minus the network for dependencies: the package is
    installed from a copy of the build context into a fresh virtualenv (its build backend
    from the package index, as in the image); the runtime dependencies come from this
    virtualenv, and only they, through a .pth file."""
    source = tmp_path / "context"
    for relative in context:
        (source / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / relative, source / relative)
    venv = tmp_path / "opt-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    purelib = subprocess.run([str(venv / "bin/python"), "-c",
                              "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True, timeout=60).stdout
    link_runtime_dependencies(tmp_path / "deps")
    (Path(purelib.strip()) / "runtime_deps.pth").write_text(str(tmp_path / "deps") + "\n")
    env = {k: v for k, v in os.environ.items()
           if k not in {"PYTHONPATH", "VIRTUAL_ENV"} and not k.startswith("IDP_")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    built = subprocess.run([str(venv / "bin/pip"), "install", "--no-deps", "--quiet",
                            str(source)], env=env, capture_output=True, text=True, timeout=400)
    if built.returncode != 0 and "Could not find a version" in built.stderr and \
            not os.environ.get("CI"):
        pytest.skip(f"the build backend cannot be fetched here: {built.stderr[-300:]}")
    assert built.returncode == 0, built.stderr[-2000:]

    image_env = dockerfile[-1].env()
    port = free_port()
    run_env = {
        **{k: v for k, v in image_env.items() if k != "PATH"},
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "IDP_SERVER__HOST": "127.0.0.1",  # loopback only in tests (0.0.0.0 in the image)
        "IDP_SERVER__PORT": str(port),
        "IDP_INSTANCE_PATH": str(tmp_path / "instance"),
        "IDP_ISSUER": "https://idp.example.test",
        "IDP_SECRET_KEY": "docker-test-secret-0123456789-abcdefghij",
        "IDP_DATABASE_URL": f"sqlite:///{tmp_path}/idp.sqlite3",
        "IDP_PASSWORD__TIME_COST": "1",
        "IDP_PASSWORD__MEMORY_COST": "8192",
    }
    assert run_env["IDP_ENVIRONMENT"] == "production"
    init = subprocess.run([str(venv / "bin/idp"), "init"], env=run_env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert init.returncode == 0, init.stderr
    # The installed package, not the source tree, serves.
    where = subprocess.run([str(venv / "bin/python"), "-c", "import idp; print(idp.__file__)"],
                           env=run_env, cwd=tmp_path, capture_output=True, text=True,
                           timeout=60).stdout
    assert where.startswith(str(venv)), where

    entrypoint = json.loads(dockerfile[-1].all("ENTRYPOINT")[0])
    healthcheck = json.loads(dockerfile[-1].all("HEALTHCHECK")[0].partition("CMD ")[2])
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen([str(venv / "bin" / entrypoint[0]), *entrypoint[1:]],
                                  env=run_env, cwd=tmp_path, stdin=subprocess.DEVNULL,
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def check() -> int:
        return subprocess.run([str(venv / "bin" / healthcheck[0]), *healthcheck[1:]],
                              env=run_env, cwd=tmp_path, capture_output=True,
                              timeout=10).returncode

    try:
        wait_for(lambda: server.poll() is not None or check() == 0, 30,
                 "the HEALTHCHECK command to pass")
        assert server.poll() is None, log_path.read_text(errors="replace")[-3000:]
        discovery = requests.get(f"http://127.0.0.1:{port}/.well-known/openid-configuration",
                                 timeout=10)
        assert discovery.json()["issuer"] == "https://idp.example.test"
    finally:
        kill_group(server)
    assert check() != 0  # and it fails once the server is gone

