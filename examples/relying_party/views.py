"""Routes of the demo relying party: home, login, callback, logout, and the transfer that
needs a step-up (``/transfer``)."""

from __future__ import annotations

import hmac
import json
import re
import secrets
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.flask_client import OAuthError
from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from joserfc.errors import JoseError

from .provider import LEEWAY, IssuerMismatchError, ProviderError, RelyingParty, relying_party
from .store import SignIn
from .transfers import InvalidTransfer, Outcome, Transfer, send_transfer

bp = Blueprint("rp", __name__)

#: Cookie-session key holding the handle of the current sign-in in the store.
SIGN_IN_KEY = "sign_in"
#: Cookie-session keys: the per-session CSRF token of the transfer form, the transfer waiting
#: for a step-up (``Transfer.to_pending``) and the receipt to show once on the home page.
CSRF_KEY = "csrf_token"
PENDING_TRANSFER_KEY = "pending_transfer"
RECEIPT_KEY = "transfer_receipt"

#: acr_values offered on the home page (space-separated, most preferred first).
ACR_CHOICES: list[tuple[str, str]] = [
    ("", "none (the IdP's default)"),
    ("aal2", "aal2 (two factors)"),
    ("phr aal2", "phr aal2 (phishing-resistant preferred, aal2 accepted)"),
]

#: Claims shown in the table, in this order.
SHOWN_CLAIMS = ("sub", "acr", "amr", "auth_time", "sid", "iss", "aud", "exp")
TIME_CLAIMS = frozenset({"auth_time", "exp", "iat"})

MAX_PARAM_LENGTH = 200
MAX_AGE_PATTERN = re.compile(r"[0-9]{1,9}")
#: ``resume`` on /login: the id of the pending transfer the sign-in is for.
RESUME_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")

#: Explanations of authorization error codes (RFC 6749 §4.1.2.1, OIDC Core §3.1.2.6).
ERROR_HINTS: dict[str, str] = {
    "unmet_authentication_requirements": (
        "The IdP could not authenticate you as strongly or as recently as this app asked "
        "(acr_values / max_age), for example because no suitable factor is enrolled."),
    "login_required": "Sign-in without interaction (prompt=none) was asked for, but you are "
                      "not signed in at the IdP.",
    "interaction_required": "The IdP needs to interact with you, but prompt=none was asked for.",
    "consent_required": "The IdP needs your consent, but prompt=none was asked for.",
    "access_denied": "The sign-in was cancelled or refused.",
    "invalid_request": "The IdP rejected the sign-in request as malformed.",
    "invalid_scope": "The IdP rejected the requested scope.",
    "unauthorized_client": "The IdP does not allow this client to sign in this way.",
    "temporarily_unavailable": "The IdP is temporarily unavailable; try again shortly.",
}


@bp.get("/")
def home() -> ResponseReturnValue:
    """Signed out: the sign-in form. Signed in: the ID token claims and the UserInfo response.

    Also the landing page of RP-initiated logout, whose ``state`` is checked here.
    """
    rp = relying_party()
    if "state" in request.args:
        _check_logout_response(rp)
    handle = session.get(SIGN_IN_KEY)
    sign_in = rp.store.get(handle)
    if handle and sign_in is None:
        session.pop(SIGN_IN_KEY)
        flash("Your session at this app has ended (it expired or the app restarted).")
    context: dict[str, Any] = {
        "sign_in": sign_in, "acr_choices": ACR_CHOICES, "issuer": rp.settings.issuer,
        "resource_url": rp.settings.resource_url, "receipt": session.pop(RECEIPT_KEY, None),
    }
    if sign_in is not None:
        context.update(_sign_in_context(sign_in))
    return render_template("home.html", **context)


@bp.get("/logged-out")
def logged_out() -> ResponseReturnValue:
    """The home page under the name some POST_LOGOUT_REDIRECT_URI configurations use."""
    return home()


