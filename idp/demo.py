"""``idp demo``: the demo user and relying party, and both servers side by side.

The demo RP (``examples/relying_party``, from a source checkout) signs in at this IdP with the
real code flow. Its client secret is rotated at every start and handed to it through the
environment, so no secret is written to disk.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from urllib.parse import urlsplit

import click
from flask import Flask
from sqlalchemy import select

from idp.extensions import db
from idp.models import Client, User

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "stepup-demo-password"
DEMO_CLIENT_ID = "demo-rp"


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
    # FLASK_RUN_FROM_CLI (set by our Flask CLI) would make the RP's app.run() a no-op.
    env = {key: value for key, value in os.environ.items() if key != "FLASK_RUN_FROM_CLI"}
    env = {**env, "DEMO_RP_CLIENT_SECRET": demo.client_secret,
           "DEMO_RP_ISSUER": settings.issuer, "DEMO_RP_CLIENT_ID": DEMO_CLIENT_ID,
           "DEMO_RP_PORT": str(rp_port)}
    try:
        rp = subprocess.Popen([sys.executable, "-m", "examples.relying_party"], env=env)
    except OSError as exc:
        raise click.ClickException(f"cannot start the demo relying party: {exc}") from None
    click.echo(f"\n  IdP:     {settings.issuer}\n  Demo RP: {demo.rp_url}\n"
               f"  Sign in as {DEMO_USERNAME} / {DEMO_PASSWORD}\n  Ctrl-C stops both.\n")
    try:
        run_gunicorn("127.0.0.1", idp_port, 1, settings)
    finally:
        rp.terminate()
        try:
            rp.wait(timeout=5)
        except subprocess.TimeoutExpired:
            rp.kill()
