"""The real ``idp`` command line, run as a subprocess against a throwaway instance folder.

Every command runs in a clean environment (only PATH, HOME, locale and the IDP_* settings below)
in its own process group, with a timeout; a command that outlives it is killed with its
children. The database is an SQLite file in the instance folder, inspected with ``sqlite3``.
"""

from __future__ import annotations

import calendar
import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from argon2 import PasswordHasher

REPO = Path(__file__).resolve().parents[2]
SCRIPT = Path(sys.executable).parent / "idp"
SECRET_KEY = "cli-test-secret-0123456789-abcdefghijklm"  # 40 characters
assert len(SECRET_KEY) == 40
COMMAND_TIMEOUT = 60
SERVE_WAIT = 20
ALGS = ("RS256", "ES256")
PASSWORD = "correct horse battery staple"
ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def idp_argv() -> list[str]:
    """The installed console script; without it (project not installed in the virtualenv),
    the same entry point ``idp.cli:main`` through this interpreter."""
    if SCRIPT.exists():
        return [str(SCRIPT)]
    return [sys.executable, "-c", "import sys; from idp.cli import main; sys.exit(main())"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_group(proc: subprocess.Popen, grace: float = 15) -> None:
    """SIGTERM the process group we started, then SIGKILL it if it is still there."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@dataclass
class Instance:
    """An instance folder and the environment that points the CLI at it."""

    path: Path
    home: Path
    extra_env: dict[str, str]

    @property
    def db_file(self) -> Path:
        return self.path / "idp.sqlite3"

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),  # gunicorn keeps a control socket under $HOME
            "LC_ALL": "C.UTF-8",
            "LANG": "C.UTF-8",
            "IDP_INSTANCE_PATH": str(self.path),
            "IDP_DATABASE_URL": "sqlite:///idp.sqlite3",
            "IDP_SECRET_KEY": SECRET_KEY,
            "IDP_PASSWORD__TIME_COST": "1",
            "IDP_PASSWORD__MEMORY_COST": "8192",
        }
        if not SCRIPT.exists():
            env["PYTHONPATH"] = str(REPO)
        env.update(self.extra_env)
        env.update(extra)
        return env

    def run(self, *args: str, stdin: str | None = None, env: dict[str, str] | None = None,
            timeout: float = COMMAND_TIMEOUT) -> Result:
        proc = subprocess.Popen(
            [*idp_argv(), *args], cwd=self.home, env=env or self.env(),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, start_new_session=True)
        try:
            out, err = proc.communicate(stdin or "", timeout=timeout)
        except subprocess.TimeoutExpired:
            stop_group(proc, grace=2)
            proc.communicate()
            pytest.fail(f"`idp {' '.join(args)}` did not finish within {timeout} s")
        finally:
            if proc.poll() is None:
                stop_group(proc, grace=2)
        return Result(proc.returncode, out, err)

    def ok(self, *args: str, stdin: str | None = None) -> Result:
        result = self.run(*args, stdin=stdin)
        assert result.returncode == 0, f"`idp {' '.join(args)}` failed:\n{result.output}"
        assert "Traceback" not in result.output
        return result

    def fails(self, *args: str, stdin: str | None = None) -> Result:
        """A clean failure: non-zero exit, a message, no traceback."""
        result = self.run(*args, stdin=stdin)
        assert result.returncode != 0, f"`idp {' '.join(args)}` succeeded:\n{result.output}"
        assert "Traceback" not in result.output, result.output
        assert result.stderr.strip(), "no error message"
        return result

    def query(self, sql: str, *params: Any) -> list[tuple]:
        with contextlib.closing(sqlite3.connect(self.db_file)) as conn:
            return conn.execute(sql, params).fetchall()

    def dump(self) -> str:
        with contextlib.closing(sqlite3.connect(self.db_file)) as conn:
            return "\n".join(conn.iterdump())

    def signing_keys(self) -> list[dict[str, str]]:
        """``idp keys list`` parsed: alg, state, kid and (for retired keys) until."""
        rows = []
        for line in self.ok("keys", "list").stdout.splitlines():
            if not line.strip():
                continue
            alg, state, kid, *rest = line.split()
            row = {"alg": alg, "state": state, "kid": kid}
            if rest[:2] == ["published", "until"]:
                row["until"] = rest[2]
            rows.append(row)
        return rows

    def users(self) -> dict[str, str]:
        """``idp users list`` parsed: username -> state."""
        listing = {}
        for line in self.ok("users", "list").stdout.splitlines():
            if line.strip():
                fields = line.split()
                listing[fields[1]] = fields[-1]
        return listing


@pytest.fixture(scope="module")
def initialised_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One ``idp init`` per module; each test gets a copy (RSA key generation is slow-ish)."""
    base = tmp_path_factory.mktemp("cli-template")
    instance = Instance(base / "instance", base, {})
    result = instance.ok("init")
    assert "4 new signing key(s)" in result.stdout
    return instance.path


@pytest.fixture
def fresh(tmp_path: Path) -> Instance:
    """An instance folder that does not exist yet."""
    home = tmp_path / "home"
    home.mkdir()
    return Instance(tmp_path / "instance", home, {})


@pytest.fixture
def inst(tmp_path: Path, initialised_template: Path) -> Instance:
    """An initialised instance (database migrated, keys generated)."""
    home = tmp_path / "home"
    home.mkdir()
    shutil.copytree(initialised_template, tmp_path / "instance")
    return Instance(tmp_path / "instance", home, {})


# -- init / keys -------------------------------------------------------------------------------

def test_init_creates_database_and_keys(fresh: Instance) -> None:
    assert not fresh.path.exists()
    result = fresh.ok("init")
    assert "database ready; 4 new signing key(s)" in result.stdout
    assert fresh.db_file.is_file()
    tables = {row[0] for row in fresh.query("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"alembic_version", "users", "clients", "signing_keys", "audit_events"} <= tables
    assert fresh.query("SELECT version_num FROM alembic_version")

    listed = fresh.signing_keys()
    assert sorted((k["alg"], k["state"]) for k in listed) == sorted(
        (alg, state) for alg in ALGS for state in ("active", "next"))
    assert len({k["kid"] for k in listed}) == 4
    stored = fresh.query("SELECT kid, alg, state, private_jwk_encrypted FROM signing_keys")
    assert {(kid, alg, state) for kid, alg, state, _ in stored} == {
        (k["kid"], k["alg"], k["state"]) for k in listed}
    for _, _, _, private in stored:
        assert '"d"' not in private  # private keys are encrypted at rest


def test_init_twice_is_idempotent(fresh: Instance) -> None:
    fresh.ok("init")
    before = fresh.signing_keys()
    tables_before = fresh.query("SELECT name FROM sqlite_master ORDER BY name")
    again = fresh.ok("init")
    assert "database ready; 0 new signing key(s)" in again.stdout
    assert fresh.signing_keys() == before
    assert fresh.query("SELECT name FROM sqlite_master ORDER BY name") == tables_before
    assert fresh.query("SELECT count(*) FROM signing_keys") == [(4,)]


def test_keys_rotate(inst: Instance) -> None:
    before = {(k["alg"], k["state"]): k["kid"] for k in inst.signing_keys()}
    started = int(time.time())
    result = inst.ok("keys", "rotate")
    for alg in ALGS:
        assert f"{alg}: active {before[alg, 'next']}" in result.stdout
        assert f"retired {before[alg, 'active']}" in result.stdout

    after = inst.signing_keys()
    for alg in ALGS:
        states = {k["state"]: k for k in after if k["alg"] == alg}
        assert sorted(states) == ["active", "next", "retired"]
        assert states["active"]["kid"] == before[alg, "next"]
        assert states["retired"]["kid"] == before[alg, "active"]
        assert states["next"]["kid"] not in before.values()
        until = calendar.timegm(time.strptime(states["retired"]["until"], ISO_FORMAT))
        # Published until every token it signed has expired: past the longest token TTL.
        assert until >= started + 3600
        assert until <= int(time.time()) + 2 * 86400
        assert "until" not in states["active"] and "until" not in states["next"]

    rows = inst.query("SELECT data FROM audit_events WHERE type = 'key.rotated'")
    assert len(rows) == len(ALGS)
    events = {json.loads(data)["alg"]: json.loads(data) for (data,) in rows}
    for alg in ALGS:
        assert events[alg]["retired_kid"] == before[alg, "active"]
        assert events[alg]["active_kid"] == before[alg, "next"]


# -- users -------------------------------------------------------------------------------------

def test_users_create_and_list(inst: Instance) -> None:
    result = inst.ok("users", "create", "alice", "--email", "a@example.test",
                     "--password", PASSWORD)
    assert "created user alice" in result.stdout
    listing = inst.ok("users", "list").stdout
    line = next(line for line in listing.splitlines() if " alice " in line)
    assert "a@example.test" in line
    assert line.split()[-1] == "active"
    assert PASSWORD not in inst.dump()
    assert inst.query("SELECT type FROM audit_events WHERE type = 'user.created'")


def test_users_create_reads_password_from_stdin(inst: Instance) -> None:
    secret = "a password typed on stdin"
    result = inst.ok("users", "create", "bob", stdin=secret + "\n")
    assert "created user bob" in result.stdout
    assert inst.users() == {"bob": "active"}
    [(stored,)] = inst.query("SELECT password_hash FROM users WHERE username = 'bob'")
    assert PasswordHasher().verify(stored, secret)  # no trailing newline was kept


@pytest.mark.parametrize("duplicate", ["alice", "ALICE"])
def test_users_create_duplicate_fails(inst: Instance, duplicate: str) -> None:
    inst.ok("users", "create", "alice", "--password", PASSWORD)
    result = inst.fails("users", "create", duplicate, "--password", "another " + PASSWORD)
    assert "taken" in result.stderr
    assert inst.users() == {"alice": "active"}


def test_users_create_short_password_fails(inst: Instance) -> None:
    result = inst.fails("users", "create", "carol", "--password", "short")
    assert "password" in result.stderr.lower()
    assert "8 characters" in result.stderr
    assert inst.users() == {}


def test_users_disable(inst: Instance) -> None:
    inst.ok("users", "create", "alice", "--password", PASSWORD)
    inst.ok("users", "create", "bob", "--password", PASSWORD)
    assert "disabled alice" in inst.ok("users", "disable", "alice").stdout
    assert inst.users() == {"alice": "disabled", "bob": "active"}
    missing = inst.fails("users", "disable", "nobody")
    assert "nobody" in missing.stderr


# -- clients -----------------------------------------------------------------------------------

def test_clients_create_show_list(inst: Instance) -> None:
    result = inst.ok("clients", "create", "--name", "X",
                     "--redirect-uri", "https://rp.example/cb")
    created = json.loads(result.stdout)
    assert set(created) == {"client_id", "client_secret"}
    client_id, secret = created["client_id"], created["client_secret"]
    assert client_id and isinstance(secret, str) and len(secret) >= 32
    assert "shown only now" in result.stderr

    # "--": a generated client id may start with "-" (see test_generated_client_ids_...).
    shown = inst.ok("clients", "show", "--", client_id)
    assert secret not in shown.output
    registration = json.loads(shown.stdout)
    assert registration["client_id"] == client_id
    assert registration["name"] == "X"
    assert registration["redirect_uris"] == ["https://rp.example/cb"]
    assert registration["token_endpoint_auth_method"] == "client_secret_basic"
    assert "client_secret" not in registration
    assert not any("secret" in key for key in registration)

    listing = inst.ok("clients", "list")
    assert secret not in listing.output
    [line] = [line for line in listing.stdout.splitlines() if line.strip()]
    assert line.split() == [client_id, "X", "client_secret_basic"]

    assert secret not in inst.dump()  # stored hashed only
    rows = inst.query("SELECT actor FROM audit_events WHERE type = 'client.created' "
                      "AND client_id = ?", client_id)
    assert rows == [("cli",)]


def test_generated_client_ids_are_usable_as_cli_arguments(tmp_path: Path) -> None:
    from idp import create_app
    from idp.extensions import db
    from idp.oidc.clients import register_client

    app = create_app({"database_url": "sqlite:///:memory:", "secret_key": SECRET_KEY,
                      "instance_path": str(tmp_path / "instance")}, environ={})
    with app.app_context():
        db.create_all()
        try:
            # 1000 draws: P(no leading "-" by chance) = (63/64)^1000 < 1e-6.
            ids = [register_client(name=f"c{n}", redirect_uris=["https://rp.example/cb"],
                                   auth_method="none").client.client_id for n in range(1000)]
        finally:
            db.session.remove()
            db.engine.dispose()
    assert len(set(ids)) == 1000
    leading_dash = [client_id for client_id in ids if client_id.startswith("-")]
    assert leading_dash == [], f"{len(leading_dash)} of 1000 ids start with '-'"


def test_clients_show_unknown_fails(inst: Instance) -> None:
    result = inst.fails("clients", "show", "no-such-client")
    assert "no-such-client" in result.stderr


def test_clients_create_rejects_fragment(inst: Instance) -> None:
    result = inst.fails("clients", "create", "--name", "Y",
                        "--redirect-uri", "https://rp.example/cb#frag")
    assert "fragment" in result.stderr
    assert result.stdout.strip() == ""
    assert inst.ok("clients", "list").stdout.strip() == ""
    assert inst.query("SELECT count(*) FROM clients") == [(0,)]


def test_clients_create_public(inst: Instance) -> None:
    result = inst.ok("clients", "create", "--name", "Public", "--auth-method", "none",
                     "--redirect-uri", "https://rp.example/cb")
    created = json.loads(result.stdout)
    assert created["client_secret"] is None
    assert "shown only now" not in result.stderr
    shown = json.loads(inst.ok("clients", "show", "--", created["client_id"]).stdout)
    assert shown["token_endpoint_auth_method"] == "none"
    assert inst.query("SELECT secret_hash FROM clients") == [(None,)]


# -- serve and settings ------------------------------------------------------------------------

def test_serve_refuses_several_workers_without_redis(inst: Instance) -> None:
    result = inst.fails("serve", "--workers", "2", "--port", str(free_port()))
    assert "IDP_REDIS_URL" in result.stderr


BAD_SETTING = {"IDP_TOKENS__ACCESS_TOKEN_TTL": "soon"}
ANY_COMMANDS = [("init",), ("users", "list"), ("keys", "list")]


@pytest.mark.parametrize("args", ANY_COMMANDS, ids=" ".join)
def test_bad_setting_fails_naming_it(inst: Instance, args: tuple[str, ...]) -> None:
    result = inst.run(*args, env=inst.env(**BAD_SETTING))
    assert result.returncode != 0
    assert "tokens.access_token_ttl" in result.stderr
    assert result.stdout.strip() == ""


@pytest.mark.parametrize("args", ANY_COMMANDS, ids=" ".join)
def test_bad_setting_is_reported_without_traceback(inst: Instance,
                                                   args: tuple[str, ...]) -> None:
    result = inst.run(*args, env=inst.env(**BAD_SETTING))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr


@contextlib.contextmanager
def serving(inst: Instance, port: int, log: Path) -> Iterator[subprocess.Popen]:
    """``idp serve`` (one worker) in its own process group; always stopped afterwards."""
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*idp_argv(), "serve", "--port", str(port), "--workers", "1"], cwd=inst.home,
            env=inst.env(IDP_ISSUER=f"http://127.0.0.1:{port}"), stdin=subprocess.DEVNULL,
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            yield proc
        finally:
            stop_group(proc)


def wait_until_up(proc: subprocess.Popen, url: str, log: Path) -> requests.Response:
    http = requests.Session()
    http.trust_env = False
    deadline = time.monotonic() + SERVE_WAIT
    with contextlib.closing(http):
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"idp serve exited with {proc.returncode}:\n{log.read_text()}")
            try:
                response = http.get(url, timeout=2)
            except requests.ConnectionError:
                time.sleep(0.2)
                continue
            if response.status_code == 200:
                return response
            time.sleep(0.2)
    pytest.fail(f"{url} did not answer 200 within {SERVE_WAIT} s:\n{log.read_text()}")


def test_serve_answers_discovery(inst: Instance, tmp_path: Path) -> None:
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    with serving(inst, port, log) as proc:
        discovery = wait_until_up(proc, f"{issuer}/.well-known/openid-configuration", log)
        metadata = discovery.json()
        assert metadata["issuer"] == issuer
        assert metadata["jwks_uri"].startswith(issuer)
        with contextlib.closing(requests.Session()) as http:
            http.trust_env = False
            jwks = http.get(metadata["jwks_uri"], timeout=5)
        assert jwks.status_code == 200
        published = {key["kid"] for key in jwks.json()["keys"]}
        assert published == {k["kid"] for k in inst.signing_keys()}
    assert proc.returncode is not None
    assert "Traceback" not in log.read_text()
