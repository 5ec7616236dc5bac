"""Self-service MFA API, ``/api/v1/me/…`` — shaped after Supabase's ``mfa.*`` calls.

Every call needs the user's bearer access token with scope ``mfa`` (``idp.api.auth``). The
factors themselves run through :class:`~idp.factors.service.MfaService`, so enrollment,
challenges, throttling, send limits and audit are exactly those of the hosted pages.

Levels: enrolling a factor while the user already has a verified one, removing a verified
factor and regenerating recovery codes need the level the account page needs
(``account.required_acr``, aal2 by default, proven within ``account.max_age`` seconds; the
strongest level the user can reach when that one is out of reach): ``403 insufficient_aal``
otherwise. Verifying a challenge (``/verify``, ``/challenge_and_verify``) answers with a new
token set whose ``acr``/``amr``/``auth_time`` include the proof (``idp.oidc.issuance``).
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from flask import Blueprint, Response, g, jsonify

from idp import audit
from idp.api import aal
from idp.api.auth import UserCaller, user_caller
from idp.api.errors import (
    ChallengeExpired,
    Conflict,
    InsufficientAal,
    InvalidToken,
    ValidationFailed,
    VerificationFailed,
    install_handlers,
)
from idp.api.errors import FactorUnavailable as FactorUnavailableError
from idp.api.errors import TooManyRequests as TooManyRequestsError
from idp.api.validation import Field, parse_body, path_id
from idp.extensions import settings, store
from idp.factors.base import FactorRejected, FactorUnavailable
from idp.factors.service import MfaService, Proven, Started
from idp.models import Credential
from idp.oidc import issuance

bp = Blueprint("api_mfa", __name__, url_prefix="/api/v1/me")
install_handlers(bp)

#: Parked enrollments by factor id, so ``/challenge`` and ``/verify`` can finish them.
ENROLLMENT_PREFIX = "api-enrollment:"
FACTOR_TYPES = ("totp", "phone", "email", "webauthn")
MAX_NAME_LENGTH = 100
CHALLENGE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")

ENROLL = {
    "factor_type": Field(str, required=True, choices=FACTOR_TYPES),
    "friendly_name": Field(str, min_length=1, max_length=MAX_NAME_LENGTH),
    "phone": Field(str, min_length=1, max_length=32),
}
VERIFY = {
    "challenge_id": Field(str, required=True, pattern=CHALLENGE_ID),
    "code": Field(str, min_length=1, max_length=64),
    "credential": Field(dict),
}
CHALLENGE_AND_VERIFY = {"code": Field(str, required=True, min_length=1, max_length=64)}
EMPTY: dict[str, Field] = {}


@bp.before_request
def authenticate() -> None:
    g.caller = user_caller()


def _caller() -> UserCaller:
    return g.caller


def _now() -> int:
    return int(time.time())


def _json(body: Any, status: int = 200) -> Response:
    response = jsonify(body)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


def factor_json(credential: Credential) -> dict[str, Any]:
    return {"id": credential.id, "type": aal.api_type(credential.method),
            "friendly_name": credential.name, "status": credential.status,
            "created_at": credential.created_at, "last_used_at": credential.last_used_at}


def _unavailable(exc: FactorUnavailable) -> Exception:
    """A factor's refusal: a cooldown or send cap is a 429 with Retry-After, else a 409."""
    if exc.retry_after:
        return TooManyRequestsError(exc.message, exc.retry_after)
    return FactorUnavailableError(exc.message)


def _rejected(exc: FactorRejected) -> Exception:
    if exc.reason == "expired_challenge":
        return ChallengeExpired(exc.message)
    return VerificationFailed(exc.message)


def _factor(factor_id: str) -> Credential:
    return MfaService().credential(_caller().user, path_id(factor_id, what="factor"))


def required_level(now: int) -> str:
    """The account page's level, or the strongest this user can reach when it is out of
    reach (aal1 for a user without a second factor)."""
    user = _caller().user
    wanted = settings().account.required_acr
    if aal.can_reach(user, wanted, now):
        return aal.canonical(wanted) or wanted
    for level in reversed(aal.ladder().levels):
        if aal.can_reach(user, level.name, now):
            return level.name
    return aal.ladder().levels[0].name


def require_level(now: int) -> None:
    """Raise ``403 insufficient_aal`` unless the token holds the required level, recently
    enough (``account.max_age``)."""
    level = required_level(now)
    max_age = settings().account.max_age
    if not aal.satisfies(_caller().context, level, now, max_age):
        raise InsufficientAal(f"This needs a {level} authentication from the last {max_age} "
                              f"seconds: verify a factor (POST /factors/{{id}}/challenge, then "
                              f"/verify) and retry with the new access token.", level, max_age)


