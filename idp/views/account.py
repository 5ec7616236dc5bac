"""The account security page (``/account/security``): factors, recovery codes.

Reaching it requires a recent authentication at ``account.required_acr`` (aal1 while the user
has no second factor): the IdP steps up on itself through the same hosted pages a relying
party's request uses, with an interaction of kind ``account``.
"""

from __future__ import annotations

import time
from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from idp import sessions
from idp.assurance import Ladder
from idp.authorize import interactions
from idp.errors import AccessDenied, InvalidRequest
from idp.extensions import db, settings
from idp.factors.base import FactorRejected, FactorUnavailable
from idp.factors.service import MfaService, Started
from idp.models import Device, User
from idp.policy import devices

bp = Blueprint("account", __name__, url_prefix="/account")

MAX_NAME_LENGTH = 100


def _ladder() -> Ladder:
    return current_app.extensions["idp.ladder"]


def _signed_in_user() -> User | None:
    user = db.session.get(User, sessions.signed_in_user_id(session) or "")
    return None if user is None or user.disabled else user


def required_level(user: User | None) -> str:
    """The configured level, or aal1 while there is no verified factor to prove."""
    if user is not None and not MfaService().credentials(user):
        return "aal1"
    return settings().account.required_acr


def next_prompt(user: User | None, now: int) -> tuple[str, str] | None:
    """(prompt, level) the user must pass before the account pages, or None when fresh."""
    level = required_level(user)
    if user is None:
        return "login", level
    events = sessions.current_events(session)
    ladder = _ladder()
    if ladder.satisfies(events, level, now, sessions.last_active(session),
                        max_age=settings().account.max_age):
        return None
    options = MfaService().options(ladder, user, events, level, now)
    password_fresh = any(e.method == "password" and now - e.at <= settings().account.max_age
                         for e in events)
    return ("mfa", level) if options and password_fresh else ("login", level)


def _step_up(return_to: str) -> Response:
    """Send the browser through the hosted sign-in pages, then back to ``return_to``."""
    user = _signed_in_user()
    prompt, level = next_prompt(user, int(time.time())) or ("login", required_level(user))
    record = interactions.create({}, None, prompt, ["account"], {"acr": level},
                                 kind=interactions.ACCOUNT, return_to=return_to)
    response = redirect(interactions.page_url(record), code=303)
    interactions.bind_to_browser(response, record["uid"])
    return response


def _fresh_user() -> User:
    """The signed-in user with a fresh enough session; raises AccessDenied otherwise
    (POST handlers: the page that posted was shown only to such a session)."""
    user = _signed_in_user()
    if user is None or next_prompt(user, int(time.time())) is not None:
        raise AccessDenied("Your sign-in is no longer recent enough. Reload the page.")
    return user


@bp.get("/resume/<uid>")
def resume(uid: str) -> Response:
    record = interactions.load(uid, request.cookies.get(interactions.cookie_name()))
    user = _signed_in_user()
    step = next_prompt(user, int(time.time()))
    if step is not None:
        prompt, level = step
        if prompt == "login" and "login" in record["result"] and user is not None:
            # Signed in just now but still short: the second step comes next.
            prompt = "mfa"
        record["prompt"] = {"name": prompt, "reasons": ["account"], "details": {"acr": level}}
        interactions.save(record)
        return redirect(interactions.page_url(record), code=303)
    interactions.finish(uid)
    target = record.get("return_to") or url_for("account.security")
    return redirect(target if target.startswith("/account/") else url_for("account.security"),
                    code=303)


@bp.get("/security")
def security() -> Response | str:
    user = _signed_in_user()
    if user is None or next_prompt(user, int(time.time())) is not None:
        return _step_up(url_for("account.security"))
    return _page(user)


