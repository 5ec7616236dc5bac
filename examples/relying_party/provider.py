"""The relying party's view of the IdP: Authlib's Flask OAuth client plus the checks around it.

Authlib does the protocol work — discovery, state, nonce, PKCE S256, the token request with
``client_secret_basic``, and ID token validation against the JWKS. This module adds what an
application must still decide for itself: which issuer it trusts (OIDC Discovery §4.3, RFC 9207),
that the ID token's ``aud`` names this client, and that ``auth_time`` honours a requested
``max_age``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests
from authlib.integrations.flask_client import FlaskOAuth2App, OAuth
from flask import Flask, current_app, session

from .settings import Settings
from .store import SignInStore

EXTENSION_KEY = "demo_relying_party"
CLIENT_NAME = "idp"
SCOPE = "openid profile email"
HTTP_TIMEOUT = 10
#: Allowed clock skew, in seconds, when checking exp/iat/auth_time.
LEEWAY = 120


class ProviderError(Exception):
    """The IdP cannot be used: discovery failed or describes a different issuer."""


class IssuerMismatchError(Exception):
    """An authorization response failed the RFC 9207 ``iss`` check (possible mix-up attack)."""


@dataclass
class RelyingParty:
    """Everything the views need: settings, the Authlib client and the sign-in store."""

    settings: Settings
    client: FlaskOAuth2App
    store: SignInStore

    @classmethod
    def init_app(cls, app: Flask, settings: Settings) -> RelyingParty:
        """Register the OAuth client with ``app`` and attach the relying party to it."""
        oauth = OAuth(app)
        client_kwargs = {
            "scope": SCOPE,
            "code_challenge_method": "S256",
            "token_endpoint_auth_method": "client_secret_basic",
            "default_timeout": HTTP_TIMEOUT,
        }
        if settings.server_metadata is not None:
            # Explicit endpoints instead of discovery; Authlib keeps extra kwargs as metadata.
            discovery: dict[str, Any] = dict(settings.server_metadata)
        else:
            discovery = {"server_metadata_url": settings.discovery_url}
        client = oauth.register(
            CLIENT_NAME,
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            client_kwargs=client_kwargs,
            **discovery,
        )
        rp = cls(settings=settings, client=client, store=SignInStore())
        app.extensions[EXTENSION_KEY] = rp
        return rp

    def metadata(self) -> dict[str, Any]:
        """The IdP's metadata, fetched once; its ``issuer`` must be the configured one."""
        try:
            metadata: dict[str, Any] = self.client.load_server_metadata()
        except (requests.RequestException, ValueError) as exc:
            raise ProviderError(
                f"Could not load the IdP's discovery document {self.settings.discovery_url}: "
                f"{exc}") from exc
        if metadata.get("issuer") != self.settings.issuer:
            raise ProviderError(
                f"The discovery document names issuer {metadata.get('issuer')!r}, "
                f"but this relying party is configured for {self.settings.issuer!r}.")
        return metadata

    def check_response_issuer(self, iss: str | None) -> None:
        """RFC 9207 §2.4: the ``iss`` of an authorization response must be our issuer.

        A missing ``iss`` is accepted only if the IdP does not advertise
        ``authorization_response_iss_parameter_supported``.
        """
        if iss is None:
            if self.metadata().get("authorization_response_iss_parameter_supported"):
                raise IssuerMismatchError(
                    "The authorization response has no 'iss' parameter, although the IdP "
                    "advertises authorization_response_iss_parameter_supported (RFC 9207).")
            return
        if iss != self.settings.issuer:
            raise IssuerMismatchError(
                f"The authorization response comes from issuer {iss!r}, not from "
                f"{self.settings.issuer!r} (RFC 9207).")

    def start_authorization(self, params: Mapping[str, str], resume: str | None = None) -> str:
        """The authorization request URL; its state, nonce and PKCE verifier go in the session.

        ``params`` (acr_values, max_age, prompt) are sent as extra authorize parameters and kept
        with the state, so the callback knows what was asked for. ``resume`` (the id of a
        transfer waiting for this sign-in) is kept with the state only.
        """
        self.metadata()
        redirect_uri = self.settings.redirect_uri
        request = self.client.create_authorization_url(redirect_uri, **params)
        self.client.save_authorize_data(redirect_uri=redirect_uri, requested=dict(params),
                                        resume=resume, **request)
        url: str = request["url"]
        return url

    def pending_request(self, state: str | None) -> dict[str, Any] | None:
        """What :meth:`start_authorization` saved for ``state``; ``None`` if unknown/expired."""
        if not state:
            return None
        return self.client.framework.get_state_data(session, state)

    def forget_request(self, state: str | None) -> None:
        """Drop the stored authorization request for ``state``, if any."""
        if state:
            self.client.framework.clear_state_data(session, state)

    def id_token_claims_options(self, requested: Mapping[str, str]) -> dict[str, Any]:
        """Claim checks for Authlib's ID token validation (signature and nonce come built in).

        Authlib checks ``iss`` only and ``aud`` only indirectly (through ``azp``), so both are
        pinned here (OIDC Core §3.1.3.7, items 2 and 3). With ``max_age`` the ID token must carry
        an ``auth_time`` no older than that (items 12-13 and §3.1.2.1).
        """
        options: dict[str, Any] = {
            "iss": {"essential": True, "value": self.settings.issuer},
            "aud": {"essential": True, "value": self.settings.client_id},
        }
        if "max_age" in requested:
            max_age = int(requested["max_age"])

            def recent_enough(_claims: Any, auth_time: Any) -> bool:
                return (isinstance(auth_time, int | float)
                        and time.time() - auth_time <= max_age + LEEWAY)

            options["auth_time"] = {"essential": True, "validate": recent_enough}
        return options


def relying_party() -> RelyingParty:
    """The :class:`RelyingParty` of the current app."""
    rp: RelyingParty = current_app.extensions[EXTENSION_KEY]
    return rp
