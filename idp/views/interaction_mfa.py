"""Hosted pages for the "mfa" prompt: factor picker, challenge, enrollment during login,
recovery codes shown once. Pages come from the factor (``templates``/``Display``); nothing
here names a factor.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Response, current_app, redirect, render_template, request, session, url_for

from idp import sessions
from idp.authorize import interactions
from idp.errors import InvalidRequest
from idp.extensions import db, settings
from idp.factors.base import Display, FactorRejected, FactorUnavailable
from idp.factors.service import MfaService, Started
from idp.models import Credential, User
from idp.policy import devices
from idp.views.interaction import _client, _load, _resume, bp

GENERIC_CHALLENGE = "factor_challenge.html"
GENERIC_ENROLL = "factor_enroll.html"


def _user() -> User:
    user = db.session.get(User, sessions.signed_in_user_id(session) or "")
    if user is None or user.disabled:
        raise InvalidRequest("Your session ended. Start again from the application.")
    return user


def _load_mfa(uid: str) -> dict:
    """The interaction, if it is at its "mfa" step (M5: no skipping a login step)."""
    record = _load(uid)
    _target(record)
    return record


def _target(record: dict) -> str:
    """The level this interaction's "mfa" step must reach; these pages serve nothing else."""
    if record["prompt"]["name"] != "mfa":
        raise InvalidRequest("This sign-in does not ask for a second step now.")
    target = record["prompt"].get("details", {}).get("acr")
    if not target:
        raise InvalidRequest("Nothing to verify for this sign-in.")
    return target


def _options(record: dict, user: User) -> list[Credential]:
    ladder = current_app.extensions["idp.ladder"]
    return MfaService().options(ladder, user, sessions.current_events(session), _target(record),
                                int(time.time()))


def _enrollable(record: dict, user: User) -> list[Any]:
    """Factors whose enrollment now would let the user reach the target level."""
    if record.get("kind") != interactions.ACCOUNT and not settings().policy.enroll_during_login:
        return []
    service = MfaService()
    reached = service.levels_by_enrolling(current_app.extensions["idp.ladder"], user,
                                          sessions.current_events(session), int(time.time()))
    target = _target(record)
    return [f for f in service.enrollable(user) if target in reached.get(f.method, ())]


def _render_challenge(uid: str, started: Started, error: str | None = None,
                      status: int = 200) -> tuple[str, int]:
    factor = started.factor
    template = (factor.templates or {}).get("challenge", GENERIC_CHALLENGE)
    return render_template(template, uid=uid, started=started, display=started.step.display,
                           method=factor.method, error=error,
                           remember_days=settings().policy.remember_device_days,
                           action=url_for("interaction.mfa_verify", uid=uid)), status


def _render_enroll(uid: str, started: Started, error: str | None = None,
                   status: int = 200) -> tuple[str, int]:
    factor = started.factor
    template = (factor.templates or {}).get("enroll", GENERIC_ENROLL)
    return render_template(template, uid=uid, started=started, display=started.step.display,
                           method=factor.method, error=error,
                           action=url_for("interaction.enroll_verify", uid=uid),
                           continue_url=url_for("interaction.enroll_done", uid=uid)), status


@bp.get("/<uid>/mfa")
def mfa_picker(uid: str) -> Response | tuple[str, int] | str:
    record = _load_mfa(uid)
    user = _user()
    options = _options(record, user)
    if not options:
        return redirect(url_for("interaction.enroll_picker", uid=uid), code=303)
    if len(options) == 1 and request.args.get("choose") != "1":
        try:
            started = MfaService().begin_challenge(user, options[0])
        except FactorUnavailable as exc:
            return _picker_unavailable(uid, record, user, exc)
        return _render_challenge(uid, started)
    return render_template("mfa_picker.html", uid=uid, client=_client(record), options=options,
                           factors=MfaService().factors)


@bp.post("/<uid>/mfa/start")
def mfa_start(uid: str) -> Response | tuple[str, int] | str:
    record = _load_mfa(uid)
    user = _user()
    service = MfaService()
    credential = service.credential(user, request.form.get("credential_id", ""))
    if credential.id not in {c.id for c in _options(record, user)}:
        raise InvalidRequest("That factor cannot complete this sign-in.")
    try:
        started = service.begin_challenge(user, credential)
    except FactorUnavailable as exc:
        return _picker_unavailable(uid, record, user, exc)
    return _render_challenge(uid, started)


@bp.post("/<uid>/mfa/verify")
def mfa_verify(uid: str) -> Response | tuple[str, int]:
    record = _load_mfa(uid)
    user = _user()
    service = MfaService()
    challenge_id = request.form.get("challenge_id", "")
    client_id = record["client_id"]
    try:
        proven = service.verify_challenge(user, challenge_id, request.form, client_id=client_id)
    except FactorRejected as exc:
        return _retry_challenge(uid, record, user, service, challenge_id, exc.message)
    _record_proof(record, proven.event)
    if request.form.get("remember_device") and settings().policy.remember_device_days > 0:
        devices.remember(user, (session.get("signals") or {}).get("device_id"),
                         settings().policy.remember_device_days, client_id)
    if proven.revealed.get("recovery_codes"):
        return render_template("factors/recovery_codes.html", display=Display(
            title="Your new recovery code",
            instructions="The code you used is spent. Save this replacement: it is shown "
                         "only now.", data={"codes": proven.revealed["recovery_codes"]}),
            continue_url=url_for("interaction.enroll_done", uid=uid))
    return _resume(uid)