@bp.get("/login")
def login() -> ResponseReturnValue:
    """Start the authorization code flow, passing acr_values / max_age / prompt through.

    ``resume`` (set by :func:`transfer`) names the pending transfer this sign-in is for; it is
    kept with the authorization request, not sent to the IdP.
    """
    rp = relying_party()
    expected_host = urlsplit(rp.settings.redirect_uri).netloc
    if request.host != expected_host:
        # The session cookie holding state, nonce and PKCE verifier must be sent back to the
        # redirect URI, so the flow has to start on the same host name (localhost ≠ 127.0.0.1).
        query = request.query_string.decode()
        target = f"{urlsplit(rp.settings.redirect_uri).scheme}://{expected_host}{request.path}"
        return redirect(f"{target}?{query}" if query else target)
    try:
        params = authorize_params(request.args)
    except ValueError as exc:
        return error_page("Invalid sign-in request", str(exc), 400)
    resume = request.args.get("resume", "")
    if resume and not RESUME_PATTERN.fullmatch(resume):
        return error_page("Invalid sign-in request", "resume is malformed.", 400)
    if not rp.settings.client_secret:
        return error_page(
            "Client secret missing",
            "Set DEMO_RP_CLIENT_SECRET (or CLIENT_SECRET in the config) to the secret the IdP "
            f"issued for client {rp.settings.client_id!r}.", 500)
    try:
        url = rp.start_authorization(params, resume=resume or None)
    except ProviderError as exc:
        return error_page("Identity provider unavailable", str(exc), 502)
    return redirect(url)


@bp.get("/callback")
def callback() -> ResponseReturnValue:
    """Finish the flow: check ``iss``, report errors, redeem the code, validate the ID token."""
    rp = relying_party()
    args = request.args
    state = args.get("state")
    try:
        rp.check_response_issuer(args.get("iss"))
    except ProviderError as exc:
        return error_page("Identity provider unavailable", str(exc), 502)
    except IssuerMismatchError as exc:
        rp.forget_request(state)
        return error_page("Response from an unexpected issuer", str(exc), 400)

    if "error" in args:
        if (rp.pending_request(state) or {}).get("resume"):
            session.pop(PENDING_TRANSFER_KEY, None)
        rp.forget_request(state)
        return _authorization_error_page(args)

    pending = rp.pending_request(state)
    if pending is None:
        return error_page(
            "Unknown sign-in attempt",
            "The response's state matches no sign-in started from this browser (it may have "
            "expired, been used already, or been started on another host name).", 400)
    requested: dict[str, str] = pending.get("requested") or {}

    try:
        token = rp.client.authorize_access_token(
            claims_options=rp.id_token_claims_options(requested), leeway=LEEWAY)
    except JoseError as exc:
        return error_page("ID token rejected", f"The ID token failed validation: {exc}", 400)
    except requests.RequestException as exc:
        return error_page("Identity provider unavailable",
                          f"The token request failed: {exc}", 502)
    except AuthlibBaseError as exc:
        return error_page("Token request failed", str(exc), 400)
    claims = token.get("userinfo")
    if claims is None:
        return error_page("No ID token", "The token response carries no ID token.", 400)

    userinfo, userinfo_error = _fetch_userinfo(rp, token, claims["sub"])
    sign_in = SignIn(
        id_token=token["id_token"], claims=dict(claims),
        access_token=token.get("access_token"), refresh_token=token.get("refresh_token"),
        expires_at=token.get("expires_at"), scope=token.get("scope"),
        userinfo=userinfo, userinfo_error=userinfo_error, requested=requested,
    )
    # The transfer this sign-in was started for, if any (see transfer()).
    resume = pending.get("resume")
    pending_transfer = Transfer.from_pending(session.get(PENDING_TRANSFER_KEY), resume)
    # A fresh session for the new sign-in (no fixation of an earlier one).
    rp.store.pop(session.get(SIGN_IN_KEY))
    session.clear()
    session[SIGN_IN_KEY] = rp.store.add(sign_in)
    if pending_transfer is not None:
        _retry_transfer(rp, sign_in, pending_transfer)
    elif resume:
        flash("The transfer waiting for this sign-in has expired; it was not made. "
              "Make it again if you still want it.")
    return redirect(url_for(".home"))


