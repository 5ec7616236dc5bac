"""Demo relying party for stepup-idp: signs in with the OpenID Connect authorization code flow.

Run it with ``python -m examples.relying_party`` (see ``__main__.py``); it serves
http://localhost:5001 and signs in at the IdP on http://localhost:5000.

The flow, with Authlib's Flask client doing the protocol work (see ``provider.py``):

* ``/login`` sends the browser to the IdP's authorization endpoint with state, nonce and a PKCE
  S256 challenge, plus any ``acr_values`` / ``max_age`` / ``prompt`` the user chose;
* ``/callback`` checks the RFC 9207 ``iss`` parameter, shows authorization errors (such as
  ``unmet_authentication_requirements``), redeems the code with ``client_secret_basic``, validates
  the ID token (signature against the JWKS, ``iss``, ``aud``, ``nonce``, ``auth_time`` against
  ``max_age``) and fetches UserInfo;
* ``/`` shows the claims; ``/logout`` ends the session here and at the IdP (RP-Initiated Logout).

Seam for step-up authentication (RFC 9470), not built yet — a "Make a transfer" feature would:

1. add a ``/transfer`` view calling a protected API with the access token from the signed-in
   :class:`~examples.relying_party.store.SignIn` record;
2. on a ``401`` whose ``WWW-Authenticate: Bearer error="insufficient_user_authentication"``
   names ``acr_values`` and/or ``max_age`` (RFC 9470 §3), redirect to ``/login`` with those
   parameters — ``/login`` already forwards them and ``/callback`` already enforces ``max_age``
   and records the requested values in ``SignIn.requested``;
3. carry a return-to target in the saved authorization request (``start_authorization``'s
   ``requested`` data) so that ``/callback`` resumes the transfer instead of going home, and check
   the new ID token's ``acr`` against what the API asked for.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response

from .provider import RelyingParty
from .settings import Settings
from .views import bp

__all__ = ["Settings", "create_app"]

SESSION_COOKIE_NAME = "demo_rp_session"

#: Only the inline <style> block is allowed; no scripts, frames or external assets.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'none'"
)


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the relying party app.

    ``config`` keys (each falling back to a ``DEMO_RP_<KEY>`` environment variable, then to a
    default): ``ISSUER``, ``CLIENT_ID``, ``CLIENT_SECRET``, ``REDIRECT_URI``,
    ``POST_LOGOUT_REDIRECT_URI``, ``SECRET_KEY``. ``SERVER_METADATA`` (a dict of provider metadata)
    replaces fetching the discovery document. Other keys go to ``app.config`` unchanged.
    """
    settings = Settings.resolve(config)
    app = Flask(__name__)
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True
    app.config.update(
        SESSION_COOKIE_NAME=SESSION_COOKIE_NAME,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.redirect_uri.startswith("https://"),
    )
    app.config.update(config or {})
    app.config.update(
        ISSUER=settings.issuer,
        CLIENT_ID=settings.client_id,
        CLIENT_SECRET=settings.client_secret,
        REDIRECT_URI=settings.redirect_uri,
        POST_LOGOUT_REDIRECT_URI=settings.post_logout_redirect_uri,
        SECRET_KEY=settings.secret_key,
    )
    RelyingParty.init_app(app, settings)
    app.register_blueprint(bp)
    app.after_request(_security_headers)
    return app


def _security_headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Cache-Control", "no-store")
    return response
