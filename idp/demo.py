"""``idp demo``: the demo user and relying party, and the servers side by side.

The demo RP (``examples/relying_party``, from a source checkout) signs in at this IdP with the
real code flow. Its client secret is rotated at every start and handed to it through the
environment, so no secret is written to disk. The demo resource server
(``examples/resource_server``, on the RP's port + 1) accepts this IdP's access tokens; its
``POST /transfers`` needs a recent aal2 sign-in, which the RP's "Make a transfer" steps up to.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import click
from flask import Flask
from sqlalchemy import select

from idp.config import Settings
from idp.extensions import db
from idp.models import Client, User

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "stepup-demo-password"
DEMO_CLIENT_ID = "demo-rp"
SUBPROCESS_STOP_SECONDS = 5


@dataclass(frozen=True)
class DemoSeed:
    client_secret: str
    rp_url: str


def seed(app: Flask, rp_port: int) -> DemoSeed:
    """Create the demo user and the demo RP client if missing; rotate the client's secret."""
    from idp.oidc.clients import register_client, rotate_client_secret
    from idp.users import create_user

    rp_url = f"http://localhost:{rp_port}"
    with app.app_context():
        if db.session.scalar(select(User).where(User.username == DEMO_USERNAME)) is None:
            create_user(username=DEMO_USERNAME, password=DEMO_PASSWORD,
                        email="demo@example.test", name="Demo User", email_verified=True,
                        actor="demo")
        client = db.session.get(Client, DEMO_CLIENT_ID)
        if client is None:
            registered = register_client(
                name="Demo relying party", client_id=DEMO_CLIENT_ID,
                redirect_uris=[f"{rp_url}/callback"],
                post_logout_redirect_uris=[f"{rp_url}/", f"{rp_url}/logged-out"],
                scope="openid profile email", first_party=True)
            secret = registered.secret or ""
        else:
            client.redirect_uris = [f"{rp_url}/callback"]
            client.post_logout_redirect_uris = [f"{rp_url}/", f"{rp_url}/logged-out"]
            secret = rotate_client_secret(client)
    return DemoSeed(secret, rp_url)


def run_demo(app: Flask, idp_port: int, rp_port: int) -> None:
    from idp.cli import initialise
    from idp.server import run_gunicorn

    settings = app.extensions["idp.settings"]
    issuer_port = urlsplit(settings.issuer).port
    if issuer_port != idp_port:
        raise click.ClickException(
            f"the issuer {settings.issuer} does not use port {idp_port}: set IDP_ISSUER")
    initialise(app)
    demo = seed(app, rp_port)
    rs_port = rp_port + 1
    rs_url = f"http://localhost:{rs_port}"
    # FLASK_RUN_FROM_CLI (set by our Flask CLI) would make the examples' app.run() a no-op.
    env = {key: value for key, value in os.environ.items() if key != "FLASK_RUN_FROM_CLI"}
    children: list[subprocess.Popen[bytes]] = []
    try:
        children.append(_start("demo resource server", "examples.resource_server", {
            **env, "DEMO_RS_ISSUER": settings.issuer, "DEMO_RS_PORT": str(rs_port),
            "DEMO_RS_AUDIENCE": demo_audience(settings)}))
        children.append(_start("demo relying party", "examples.relying_party", {
            **env, "DEMO_RP_CLIENT_SECRET": demo.client_secret,
            "DEMO_RP_ISSUER": settings.issuer, "DEMO_RP_CLIENT_ID": DEMO_CLIENT_ID,
            "DEMO_RP_PORT": str(rp_port), "DEMO_RP_RESOURCE_URL": rs_url}))
        click.echo(f"\n  IdP:                  {settings.issuer}\n"
                   f"  Demo RP:              {demo.rp_url}\n"
                   f"  Demo resource server: {rs_url} (POST /transfers needs aal2)\n"
                   f"  Sign in as {DEMO_USERNAME} / {DEMO_PASSWORD}\n  Ctrl-C stops all three.\n")
        run_gunicorn("127.0.0.1", idp_port, 1, settings)
    finally:
        _stop(children)


def demo_audience(settings: Settings) -> str:
    """The ``aud`` of the access tokens the demo RP gets: the IdP's configured access-token
    audience, else the RP's client id (RFC 9068 §3; ``idp.oidc.tokens``)."""
    configured = list(settings.tokens.access_token_audience)
    return configured[0] if configured else DEMO_CLIENT_ID


def _start(name: str, module: str, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """``python -m module`` with ``env``, as a child of this process (``module`` is one of the
    fixed example names above, run without a shell)."""
    try:
        return subprocess.Popen([sys.executable, "-m", module], env=dict(env))  # noqa: S603
    except OSError as exc:
        raise click.ClickException(f"cannot start the {name}: {exc}") from None


def _stop(children: list[subprocess.Popen[bytes]]) -> None:
    """Terminate the children, then kill those still running after a grace period."""
    for child in children:
        child.terminate()
    for child in children:
        try:
            child.wait(timeout=SUBPROCESS_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