# -- factors ------------------------------------------------------------------------------

@bp.get("/factors")
def list_factors() -> Response:
    """Supabase's ``listFactors``: ``all`` (any status) and the verified ones by type."""
    credentials = MfaService().credentials(_caller().user, verified_only=False)
    body: dict[str, Any] = {"all": [factor_json(c) for c in credentials]}
    for kind in FACTOR_TYPES:
        body[kind] = [factor_json(c) for c in credentials
                      if c.verified and aal.api_type(c.method) == kind]
    return _json(body)


@bp.post("/factors")
def enroll() -> Response:
    """Supabase's ``enroll``: start enrollment of a factor (unverified until ``/verify``)."""
    body = parse_body(ENROLL)
    caller, now = _caller(), _now()
    service = MfaService()
    kind = body["factor_type"]
    method = aal.METHODS_BY_TYPE.get(kind, kind)
    if method not in service.factors:
        raise ValidationFailed("factor_type", f"{kind} is not enabled on this server")
    if kind == "phone" and "phone" not in body:
        raise ValidationFailed("phone", "is required for a phone factor")
    if kind != "phone" and "phone" in body:
        raise ValidationFailed("phone", "is only for phone factors")
    name = " ".join(body.get("friendly_name", "").split()) or None
    if "friendly_name" in body and name is None:
        raise ValidationFailed("friendly_name", "must not be blank")
    if service.credentials(caller.user):
        require_level(now)
    if name is not None:
        # An unfinished enrollment of the same kind is replaced, so its name is free.
        taken = {c.name for c in service.credentials(caller.user, verified_only=False)
                 if c.verified or c.method != method}
        if name in taken:
            raise Conflict(f"You already have a factor named {name!r}.")
    try:
        started = service.begin_enrollment(caller.user, method,
                                           {"phone": body.get("phone", "")}, name=name)
    except FactorRejected as exc:
        if exc.reason == "invalid_phone":
            raise ValidationFailed("phone", exc.message) from None
        raise VerificationFailed(exc.message) from None
    except FactorUnavailable as exc:
        raise _unavailable(exc) from None
    store.current.put(ENROLLMENT_PREFIX + started.credential.id, started.id,
                      max(1, started.expires_at - now))
    return _json({**factor_json(started.credential), **_enrollment_extras(started)}, 201)


def _enrollment_extras(started: Started) -> dict[str, Any]:
    """What the user needs to finish: the challenge id, and per type the TOTP secret and QR
    code, the WebAuthn creation options, or where a code was sent."""
    data = started.step.display.data
    kind = aal.api_type(started.credential.method)
    extras: dict[str, Any] = {"challenge": {"id": started.id, "expires_at": started.expires_at}}
    if kind == "totp":
        extras["totp"] = {"secret": data["secret"], "uri": data["uri"],
                          "qr_code": data["qr_code"]}
    elif kind == "webauthn":
        extras["webauthn"] = {"options": data["options"]}
    elif "sent_to" in data:
        extras[kind] = {"sent_to": data["sent_to"]}
    return extras


def _pending_enrollment(credential: Credential) -> Started:
    user = _caller().user
    enrollment_id = store.current.get(ENROLLMENT_PREFIX + credential.id)
    started = MfaService().pending_enrollment(user, enrollment_id) if enrollment_id else None
    if started is None or started.credential.id != credential.id:
        raise ChallengeExpired("This enrollment expired: start again with POST /factors.")
    return started


@bp.post("/factors/<factor_id>/challenge")
def challenge(factor_id: str) -> Response:
    """Supabase's ``challenge``: sends the SMS/email code, or returns WebAuthn request
    options. For a factor still being enrolled it returns the enrollment's pending challenge
    (no new code is sent: start the enrollment again for one)."""
    parse_body(EMPTY)
    credential = _factor(factor_id)
    if credential.verified:
        try:
            started = MfaService().begin_challenge(_caller().user, credential)
        except FactorUnavailable as exc:
            raise _unavailable(exc) from None
    else:
        started = _pending_enrollment(credential)
    body: dict[str, Any] = {"id": started.id, "type": aal.api_type(credential.method),
                            "expires_at": started.expires_at}
    if "options" in started.step.display.data:
        body["webauthn"] = {"options": started.step.display.data["options"]}
    return _json(body)


@bp.post("/factors/<factor_id>/verify")
def verify(factor_id: str) -> Response:
    """Supabase's ``verify``: check the answer to a challenge (finishing enrollment for an
    unverified factor) and answer with a new token set that includes the proof."""
    body = parse_body(VERIFY)
    if ("code" in body) == ("credential" in body):
        raise ValidationFailed("code", "send exactly one of code (codes) or credential "
                                       "(WebAuthn)")
    response = {"code": body["code"]} if "code" in body else {
        "credential": json.dumps(body["credential"])}
    credential = _factor(factor_id)
    return _tokens(_verify(credential, body["challenge_id"], response))


