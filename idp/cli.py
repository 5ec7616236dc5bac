"""The ``idp`` command line (a Flask CLI group): serve, init, demo, users, clients, keys."""

from __future__ import annotations

import getpass
import json
import sys
import time
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext
from sqlalchemy import select

from idp.extensions import db

ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def _create_app() -> Flask:
    from idp import create_app
    from idp.config import ConfigError

    try:
        return create_app()
    except ConfigError as exc:
        # A configuration mistake is the operator's to fix: one line, no traceback.
        click.echo(f"Error: {exc}", err=True)
        raise SystemExit(2) from None


@click.group(cls=FlaskGroup, create_app=_create_app, add_default_commands=False,
             add_version_option=False)
def main() -> None:
    """stepup-idp: OpenID Connect provider with step-up authentication."""


def register_commands(app: Flask) -> None:
    """Attach the command groups to ``app`` (Flask also finds them via ``flask --app idp``)."""
    for command in (init_command, serve_command, demo_command, users, clients, keys, policy):
        app.cli.add_command(command)


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True))


# -- init / serve ------------------------------------------------------------------------------

def initialise(app: Flask) -> list[str]:
    """Migrate the database and create missing signing keys; returns the new key ids."""
    from idp import database, oidc

    database.upgrade(app)
    with app.app_context():
        return oidc.keyring().ensure()


@click.command("init")
@with_appcontext
def init_command() -> None:
    """Create or migrate the database and generate signing keys."""
    created = initialise(current_app)
    click.echo(f"database ready; {len(created)} new signing key(s)")


@click.command("serve")
@click.option("--host", default=None, help="Bind address (default: server.host).")
@click.option("--port", type=int, default=None, help="Port (default: server.port).")
@click.option("--workers", type=int, default=None,
              help="Worker processes (default: server.workers).")
@with_appcontext
def serve_command(host: str | None, port: int | None, workers: int | None) -> None:
    """Run the IdP under gunicorn (production mode)."""
    from idp.server import run_gunicorn

    settings = current_app.extensions["idp.settings"]
    run_gunicorn(host or settings.server.host, port or settings.server.port,
                 workers or settings.server.workers, settings)


@click.command("demo")
@click.option("--idp-port", type=int, default=5000)
@click.option("--rp-port", type=int, default=5001)
@with_appcontext
def demo_command(idp_port: int, rp_port: int) -> None:
    """Seed the demo user and relying party, then run the IdP, the demo RP and the demo
    resource server (Ctrl-C stops all three)."""
    from idp.demo import run_demo

    run_demo(current_app, idp_port, rp_port)


# -- users -------------------------------------------------------------------------------------

@click.group()
def users() -> None:
    """Manage users."""


@users.command("create")
@click.argument("username")
@click.option("--email", default=None)
@click.option("--name", default=None)
@click.option("--password", default=None, help="Read from a prompt when omitted.")
@with_appcontext
def users_create(username: str, email: str | None, name: str | None,
                 password: str | None) -> None:
    """Create a user with a password."""
    from idp.users import UserError, create_user

    if password is None:
        password = (getpass.getpass("Password: ") if sys.stdin.isatty()
                    else sys.stdin.readline().rstrip("\n"))
    try:
        user = create_user(username=username, password=password, email=email, name=name)
    except UserError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"created user {user.username} ({user.id})")


@users.command("list")
@with_appcontext
def users_list() -> None:
    """List users."""
    from idp.models import User

    for user in db.session.scalars(select(User).order_by(User.username)):
        state = "disabled" if user.disabled else "active"
        click.echo(f"{user.id}  {user.username:<30} {user.email or '-':<30} {state}")


@users.command("disable")
@click.argument("username")
@with_appcontext
def users_disable(username: str) -> None:
    """Disable a user: sign-in refused, tokens revoked."""
    from idp.users import UserError, disable_user

    try:
        disable_user(username)
    except UserError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"disabled {username}")


# -- clients -----------------------------------------------------------------------------------

@click.group()
def clients() -> None:
    """Manage relying parties (OAuth clients)."""


@clients.command("create")
@click.option("--name", required=True)
@click.option("--client-id", default=None, help="Default: random.")
@click.option("--redirect-uri", "redirect_uris", multiple=True)
@click.option("--post-logout-redirect-uri", "logout_uris", multiple=True)
@click.option("--grant-type", "grant_types", multiple=True,
              type=click.Choice(["authorization_code", "refresh_token", "client_credentials"]))
@click.option("--scope", default="openid profile email")
@click.option("--auth-method", default="client_secret_basic",
              type=click.Choice(["client_secret_basic", "client_secret_post", "none"]))
