"""Request hygiene and response hardening shared by every endpoint.

- Parameters must be valid UTF-8 without NUL (DESIGN §7 page contract): 400 otherwise.
- Headers: CSP with ``frame-ancestors 'none'``, no sniffing, no referrer, no caching of pages;
  with an https issuer also HSTS (RFC 6797), so a browser never reaches the IdP over http.
"""

from __future__ import annotations

import secrets
from urllib.parse import unquote_to_bytes, urlsplit

from flask import Flask, Response, g, request

from idp.errors import InvalidRequest

DEFAULT_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
FORM_MIMETYPE = "application/x-www-form-urlencoded"
#: RFC 6797 §6.1: one year; no includeSubDomains (the IdP does not own its parent domain).
HSTS = "max-age=31536000"


def check_encoded(raw: bytes) -> None:
    """A query string or form body whose every name and value, percent-decoded, is UTF-8
    without NUL; :class:`InvalidRequest` otherwise.

    The string is decoded whole rather than pair by pair (this runs on every request): first
    as sent, then percent-decoded. The separators ``&`` and ``=`` are ASCII and never part of
    a multi-byte sequence, so the whole is valid UTF-8 exactly when each part is, and a NUL
    shows up either way. Malformed escapes (``%zz``) stay as they are, as in ``parse_qsl``.
    """
    decoded = raw
    try:
        raw.decode("utf-8", errors="strict")
        if b"%" in raw:
            decoded = unquote_to_bytes(raw)
            decoded.decode("utf-8", errors="strict")
    except UnicodeDecodeError:
        raise InvalidRequest("Parameters must be valid UTF-8.") from None
    if b"\x00" in decoded:
        raise InvalidRequest("Parameters must not contain NUL characters.")


def allow_form_action(url: str) -> None:
    """Let this page's forms lead to ``url``'s origin as well: a form POST on a hosted page
    ends in a redirect to the client's redirect URI, and browsers enforce ``form-action`` on
    every redirect of the navigation a form started (CSP Level 3 §6.4.1)."""
    parts = urlsplit(url)
    if parts.scheme in ("http", "https") and parts.netloc:
        g.setdefault("form_action_origins", set()).add(f"{parts.scheme}://{parts.netloc}")


def _csp() -> str:
    extra = sorted(g.get("form_action_origins", ()))
    if not extra:
        return DEFAULT_CSP
    return DEFAULT_CSP.replace("form-action 'self'", " ".join(["form-action 'self'", *extra]))


def register(app: Flask) -> None:
    https = app.extensions["idp.settings"].secure_cookies  # the issuer is https

    @app.before_request
    def validate_parameters() -> None:
        g.request_id = request.headers.get("X-Request-ID", "")[:64] or secrets.token_hex(8)
        check_encoded(request.query_string)
        if request.method == "POST" and request.mimetype == FORM_MIMETYPE:
            check_encoded(request.get_data(cache=True))

    fixed = [("X-Content-Type-Options", "nosniff"), ("X-Frame-Options", "DENY"),
             # same-origin: our own form posts carry a Referer (Flask-WTF checks it on
             # https, WTF_CSRF_SSL_STRICT), while nothing of our URLs leaks to other sites.
             ("Referrer-Policy", "same-origin")]
    if https:
        fixed.append(("Strict-Transport-Security", HSTS))

    @app.after_request
    def harden(response: Response) -> Response:
        # A view's own value wins; one pass over the response's headers instead of a lookup
        # per default (this runs on every response).
        headers = response.headers
        present = {name.lower() for name, _ in headers.items()}
        for name, value in fixed:
            if name.lower() not in present:
                headers.add(name, value)
        if "content-security-policy" not in present:
            headers.add("Content-Security-Policy", _csp())
        if "cache-control" not in present and response.mimetype == "text/html":
            headers.add("Cache-Control", "no-store")
        headers["X-Request-ID"] = g.get("request_id", "")
        return response