@bp.post("/factors/<factor_id>/challenge_and_verify")
def challenge_and_verify(factor_id: str) -> Response:
    """Supabase's ``challengeAndVerify``, for TOTP: one call with the current code."""
    body = parse_body(CHALLENGE_AND_VERIFY)
    credential = _factor(factor_id)
    if aal.api_type(credential.method) != "totp":
        raise Conflict("Only TOTP factors can be challenged and verified in one call.")
    if credential.verified:
        challenge_id = MfaService().begin_challenge(_caller().user, credential).id
    else:
        challenge_id = _pending_enrollment(credential).id
    return _tokens(_verify(credential, challenge_id, {"code": body["code"]}))


def _verify(credential: Credential, challenge_id: str, response: dict[str, str]) -> Proven:
    caller = _caller()
    service = MfaService()
    pending = service.pending_challenge(caller.user, challenge_id) if credential.verified \
        else service.pending_enrollment(caller.user, challenge_id)
    if pending is None or pending.credential.id != credential.id:
        raise ChallengeExpired("This challenge is unknown, used or expired: ask for a new one.")
    try:
        if credential.verified:
            return service.verify_challenge(caller.user, challenge_id, response,
                                            client_id=caller.token.client_id)
        proven = service.finish_enrollment(caller.user, challenge_id, response)
    except FactorRejected as exc:
        raise _rejected(exc) from None
    store.current.delete(ENROLLMENT_PREFIX + credential.id)
    return proven


def _tokens(proven: Proven) -> Response:
    """The new token set: the token's authentication plus the proof (idp.oidc.issuance)."""
    caller, now = _caller(), _now()
    try:
        context = issuance.stepped_up_context(caller.token, aal.prior_events(caller.token),
                                              proven.event, now)
        token = issuance.issue_token_set(caller.token, caller.user, context)
    except (issuance.AuthenticationExpired, issuance.ClientGone):
        raise InvalidToken("The access token's authentication or client is gone: sign in "
                           "again.", "mfa") from None
    return _json(token)


@bp.delete("/factors/<factor_id>")
def unenroll(factor_id: str) -> Response:
    """Supabase's ``unenroll``. A verified factor needs the required level; the last factor
    takes the recovery codes with it (they recover nothing on their own)."""
    parse_body(EMPTY)
    caller, now = _caller(), _now()
    credential = _factor(factor_id)
    service = MfaService()
    if credential.verified:
        require_level(now)
    others = [c for c in service.credentials(caller.user)
              if c.id != credential.id and c.method != "recovery_code"]
    if settings().policy.enforcement == "required" and credential.verified \
            and credential.method != "recovery_code" and not others:
        raise Conflict("Two-step sign-in is required here: add another factor before "
                       "removing this one.")
    service.remove(caller.user, credential, actor=caller.user.id)
    store.current.delete(ENROLLMENT_PREFIX + credential.id)
    if not others:
        for leftover in service.credentials(caller.user):
            service.remove(caller.user, leftover, actor=caller.user.id)
    return Response(status=204)


# -- assurance and recovery codes -----------------------------------------------------------

@bp.get("/aal")
def assurance_level() -> Response:
    """Supabase's ``getAuthenticatorAssuranceLevel``."""
    caller, now = _caller(), _now()
    levels = aal.levels(caller.user, caller.token, caller.context, now)
    methods = sorted(levels.methods, key=lambda e: e.at)
    return _json({"current_level": levels.current, "next_level": levels.next,
                  "current_authentication_methods": [
                      {"method": aal.api_type(e.method), "timestamp": e.at} for e in methods]})


@bp.post("/recovery-codes")
def regenerate_recovery_codes() -> Response:
    """New recovery codes replace every old one; shown in this response only."""
    parse_body(EMPTY)
    caller, now = _caller(), _now()
    service = MfaService()
    if not any(c.method != "recovery_code" for c in service.credentials(caller.user)):
        raise Conflict("Set up another factor before recovery codes.")
    require_level(now)
    if "recovery_code" not in service.factors:
        raise FactorUnavailableError("Recovery codes are not enabled on this server.")
    started = service.begin_enrollment(caller.user, "recovery_code", {})
    audit.record("mfa.backup_codes_regenerated", user_id=caller.user.id,
                 client_id=caller.token.client_id)
    return _json({"recovery_codes": list(started.step.display.data["codes"])}, 201)