@click.option("--first-party", is_flag=True, help="Skip the consent page.")
@click.option("--minimum-acr", default=None)
@click.option("--default-acr-values", default="", help="Space-separated.")
@click.option("--default-max-age", type=int, default=None)
@click.option("--require-acr-values", is_flag=True)
@with_appcontext
def clients_create(name: str, client_id: str | None, redirect_uris: tuple[str, ...],
                   logout_uris: tuple[str, ...], grant_types: tuple[str, ...], scope: str,
                   auth_method: str, first_party: bool, minimum_acr: str | None,
                   default_acr_values: str, default_max_age: int | None,
                   require_acr_values: bool) -> None:
    """Register a client; prints its secret once."""
    from idp import audit
    from idp.errors import IdpError
    from idp.oidc.clients import register_client

    settings = current_app.extensions["idp.settings"]
    try:
        registered = register_client(
            name=name, client_id=client_id, redirect_uris=list(redirect_uris),
            post_logout_redirect_uris=list(logout_uris),
            grant_types=list(grant_types) or None, scope=scope, auth_method=auth_method,
            first_party=first_party, production=settings.production, minimum_acr=minimum_acr,
            default_acr_values=default_acr_values.split(), default_max_age=default_max_age,
            require_acr_values=require_acr_values)
    except IdpError as exc:
        raise click.ClickException(exc.description) from None
    audit.record("client.created", client_id=registered.client.client_id, actor="cli")
    _echo_json({"client_id": registered.client.client_id, "client_secret": registered.secret})
    if registered.secret:
        click.echo("The secret is shown only now: store it safely.", err=True)


@clients.command("list")
@with_appcontext
def clients_list() -> None:
    """List clients."""
    from idp.models import Client

    for client in db.session.scalars(select(Client).order_by(Client.client_id)):
        click.echo(f"{client.client_id:<30} {client.name:<30} {client.token_endpoint_auth_method}")


@clients.command("show")
@click.argument("client_id")
@with_appcontext
def clients_show(client_id: str) -> None:
    """Show a client's registration (never its secret)."""
    from idp.models import Client

    client = db.session.get(Client, client_id)
    if client is None:
        raise click.ClickException(f"no client {client_id!r}")
    _echo_json({
        "client_id": client.client_id, "name": client.name,
        "redirect_uris": client.redirect_uris,
        "post_logout_redirect_uris": client.post_logout_redirect_uris,
        "grant_types": client.grant_types, "scope": client.scope,
        "token_endpoint_auth_method": client.token_endpoint_auth_method,
        "first_party": client.first_party, "minimum_acr": client.minimum_acr,
        "default_acr_values": client.default_acr_values,
        "default_max_age": client.default_max_age,
        "require_acr_values": client.require_acr_values, "disabled": client.disabled,
    })


# -- keys --------------------------------------------------------------------------------------

@click.group()
def keys() -> None:
    """Manage signing keys."""


@keys.command("list")
@with_appcontext
def keys_list() -> None:
    """List signing keys and their state."""
    from idp.models import SigningKey

    now = int(time.time())
    for key in db.session.scalars(select(SigningKey).order_by(SigningKey.alg,
                                                              SigningKey.created_at)):
        until = ""
        if key.expires_at:
            until = f" published until {time.strftime(ISO_FORMAT, time.gmtime(key.expires_at))}"
        expired = " (expired)" if key.expires_at and key.expires_at <= now else ""
        click.echo(f"{key.alg:<6} {key.state:<8} {key.kid}{until}{expired}")


@keys.command("rotate")
@click.option("--alg", "algs", multiple=True, help="Algorithm(s) to rotate (default: all).")
@with_appcontext
def keys_rotate(algs: tuple[str, ...]) -> None:
    """Promote the pre-published key, retire the active one, pre-publish a new one."""
    from idp import audit, oidc

    ring = oidc.keyring()
    for alg in algs or ring.algorithms:
        try:
            rotation = ring.rotate(alg)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
        audit.record("key.rotated", actor="cli", alg=alg, retired_kid=rotation.retired_kid,
                     active_kid=rotation.active_kid, next_kid=rotation.next_kid)
        click.echo(f"{alg}: active {rotation.active_kid}, next {rotation.next_kid}, "
                   f"retired {rotation.retired_kid or '-'}")
    purged = ring.purge_expired()
    if purged:
        click.echo(f"removed {purged} expired key(s)")




# -- policy ------------------------------------------------------------------------------------

@click.group()
def policy() -> None:
    """Inspect the MFA policy."""


@policy.command("explain")
@click.option("--user", "username", required=True)
@click.option("--client", "client_id", required=True)
@click.option("--acr-values", default="", help="Space-separated, as an RP would send them.")
@click.option("--max-age", type=int, default=None)
@click.option("--new-device", is_flag=True)
@click.option("--country", default=None, help="Two-letter country code of this sign-in "
              "(default: the --ip address looked up in policy.geoip_database, if configured).")
@click.option("--ip", default=None, help="Client address of this sign-in.")
@click.option("--failures", type=int, default=0, help="Recent failed password attempts.")
@with_appcontext
def policy_explain(username: str, client_id: str, acr_values: str, max_age: int | None,
                   new_device: bool, country: str | None, ip: str | None,
                   failures: int) -> None:
    """The level a sign-in would need, the rules that caused it, and the next step."""
    from idp.policy.explain import ExplainError, explain

    try:
        result = explain(username, client_id, acr_values.split(), new_device=new_device,
                         country=country.upper() if country else None, ip=ip,
                         recent_failures=failures)
    except ExplainError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"required level: {result.required or 'none beyond a sign-in'}")
    if max_age is not None:
        click.echo(f"max_age {max_age}: a session older than that signs in again first")
    click.echo("because:")
    for line in result.trace:
        click.echo(f"  - {line}")
    click.echo(f"reachable with enrolled factors: {', '.join(result.reachable) or 'none'}")
    click.echo(f"next step: {result.next_step}")
