"""Start node ``oidc-provider`` (installed by ``make bench-compare`` into ``benchmarks/.node``)
with the configuration of ``provider.mjs``, and describe it to the driver as a target."""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
from pathlib import Path
from typing import Any

from benchmarks.seed import PASSWORD, REDIRECT_URI, RP_CLIENT_ID
from benchmarks.server import ROOT, SCRATCH, ServerProcess, free_port, wait_ready

NODE_DIR = ROOT / "benchmarks" / ".node"
SCRIPT = Path(__file__).with_name("provider.mjs")


def installed_version() -> str | None:
    """The installed oidc-provider version, or None when ``make bench-compare`` has not run."""
    package = NODE_DIR / "node_modules" / "oidc-provider" / "package.json"
    if not package.is_file():
        return None
    return str(json.loads(package.read_text("utf-8"))["version"])


def start_oidc_provider(users: list[str], port: int | None = None) -> tuple[ServerProcess,
                                                                          dict[str, Any]]:
    """Start the node server on loopback; returns it and its manifest (same shape as
    stepup-idp's, so the same scenarios run against it)."""
    version = installed_version()
    if version is None:
        raise RuntimeError("oidc-provider is not installed: run `make bench-compare` (it runs "
                           "npm install --prefix benchmarks/.node oidc-provider@latest)")
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is not on PATH")
    port = port or free_port()
    workdir = SCRATCH / f"oidc-provider-{port}"
    workdir.mkdir(parents=True, exist_ok=True)
    issuer = f"http://127.0.0.1:{port}"
    client_secret = secrets.token_urlsafe(32)
    config = {"port": port, "issuer": issuer, "client_id": RP_CLIENT_ID,
              "client_secret": client_secret, "redirect_uri": REDIRECT_URI,
              "password": PASSWORD, "users": users}
    config_path = workdir / "op-config.json"
    config_path.write_text(json.dumps(config), "utf-8")
    script = NODE_DIR / "provider.mjs"  # beside node_modules, so the bare import resolves
    shutil.copyfile(SCRIPT, script)
    log_path = workdir / "server.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(  # noqa: S603 - our own command
            [node, str(script)], cwd=NODE_DIR, stdout=log, stderr=log,
            env={"PATH": "/usr/bin:/bin", "NODE_ENV": "production",
                 "OP_CONFIG": str(config_path)})
    server = ServerProcess("oidc-provider", process, issuer, log_path)
    try:
        server.ready_seconds = wait_ready(issuer + "/.well-known/openid-configuration", process)
    except Exception:
        server.stop()
        raise
    manifest = {"kind": "oidc-provider", "issuer": issuer, "base_url": issuer,
                "password": PASSWORD, "redirect_uri": REDIRECT_URI, "users": users,
                "client": {"client_id": RP_CLIENT_ID, "client_secret": client_secret},
                "backend": "memory", "workers": 1, "version": version}
    server.info = {"backend": "memory", "workers": 1, "version": version}
    return server, manifest