@bp.post("/transfer")
def transfer() -> ResponseReturnValue:
    """Make a transfer at the resource server with the signed-in user's access token.

    On an RFC 9470 challenge the transfer waits in the session and the browser goes through
    ``/login`` with the challenge's ``acr_values`` / ``max_age`` (see
    :meth:`~examples.relying_party.transfers.Challenge.authorize_params`); ``/callback`` then
    retries it once with the new token.
    """
    rp = relying_party()
    if not _csrf_token_matches(request.form.get(CSRF_KEY, "")):
        return error_page("Request refused",
                          "The form was not issued by this page (CSRF token missing or stale). "
                          "Go back, reload and try again.", 400)
    sign_in = rp.store.get(session.get(SIGN_IN_KEY))
    if sign_in is None:
        flash("Sign in first to make a transfer.")
        return redirect(url_for(".home"))
    try:
        wanted = Transfer.from_form(request.form)
    except InvalidTransfer as exc:
        return error_page("Invalid transfer", str(exc), 400)
    if not sign_in.access_token:
        return error_page("No access token", "The IdP issued no access token at sign-in.", 400)
    outcome = send_transfer(rp.settings.resource_url, sign_in.access_token, wanted)
    if outcome.challenge is not None:
        pending = wanted.to_pending()
        session[PENDING_TRANSFER_KEY] = pending
        params = outcome.challenge.authorize_params(sign_in.requested.get("acr_values", ""))
        return redirect(url_for(".login", **params, resume=pending["id"]), code=303)
    if outcome.receipt is None:
        return error_page("Transfer failed", outcome.error or "Unknown error.", outcome.status)
    session[RECEIPT_KEY] = _receipt(outcome, sign_in, stepped_up=False)
    return redirect(url_for(".home"), code=303)


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    """Sign out here, then at the IdP (OpenID Connect RP-Initiated Logout 1.0)."""
    rp = relying_party()
    sign_in = rp.store.pop(session.get(SIGN_IN_KEY))
    session.clear()
    try:
        end_session_endpoint = rp.metadata().get("end_session_endpoint")
    except ProviderError:
        end_session_endpoint = None
    if not end_session_endpoint:
        flash("Signed out of this app. The IdP could not be asked to end its own session.")
        return redirect(url_for(".home"))
    # Authlib adds a fresh state and remembers it; home() checks it on the way back.
    return rp.client.logout_redirect(
        post_logout_redirect_uri=rp.settings.post_logout_redirect_uri,
        id_token_hint=sign_in.id_token if sign_in else None,
        client_id=rp.settings.client_id,
    )


def authorize_params(args: Mapping[str, str]) -> dict[str, str]:
    """The extra authorize parameters from a query string; raises ValueError if malformed."""
    params: dict[str, str] = {}
    for name in ("acr_values", "prompt"):
        value = " ".join(args.get(name, "").split())
        if len(value) > MAX_PARAM_LENGTH:
            raise ValueError(f"{name} is too long.")
        if value:
            params[name] = value
    max_age = args.get("max_age", "").strip()
    if max_age:
        if not MAX_AGE_PATTERN.fullmatch(max_age):
            raise ValueError("max_age must be a whole number of seconds.")
        params["max_age"] = str(int(max_age))
    return params


def csrf_token() -> str:
    """This session's CSRF token for the transfer form (made on first use)."""
    token = session.get(CSRF_KEY)
    if not isinstance(token, str) or not token:
        token = session[CSRF_KEY] = secrets.token_urlsafe(32)
    return token


@bp.app_context_processor
def _template_helpers() -> dict[str, Any]:
    return {"csrf_token": csrf_token}


def _csrf_token_matches(submitted: str) -> bool:
    expected = session.get(CSRF_KEY)
    return (isinstance(expected, str) and bool(expected)
            and hmac.compare_digest(submitted.encode(), expected.encode()))


