"""Settings of the demo relying party: config dict, then ``DEMO_RP_*`` env vars, then defaults."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Config key -> (environment variable, default). ``None`` default = unset unless configured.
OPTIONS: dict[str, tuple[str, str | None]] = {
    "ISSUER": ("DEMO_RP_ISSUER", "http://localhost:5000"),
    "CLIENT_ID": ("DEMO_RP_CLIENT_ID", "demo-rp"),
    "CLIENT_SECRET": ("DEMO_RP_CLIENT_SECRET", None),
    "REDIRECT_URI": ("DEMO_RP_REDIRECT_URI", "http://localhost:5001/callback"),
    "POST_LOGOUT_REDIRECT_URI": ("DEMO_RP_POST_LOGOUT_REDIRECT_URI", "http://localhost:5001/"),
    "SECRET_KEY": ("DEMO_RP_SECRET_KEY", None),
    "RESOURCE_URL": ("DEMO_RP_RESOURCE_URL", "http://localhost:5002"),
}

DISCOVERY_PATH = "/.well-known/openid-configuration"


@dataclass(frozen=True)
class Settings:
    """Resolved settings of the relying party."""

    issuer: str
    client_id: str
    client_secret: str | None
    redirect_uri: str
    post_logout_redirect_uri: str
    secret_key: str
    #: Base URL of the demo resource server whose ``POST /transfers`` needs a step-up.
    resource_url: str = "http://localhost:5002"
    #: Provider metadata to use instead of fetching the discovery document (tests, offline demos).
    server_metadata: Mapping[str, Any] | None = None

    @property
    def discovery_url(self) -> str:
        """OIDC Discovery 1.0 §4: the issuer (minus a trailing slash) + the well-known path."""
        return self.issuer.rstrip("/") + DISCOVERY_PATH

    @classmethod
    def resolve(cls, config: Mapping[str, Any] | None = None,
                environ: Mapping[str, str] | None = None) -> Settings:
        """Resolve every option from ``config``, then ``environ``, then the built-in default.

        An unset ``SECRET_KEY`` becomes a random one: sessions then end when the process does,
        which is also when the in-memory token store forgets its tokens.
        """
        config = config or {}
        environ = os.environ if environ is None else environ
        values: dict[str, str | None] = {}
        for key, (env_name, default) in OPTIONS.items():
            value = config.get(key)
            if value in (None, ""):
                value = environ.get(env_name) or default
            values[key] = value
        metadata = config.get("SERVER_METADATA")
        return cls(
            issuer=str(values["ISSUER"]),
            client_id=str(values["CLIENT_ID"]),
            client_secret=values["CLIENT_SECRET"],
            redirect_uri=str(values["REDIRECT_URI"]),
            post_logout_redirect_uri=str(values["POST_LOGOUT_REDIRECT_URI"]),
            secret_key=values["SECRET_KEY"] or secrets.token_urlsafe(32),
            resource_url=str(values["RESOURCE_URL"]).rstrip("/"),
            server_metadata=dict(metadata) if metadata is not None else None,
        )
