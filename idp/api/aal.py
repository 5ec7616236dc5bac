"""Authenticator assurance for API callers: which levels a token holds, which the user could
reach, and the token's earlier proofs as events for the ladder.

A token records its authentication as ``acr``, ``amr``, ``auth_time``, ``issued_at`` and
``acr_expiry`` (when each level stops holding), not as the events themselves.
:func:`prior_events` rebuilds one event per method named in ``amr``, with a time **never later
than the real one**, so that combining them with a new proof (``idp.oidc.issuance``) cannot make
an old proof count as fresher than it was:

- one method (the usual aal1 sign-in): it was proven at ``auth_time`` exactly (OIDC Core §2:
  the time of the authentication that produced the acr);
- several methods: each at the earliest time the snapshot allows — ``expiry[L] - max_age(L)``
  for the levels recorded (the oldest proof a level was counting; exact for the default
  ladder's two-kind levels). With a ladder that needs more than two factor kinds that bound no
  longer holds for every proof, so the sound ``issued_at - max_age(acr)`` is used;
- a rebuild that would, at issuance, justify more than the token's ``acr`` is inconsistent with
  the snapshot (an older proof we cannot date): it falls back to the sound bound, and failing
  that to no earlier proofs at all.

Passkey events get their properties from ``amr`` (``user`` → user verified, ``hwk`` →
hardware-attested) and are device-bound only when the token's level required it.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from idp.assurance import WEBAUTHN_METHODS, AuthEvent, Ladder
from idp.factors import password
from idp.factors.service import MfaService
from idp.models import Token, User
from idp.oidc.principal import AuthContext
from idp.policy import devices

#: The API's names for factor methods (Supabase's ``phone`` and ``webauthn``); methods not
#: listed (``totp``, ``email``, ``recovery_code``, plugins) keep their own name.
API_TYPES = {"sms": "phone", "passkey": "webauthn"}
METHODS_BY_TYPE = {api: method for method, api in API_TYPES.items()}


def api_type(method: str) -> str:
    return API_TYPES.get(method, method)


def ladder() -> Ladder:
    return current_app.extensions["idp.ladder"]


#: ``amr`` values that qualify a WebAuthn assertion rather than name a method (RFC 8176).
WEBAUTHN_AMR = ("pop", "user", "hwk", "swk")


def _owners() -> dict[str, str]:
    """``amr`` value → the method it names (``mfa``, ``user``, ``hwk``… name none). A value
    two factors share (``otp``) names the stronger registered one."""
    owners = {password.AMR[0]: password.METHOD, devices.AMR[0]: devices.METHOD}
    for factor in MfaService().factors:  # strongest first
        if factor.amr:
            owners.setdefault(factor.amr[0], factor.method)
    return owners


def _amr_methods(amr: list[str]) -> list[str]:
    """Methods named by ``amr`` values, first-seen order."""
    owners = _owners()
    return list(dict.fromkeys(owners[v] for v in amr if v in owners))


def _events(row: Token, methods: list[str], at: int) -> list[AuthEvent]:
    amr = list(row.amr or [])
    owners = _owners()
    level = ladder().resolve(row.acr or "")
    events = []
    for method in methods:
        properties: dict[str, bool] = {}
        if method in WEBAUTHN_METHODS:
            values = tuple(v for v in amr if v in WEBAUTHN_AMR)
            properties = {"user_verified": "user" in amr, "phishing_resistant": True,
                          "hardware_attested": "hwk" in amr,
                          "device_bound": bool(level and level.hardware_bound)}
        else:
            values = tuple(v for v in amr if owners.get(v) == method)
        events.append(AuthEvent(method=method, factor_id=None, amr=values, at=at,
                                properties=properties))
    return events


def _overstates(row: Token, events: list[AuthEvent]) -> bool:
    lad = ladder()
    original = lad.resolve(row.acr or "")
    got = lad.evaluate(events, row.issued_at).acr
    return original is None or (got is not None and lad.rank(got) > lad.rank(original.name))


def prior_events(row: Token) -> list[AuthEvent]:
    """The token's earlier proofs, dated never later than they happened (module docstring)."""
    lad = ladder()
    level = lad.resolve(row.acr or "")
    methods = _amr_methods(list(row.amr or []))
    if level is None or row.auth_time is None or not methods:
        return []
    sound = int(row.issued_at) - level.max_age
    if len(methods) == 1:
        at = int(row.auth_time)
    elif any(lvl.min_factors > 2 for lvl in lad.levels):
        at = sound
    else:
        bounds = [int(until) - lvl.max_age for name, until in (row.acr_expiry or {}).items()
                  if (lvl := lad.resolve(name)) is not None]
        at = min([int(row.auth_time), *bounds])
    events = _events(row, methods, at)
    if _overstates(row, events):
        events = _events(row, methods, sound)
        if _overstates(row, events):
            return []
    return events


@dataclass(frozen=True)
class Levels:
    """``GET /aal``: what holds now, what the user could reach, and the proofs behind it."""

    current: str | None
    next: str | None
    methods: list[AuthEvent]


def canonical(acr: str | None) -> str | None:
    level = ladder().resolve(acr or "")
    return level.name if level else None


def levels(user: User, row: Token, context: AuthContext, now: int) -> Levels:
    """``current``: the strongest level the token still holds (canonical name);
    ``next``: the strongest reachable with its proofs plus every verified factor (Supabase's
    ``nextLevel``: ``aal2`` once a second factor is enrolled)."""
    lad = ladder()
    prior = prior_events(row)
    current = canonical(context.acr)
    reachable = MfaService().reachable(lad, user, prior, now)
    candidates = [name for name in reachable if name]
    if current:
        candidates.append(current)
    best = lad.strongest(*candidates) if candidates else None
    return Levels(current, best, prior)


def satisfies(context: AuthContext, level: str, now: int, max_age: int | None = None) -> bool:
    """Does the token's current context reach ``level`` (with auth_time within max_age)?"""
    lad = ladder()
    held = lad.resolve(context.acr or "")
    wanted = lad.resolve(level)
    if held is None or wanted is None or lad.rank(held.name) < lad.rank(wanted.name):
        return False
    if max_age is not None:
        return context.auth_time is not None and now - context.auth_time <= max_age
    return True


def can_reach(user: User, level: str, now: int) -> bool:
    """Could this user reach ``level`` at all (a primary factor plus every verified factor)?"""
    wanted = ladder().resolve(level)
    expected = [password.password_event(user.id, now)]
    return wanted is not None and wanted.name in MfaService().reachable(ladder(), user,
                                                                        expected, now)