def _retry_transfer(rp: RelyingParty, sign_in: SignIn, pending: Transfer) -> None:
    """After the step-up sign-in: the one retry of the pending transfer (never a loop)."""
    outcome: Outcome
    if not sign_in.access_token:
        outcome = Outcome(error="The IdP issued no access token.", status=400)
    else:
        outcome = send_transfer(rp.settings.resource_url, sign_in.access_token, pending)
    if outcome.receipt is not None:
        session[RECEIPT_KEY] = _receipt(outcome, sign_in, stepped_up=True)
        return
    if outcome.challenge is not None:
        flash("The transfer was not made: even after signing in again, the resource server "
              f"refuses the token ({outcome.challenge.error}: "
              f"{outcome.challenge.description or 'no description'}).")
    else:
        flash(f"The transfer was not made. {outcome.error}")


def _receipt(outcome: Outcome, sign_in: SignIn, stepped_up: bool) -> dict[str, Any]:
    """What the home page shows once: the resource server's answer and the sign-in it
    accepted."""
    receipt = outcome.receipt or {}
    claims = sign_in.claims
    rows = [(name, *_format_claim(name, receipt.get(name)))
            for name in ("id", "amount", "to", "by", "acr", "auth_time")]
    return {
        "rows": rows,
        "stepped_up": stepped_up,
        "id_token": [(name, *_format_claim(name, claims.get(name)))
                     for name in ("acr", "amr", "auth_time")],
    }


def error_page(title: str, message: str, status: int, **details: str | None) -> tuple[str, int]:
    """An HTML error page with ``status``; ``details`` are extra labelled lines."""
    return render_template("error.html", title=title, message=message,
                           details={k: v for k, v in details.items() if v}), status


def _authorization_error_page(args: Mapping[str, str]) -> tuple[str, int]:
    error = args.get("error", "")
    return error_page(
        "Sign-in failed",
        ERROR_HINTS.get(error, "The IdP returned an error instead of an authorization code."),
        400, error=error, error_description=args.get("error_description"),
        error_uri=args.get("error_uri"),
    )


def _check_logout_response(rp: RelyingParty) -> None:
    try:
        rp.client.validate_logout_response()
    except OAuthError:
        flash("Ignored a logout response whose state this app did not issue.")
    else:
        flash("You are signed out, here and at the IdP.")


def _fetch_userinfo(rp: RelyingParty, token: dict[str, Any],
                    sub: str) -> tuple[dict[str, Any] | None, str | None]:
    """The UserInfo response, or why there is none."""
    try:
        if not rp.metadata().get("userinfo_endpoint"):
            return None, "The IdP has no userinfo_endpoint."
        userinfo = dict(rp.client.userinfo(token=token))
    except (ProviderError, AuthlibBaseError, requests.RequestException, ValueError) as exc:
        return None, f"The UserInfo request failed: {exc}"
    if userinfo.get("sub") != sub:
        # OIDC Core §5.3.4: the UserInfo sub must equal the ID token's, else it is not used.
        return None, "The UserInfo response was discarded: its sub differs from the ID token's."
    return userinfo, None


def _sign_in_context(sign_in: SignIn) -> dict[str, Any]:
    claims = sign_in.claims
    requested_acrs = sign_in.requested.get("acr_values", "").split()
    return {
        "claim_rows": [(name, *_format_claim(name, claims.get(name))) for name in SHOWN_CLAIMS],
        "claims_json": json.dumps(claims, indent=2, sort_keys=True),
        "userinfo_json": (json.dumps(sign_in.userinfo, indent=2, sort_keys=True)
                          if sign_in.userinfo is not None else None),
        "requested_acrs": requested_acrs,
        "acr_met": claims.get("acr") in requested_acrs if requested_acrs else None,
        "access_token_expires": (_iso(sign_in.expires_at)
                                 if sign_in.expires_at is not None else None),
    }


def _format_claim(name: str, value: Any) -> tuple[str, str]:
    """(value, note) for the claims table (and the transfer receipt)."""
    if value is None:
        return "", "not present"
    if name == "amount" and isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:.2f}", ""
    if isinstance(value, list):
        return " ".join(str(v) for v in value), ""
    if name in TIME_CLAIMS and isinstance(value, int | float):
        note = _iso(value)
        if name == "auth_time":
            note += f" ({_ago(time.time() - value)})"
        return str(value), note
    return str(value), ""


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).isoformat()


def _ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h ago"