def _retry_challenge(uid: str, record: dict, user: User, service: MfaService,
                     challenge_id: str, message: str) -> Response | tuple[str, int]:
    """Show the same challenge again with the error, or the picker when it is used up."""
    started = service.pending_challenge(user, challenge_id)
    if started is None:
        return render_template("mfa_picker.html", uid=uid, client=_client(record),
                               options=_options(record, user), factors=service.factors,
                               error=message), 400
    return _render_challenge(uid, started, error=message, status=400)


def _record_proof(record: dict, event: Any) -> None:
    sessions.record_event(session, event)  # type: ignore[arg-type]
    record["result"]["mfa"] = event.at
    interactions.save(record)


# -- enrollment during login -----------------------------------------------------------------

@bp.get("/<uid>/enroll")
def enroll_picker(uid: str) -> str:
    record = _load_mfa(uid)
    user = _user()
    return render_template("enroll_picker.html", uid=uid, client=_client(record),
                           factors=_enrollable(record, user), error=None)


@bp.post("/<uid>/enroll/start")
def enroll_start(uid: str) -> Response | tuple[str, int]:
    record = _load_mfa(uid)
    user = _user()
    method = request.form.get("method", "")
    if method not in {f.method for f in _enrollable(record, user)}:
        raise InvalidRequest("That factor cannot be set up here.")
    try:
        started = MfaService().begin_enrollment(user, method, request.form)
    except FactorUnavailable as exc:
        return _unavailable(render_template("enroll_picker.html", uid=uid,
                                            client=_client(record),
                                            factors=_enrollable(record, user),
                                            error=exc.message), exc)
    except FactorRejected as exc:
        return render_template("enroll_picker.html", uid=uid, client=_client(record),
                               factors=_enrollable(record, user), error=exc.message), 400
    return _render_enroll(uid, started)


@bp.post("/<uid>/enroll/verify")
def enroll_verify(uid: str) -> Response | tuple[str, int]:
    record = _load_mfa(uid)
    user = _user()
    service = MfaService()
    enrollment_id = request.form.get("enrollment_id", "")
    try:
        proven = service.finish_enrollment(user, enrollment_id, request.form)
    except FactorRejected as exc:
        pending = service.pending_enrollment(user, enrollment_id)
        if pending is not None:
            return _render_enroll(uid, pending, error=exc.message, status=400)
        return render_template("enroll_picker.html", uid=uid, client=_client(record),
                               factors=_enrollable(record, user), error=exc.message), 400
    _record_proof(record, proven.event)
    backup = service.offer_backup(user)
    if backup is not None:
        return _render_enroll(uid, backup)
    return _resume(uid)


@bp.post("/<uid>/enroll/done")
def enroll_done(uid: str) -> Response:
    _load(uid)
    return _resume(uid)


# -- factors that cannot be used right now; one-time codes (SMS, email) ---------------------

def _unavailable(body: str, exc: FactorUnavailable) -> Response:
    """DESIGN §7: a cooldown or send cap answers 429 with Retry-After (distinct from a wrong
    code); a delivery failure answers 503. Either way the page says why."""
    response = Response(body, status=429 if exc.retry_after else 503, mimetype="text/html")
    if exc.retry_after:
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


def _picker_unavailable(uid: str, record: dict, user: User, exc: FactorUnavailable) -> Response:
    """The picker with why the chosen factor cannot be used, so the user picks another."""
    return _unavailable(render_template(
        "mfa_picker.html", uid=uid, client=_client(record), options=_options(record, user),
        factors=MfaService().factors, error=exc.message), exc)


@bp.post("/<uid>/mfa/resend")
def mfa_resend(uid: str) -> Response | tuple[str, int]:
    """The "send a new code" button of a code challenge: a new challenge for the same
    credential (DESIGN §6). During the cooldown the same challenge is shown again with the
    wait (429, Retry-After) and its code keeps working; a delivery failure shows the picker
    (503); a challenge that is gone shows the picker (400)."""
    record = _load_mfa(uid)
    user = _user()
    service = MfaService()
    challenge_id = request.form.get("challenge_id", "")
    pending = service.pending_challenge(user, challenge_id)
    if pending is None or pending.credential.id not in {c.id for c in _options(record, user)}:
        return _retry_challenge(uid, record, user, service, "", RESEND_EXPIRED)
    try:
        started = service.resend_challenge(user, challenge_id)
    except FactorRejected as exc:
        return _retry_challenge(uid, record, user, service, "", exc.message)
    except FactorUnavailable as exc:
        if exc.retry_after:
            return _unavailable(_render_challenge(uid, pending, error=exc.message)[0], exc)
        return _picker_unavailable(uid, record, user, exc)
    return _render_challenge(uid, started)


RESEND_EXPIRED = "This step expired. Choose a method to start again."