def _page(user: User, error: str | None = None, notice: str | None = None,
          status: int = 200) -> Any:
    service = MfaService()
    credentials = service.credentials(user)
    from idp.factors.recovery_codes import LOW_REMAINING, remaining

    left = remaining(user.id)
    addable = service.enrollable(user)
    return render_template(
        "account_security.html", user=user, credentials=credentials, factors=service.factors,
        addable=addable, recovery_left=left, devices=devices.remembered(user),
        recovery_low=bool(credentials) and left <= LOW_REMAINING, error=error,
        notice=notice), status


def _render_enroll(started: Started, error: str | None = None, status: int = 200) -> Any:
    factor = started.factor
    template = (factor.templates or {}).get("enroll", "factor_enroll.html")
    return render_template(template, uid=None, started=started, display=started.step.display,
                           method=factor.method, error=error,
                           action=url_for("account.enroll_verify"),
                           continue_url=url_for("account.security_done")), status


@bp.post("/security/enroll")
def enroll_start() -> Any:
    user = _fresh_user()
    method = request.form.get("method", "")
    service = MfaService()
    if method not in {f.method for f in service.enrollable(user)}:
        raise InvalidRequest("Unknown factor.")
    try:
        started = service.begin_enrollment(user, method, request.form)
    except (FactorUnavailable, FactorRejected) as exc:
        return _page(user, error=exc.message, status=400)
    return _render_enroll(started)


@bp.post("/security/enroll/verify")
def enroll_verify() -> Any:
    user = _fresh_user()
    service = MfaService()
    try:
        proven = service.finish_enrollment(user, request.form.get("enrollment_id", ""),
                                           request.form)
    except FactorRejected as exc:
        return _page(user, error=exc.message, status=400)
    sessions.record_event(session, proven.event)  # type: ignore[arg-type]
    backup = service.offer_backup(user)
    if backup is not None:
        return _render_enroll(backup)
    return redirect(url_for("account.security"), code=303)


@bp.post("/security/done")
def security_done() -> Response:
    return redirect(url_for("account.security"), code=303)


@bp.post("/security/recovery-codes")
def regenerate_recovery_codes() -> Any:
    """New codes replace all old ones; needs the fresh second factor the page requires."""
    user = _fresh_user()
    try:
        started = MfaService().regenerate_backup(user)
    except FactorUnavailable as exc:
        return _page(user, error=exc.message, status=400)
    return _render_enroll(started)


@bp.post("/security/factors/<credential_id>/rename")
def rename(credential_id: str) -> Any:
    user = _fresh_user()
    service = MfaService()
    credential = service.credential(user, credential_id)
    name = " ".join(request.form.get("name", "").split())[:MAX_NAME_LENGTH]
    if not name:
        return _page(user, error="Give the factor a name.", status=400)
    if any(c.name == name and c.id != credential.id
           for c in service.credentials(user, verified_only=False)):
        return _page(user, error="You already have a factor with that name.", status=409)
    credential.name = name
    db.session.commit()
    return redirect(url_for("account.security"), code=303)


@bp.post("/security/factors/<credential_id>/remove")
def remove(credential_id: str) -> Any:
    user = _fresh_user()
    service = MfaService()
    credential = service.credential(user, credential_id)
    others = [c for c in service.real_credentials(user) if c.id != credential.id]
    if settings().policy.enforcement == "required" and not service.is_backup(credential.method) \
            and not others:
        return _page(user, error="Your organisation requires two-step sign-in: add another "
                                 "method before removing this one.", status=409)
    service.remove(user, credential, actor=user.id)
    sessions.rotate(session)  # type: ignore[arg-type]
    return redirect(url_for("account.security"), code=303)


@bp.post("/security/devices/<device_id>/forget")
def forget_device(device_id: str) -> Any:
    """Stop remembering a device: its next sign-in asks for the second factor again."""
    user = _fresh_user()
    device = db.session.get(Device, device_id)
    if device is None or device.user_id != user.id:
        raise InvalidRequest("No such device.")
    devices.forget(device, actor=user.id)
    return redirect(url_for("account.security"), code=303)
