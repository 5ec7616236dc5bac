"""Hosted sign-in pages (``/interaction/<uid>/…``): login and consent.

Each page renders the prompt the pipeline asked for; each POST records its result on the
interaction and sends the browser back to ``/authorize/resume/<uid>``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from flask import Blueprint, Response, redirect, render_template, request, session, url_for

from idp import audit, sessions
from idp.authorize import interactions
from idp.authorize.consent import grant_consent
from idp.authorize.login import (
    LoginFailed,
    PrimaryLogin,
    authenticate_password,
    login_limits,
)
from idp.errors import InvalidRequest, TooManyRequests
from idp.extensions import db, settings
from idp.factors.service import MfaService
from idp.models import Client, User
from idp.oidc.authorization import AuthorizationError
from idp.oidc.claims import CLAIM_LABELS, SCOPE_CLAIMS
from idp.policy import devices
from idp.policy.signals import DEVICE_COOKIE_DAYS, device_cookie_name, observe_login
from idp.views.oidc import continue_interaction
from idp.views.security import allow_form_action

bp = Blueprint("interaction", __name__, url_prefix="/interaction")

MAX_USERNAME_LENGTH = 254


def _load(uid: str) -> dict:
    record = interactions.load(uid, request.cookies.get(interactions.cookie_name()))
    # The page's forms end in a redirect to the client (security.allow_form_action).
    allow_form_action(record.get("params", {}).get("redirect_uri", ""))
    return record


@dataclass(frozen=True)
class OwnPages:
    """Stands in for the client when the IdP's own account pages asked for the sign-in."""

    name: str
    client_id: None = None


def _client(record: dict) -> Client | OwnPages:
    # Read from the database, not the client cache: a page that needs the database must not
    # be shown while it is down (a login form that cannot work; tests/production
    # test_failures.py expects the outage page at once).
    if record.get("kind") == interactions.ACCOUNT:
        return OwnPages(settings().branding.product_name)
    client = db.session.get(Client, record["client_id"])
    if client is None:
        raise InvalidRequest("The application is no longer registered.")
    return client


def _resume(uid: str) -> Response:
    """Back to whoever asked. An authorization request continues in this same request (the
    code, an error for the client, or the next page: one round trip fewer than a redirect to
    ``/authorize/resume``, which stays for pages that end elsewhere); the account pages get
    a redirect to theirs."""
    record = _load(uid)
    if record.get("kind") == interactions.ACCOUNT:
        return redirect(url_for("account.resume", uid=uid), code=303)
    return continue_interaction(record)


@bp.get("/<uid>")
def show(uid: str) -> Response | str:
    record = _load(uid)
    client = _client(record)
    prompt = record["prompt"]["name"]
    if prompt == "login":
        hint = record["params"].get("login_hint", "")[:MAX_USERNAME_LENGTH]
        return render_template("login.html", uid=uid, client=client, username=hint, error=None)
    if prompt == "mfa":
        return redirect(url_for("interaction.mfa_picker", uid=uid), code=303)
    if prompt == "consent":
        user = db.session.get(User, sessions.signed_in_user_id(session) or "")
        scopes = [s for s in record["params"].get("scope", "").split() if s in SCOPE_CLAIMS]
        return render_template("consent.html", uid=uid, client=client, user=user,
                               scopes=scopes, claims=_offered_claims(record),
                               claim_labels=CLAIM_LABELS)
    raise InvalidRequest(f"Unknown step {prompt!r}.")


@bp.post("/<uid>/login")
def login(uid: str) -> Response | tuple[str, int]:
    record = _load(uid)
    client = _client(record)
    username = request.form.get("username", "").strip()[:MAX_USERNAME_LENGTH]
    password = request.form.get("password", "")
    limits = login_limits(username, request.remote_addr or "")
    try:
        login = authenticate_password(username, password, limits, client_id=client.client_id)
    except TooManyRequests as exc:
        page = render_template("login.html", uid=uid, client=client, username=username,
                               error=exc.description)
        return page, 429, {"Retry-After": str(exc.retry_after)}  # type: ignore[return-value]
    except LoginFailed as exc:
        return render_template("login.html", uid=uid, client=client, username=username,
                               error=str(exc)), 401
    return finish_primary_login(uid, record, login)


def finish_primary_login(uid: str, record: dict, login: PrimaryLogin) -> Response:
    """Every primary sign-in ends here: session, policy signals, device cookie, resume."""
    user = login.user
    sessions.record_login(session, user.id, login.event)  # type: ignore[arg-type]
    signals, device_cookie, device = observe_login(user, request, login.recent_failures)
    session["signals"] = signals
    stand_in = devices.remembered_event(device, login.event.at)
    if stand_in is not None:
        sessions.record_event(session, stand_in)  # type: ignore[arg-type]
    if settings().policy.enforcement == "required" and not MfaService().credentials(user):
        user.logins_without_mfa = (user.logins_without_mfa or 0) + 1
    db.session.commit()
    record["result"]["login"] = login.event.at
    interactions.save(record)
    response = _resume(uid)
    if device_cookie:
        response.set_cookie(device_cookie_name(), device_cookie, httponly=True, samesite="Lax",
                            secure=settings().secure_cookies, path="/",
                            max_age=DEVICE_COOKIE_DAYS * 86400)
    return response


def _offered_claims(record: dict) -> list[str]:
    """The claims the consent page asks about one by one, as the pipeline decided them
    (``steps.assign_consent_claims``); never taken from the submitted form."""
    offered = record["prompt"].get("details", {}).get("claims", [])
    return [name for name in offered if name in CLAIM_LABELS]


@bp.post("/<uid>/consent")
def consent(uid: str) -> Response:
    record = _load(uid)
    client = _client(record)
    user = db.session.get(User, sessions.signed_in_user_id(session) or "")
    if user is None:
        return _resume(uid)  # the session ended meanwhile: the pipeline asks for login again
    if request.form.get("decision") != "allow":
        audit.record("user.consent_denied", user_id=user.id, client_id=client.client_id)
        return _deny(record, "The user declined the request.")
    offered = _offered_claims(record)
    chosen = set(request.form.getlist("claim"))
    released = tuple(name for name in offered if name in chosen)
    declined = tuple(name for name in offered if name not in chosen)
    grant_consent(user, client, record["params"].get("scope", ""), released, declined)
    audit.record("user.consent_granted", user_id=user.id, client_id=client.client_id,
                 scope=record["params"].get("scope", ""), claims=list(released),
                 declined_claims=list(declined))
    record["result"]["consent"] = int(time.time())
    interactions.save(record)
    return _resume(uid)


@bp.post("/<uid>/abort")
def abort(uid: str) -> Response:
    record = _load(uid)
    return _deny(record, "The user cancelled the sign-in.")


def _deny(record: dict, description: str) -> Response:
    """Back to the client with access_denied (RFC 6749 §4.1.2.1)."""
    params = record["params"]
    interactions.finish(record["uid"])
    if record.get("kind") == interactions.ACCOUNT:
        return redirect(url_for("pages.home"), code=303)
    raise AuthorizationError("access_denied", description, redirect_uri=params["redirect_uri"],
                             state=params.get("state"),
                             response_mode=params.get("response_mode") or "query")
