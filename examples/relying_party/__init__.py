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
* ``/`` shows the claims and the transfer form; ``/logout`` ends the session here and at the
  IdP (RP-Initiated Logout).

Step-up authentication (RFC 9470), with the demo resource server (``examples/resource_server``,
``RESOURCE_URL``, default http://localhost:5002) whose ``POST /transfers`` requires ``acr`` aal2
or stronger and an ``auth_time`` at most 300 s old:

1. the "Make a transfer" form on the signed-in home page posts to ``/transfer`` (with a
   per-session CSRF token), which calls the API server-side with the access token of the
   :class:`~examples.relying_party.store.SignIn` record (``transfers.py``);
2. on ``401`` with ``WWW-Authenticate: Bearer error="insufficient_user_authentication"`` (or
   ``invalid_token``: an expired token) the transfer waits in the session under a random id and
   the browser goes to ``/login`` with the challenge's ``acr_values`` / ``max_age`` and
   ``resume=<id>``; ``/login`` keeps the id with the saved authorization request;
3. ``/callback`` validates the new ID token as usual (``max_age`` included), then — only for the
   authorization request that carries that id, and only once — retries the transfer with the
   new access token and shows the receipt with the ID token's ``acr`` / ``amr`` /
   ``auth_time``. A second refusal is reported, not answered with another round trip.

Which ``acr_values`` a step-up asks for: the challenge's, so that whatever the IdP returns
satisfies the API. The user's own preference from the sign-in form is kept only where it is
stronger: values of that preference ranking above every value of the challenge go first (a
user who signed in with ``phr aal2`` steps up with ``acr_values="phr aal2"`` for an ``aal2``
challenge, and gets ``acr=phr`` if a passkey is at hand); weaker or unknown values are dropped.
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
    ``POST_LOGOUT_REDIRECT_URI``, ``SECRET_KEY``, ``RESOURCE_URL``. ``SERVER_METADATA`` (a dict
    of provider metadata) replaces fetching the discovery document. Other keys go to
    ``app.config`` unchanged.
    """
    settings = Settings.resolve(config)
    app = Flask(__name__)
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True
    secure = settings.redirect_uri.startswith("https://")
    app.config.update(
        # __Host-demo_rp_session over https (Secure, Path=/, no Domain: RFC 6265bis §4.1.3.2).
        SESSION_COOKIE_NAME=f"__Host-{SESSION_COOKIE_NAME}" if secure else SESSION_COOKIE_NAME,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=secure,
        SESSION_COOKIE_PATH="/",
        SESSION_COOKIE_DOMAIN=None,
    )
    app.config.update(config or {})
    app.config.update(
        ISSUER=settings.issuer,
        CLIENT_ID=settings.client_id,
        CLIENT_SECRET=settings.client_secret,
        REDIRECT_URI=settings.redirect_uri,
        POST_LOGOUT_REDIRECT_URI=settings.post_logout_redirect_uri,
        SECRET_KEY=settings.secret_key,
        RESOURCE_URL=settings.resource_url,
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
