"""stepup-idp: an OpenID Connect provider with exact, standard step-up authentication.

Build the application only through :func:`create_app` (nothing is created at import time).
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask import Flask

from idp.assurance import Ladder
from idp.config import ConfigError, Settings, load_settings

if TYPE_CHECKING:
    from idp.policy.geoip import CountryDatabase

__all__ = ["create_app"]

SECRET_FILE = "secret_key"


def create_app(overrides: Mapping[str, Any] | None = None,
               environ: Mapping[str, str] | None = None) -> Flask:
    """The application: config → extensions → blueprints → CLI.

    ``overrides`` take precedence over the configuration file and environment (tests use it).
    Raises :class:`idp.config.ConfigError` naming the bad setting.
    """
    settings = load_settings(overrides, environ)
    instance_path = os.path.abspath(settings.instance_path)
    app = Flask("idp", instance_path=instance_path, instance_relative_config=False)
    app.extensions["idp.settings"] = settings
    app.config.update(
        SECRET_KEY=_secret_key(settings, instance_path),
        SQLALCHEMY_DATABASE_URI=_database_url(settings.database_url, instance_path),
        SQLALCHEMY_ENGINE_OPTIONS=_engine_options(settings.database_url),
        MAX_CONTENT_LENGTH=settings.server.max_request_bytes,
        MAX_FORM_MEMORY_SIZE=settings.server.max_request_bytes,
        WTF_CSRF_TIME_LIMIT=None,  # bound to the session, which has its own lifetime
        WTF_CSRF_SSL_STRICT=True,
        JSON_SORT_KEYS=False,
    )
    _configure_logging(settings)

    from idp import database, extensions, oidc, sessions
    from idp.cli import register_commands
    from idp.factors import credential_memo
    from idp.views import (
        account,
        errors,
        health,
        interaction,
        interaction_mfa,
        logout,
        pages,
        passkey_login,
        security,
    )
    from idp.views import oidc as oidc_views

    extensions.db.init_app(app)
    with app.app_context():
        database.enable_sqlite_pragmas(extensions.db.engine)
        database.drop_closed_connections(extensions.db.engine)
    credential_memo.install()
    extensions.store.init_app(app)
    extensions.csrf.init_app(app)
    app.session_interface = sessions.StoreSessionInterface(
        app.extensions["idp.store"], settings.session.cookie_name,
        settings.session.absolute_timeout, settings.session.idle_timeout,
        settings.secure_cookies)
    app.extensions["idp.ladder"] = build_ladder(settings)
    _load_policy(app, settings)
    oidc.init_app(app)
    from idp.factors.registry import load_registry

    app.extensions["idp.factors"] = load_registry(list(settings.policy.allowed_factors))

    # Their routes are registered on import.
    assert interaction_mfa.bp is interaction.bp and passkey_login.bp is interaction.bp
    for blueprint in (pages.bp, oidc_views.bp, interaction.bp, logout.bp, account.bp, health.bp):
        app.register_blueprint(blueprint)
    from idp import metrics, request_log

    request_log.register(app)  # first: its timer starts before, and its line follows, the rest
    metrics.init_app(app)
    from idp.wsgi_limits import BodyLimit

    app.wsgi_app = BodyLimit(app.wsgi_app, settings.server.max_request_bytes)  # type: ignore[method-assign]
    from idp.proxy import TrustedProxies, parse_networks

    # Outermost: everything inside (request log, throttles, audit) sees the client address.
    app.wsgi_app = TrustedProxies(  # type: ignore[method-assign]
        app.wsgi_app, parse_networks(settings.trusted_proxies))
    security.register(app)
    errors.register(app)
    from idp import api

    api.init_app(app)

    @app.context_processor
    def branding() -> dict[str, Any]:
        return {"branding": settings.branding}

    @app.template_filter("isotime")
    def isotime(value: int | None) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(value)) if value else ""

    register_commands(app)
    return app


def build_ladder(settings: Settings) -> Ladder:
    """The acr ladder from ``acr.levels``; a malformed level is a configuration error."""
    try:
        return Ladder.from_config(settings.get("acr.levels"),
                                  bool(settings.get("policy.email_counts_as_factor", False)))
    except (KeyError, ValueError, TypeError) as exc:
        raise ConfigError(f"setting 'acr.levels' is invalid: {exc}") from None


def _load_policy(app: Flask, settings: Settings) -> None:
    """Compile ``policy.rules`` and ``policy.since`` once; mistakes are configuration errors."""
    from idp.policy.rules import PolicyError, parse_rules

    try:
        app.extensions["idp.rules"] = parse_rules(settings.get("policy.rules"),
                                                  app.extensions["idp.ladder"])
    except PolicyError as exc:
        raise ConfigError(str(exc)) from None
    policy = settings.get("policy")
    if policy["enforcement"] not in ("off", "optional", "required"):
        raise ConfigError("setting 'policy.enforcement' must be off, optional or required")
    if policy["applies_to"] not in ("all", "new_users"):
        raise ConfigError("setting 'policy.applies_to' must be all or new_users")
    since = policy.get("since")
    try:
        parsed = None if since is None else int(
            datetime.fromisoformat(str(since)).replace(tzinfo=UTC).timestamp()
            if not str(since).isdigit() else int(since))
    except ValueError:
        raise ConfigError("setting 'policy.since' must be an ISO date or epoch seconds") \
            from None
    app.extensions["idp.policy"] = policy
    app.extensions["idp.policy_since"] = parsed
    app.extensions["idp.geoip"] = _open_geoip(policy.get("geoip_database"))


def _open_geoip(path: str | None) -> CountryDatabase | None:
    """The MaxMind country database, opened once for the process (``policy.geoip_database``)."""
    if not path:
        return None
    from idp.policy.geoip import CountryDatabase, GeoIPError  # only when configured

    try:
        return CountryDatabase(path)
    except GeoIPError as exc:
        raise ConfigError(f"setting 'policy.geoip_database': {exc}") from None


def _secret_key(settings: Settings, instance_path: str) -> str:
    """The master secret; in development a random one is kept in the instance folder so
    encrypted keys stay readable across restarts."""
    if settings.secret_key:
        return str(settings.secret_key)
    path = Path(instance_path) / SECRET_FILE
    if path.exists():
        return path.read_text("utf-8").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    return value


def _database_url(url: str, instance_path: str) -> str:
    """SQLite paths are relative to the instance folder, which is created if missing."""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////") and url != "sqlite:///:memory:":
        Path(instance_path).mkdir(parents=True, exist_ok=True)
        return "sqlite:///" + os.path.join(instance_path, url[len("sqlite:///"):])
    return url


#: PostgreSQL connections older than this are replaced at checkout (server or proxy limits on
#: a connection's age; a fresh connection every half hour costs nothing measurable).
PG_POOL_RECYCLE_SECONDS = 1800


def _engine_options(url: str) -> dict[str, Any]:
    if url.startswith("postgresql"):
        # Bounded waits: an unreachable database becomes a quick 503, never a hung worker.
        # No pool_pre_ping (a round trip per request): closed connections are dropped at
        # checkout by database.drop_closed_connections, old ones by pool_recycle, and TCP
        # keepalives notice a peer that vanished without closing.
        return {"pool_pre_ping": False, "pool_recycle": PG_POOL_RECYCLE_SECONDS,
                "pool_size": 10, "max_overflow": 10, "pool_timeout": 5,
                "connect_args": {"connect_timeout": 5, "keepalives": 1,
                                 "keepalives_idle": 30, "keepalives_interval": 10,
                                 "keepalives_count": 3}}
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 15}}
    return {"pool_pre_ping": True}


def _configure_logging(settings: Settings) -> None:
    logger = logging.getLogger("idp")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
