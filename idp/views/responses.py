"""Delivering authorization responses to the client (RFC 6749 §4.1.2, OAuth 2.0 Form Post
Response Mode, RFC 9207 ``iss``)."""

from __future__ import annotations

import secrets
from urllib.parse import urlencode, urlsplit

from flask import Response, make_response, redirect, render_template, request

from idp.extensions import settings


def deliver(redirect_uri: str, params: list[tuple[str, str]], response_mode: str) -> Response:
    """Send ``params`` (plus ``iss``) to the client's redirect URI by the response mode."""
    params = [*params, ("iss", settings().issuer)]
    if response_mode == "form_post":
        nonce = secrets.token_urlsafe(16)
        response = make_response(render_template(
            "form_post.html", action=redirect_uri, params=params, csp_nonce=nonce))
        target = urlsplit(redirect_uri)
        # The page may post only to the client and run only its own auto-submit script.
        response.headers["Content-Security-Policy"] = (
            f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'self'; "
            f"form-action {target.scheme}://{target.netloc}; frame-ancestors 'none'; "
            "base-uri 'none'")
        response.headers["Cache-Control"] = "no-store"
        return response
    separator = "&" if urlsplit(redirect_uri).query else "?"
    # A response to a form post (sign-in, second factor, consent) is a 303, so the browser
    # fetches the redirect URI with GET and never re-posts the form there (RFC 9110 §15.4.4;
    # RFC 9700 §4.12: a 307 would forward the user's credentials to the client).
    code = 303 if request.method == "POST" else 302
    response = redirect(redirect_uri + separator + urlencode(params), code=code)
    response.headers["Cache-Control"] = "no-store"
    return response
