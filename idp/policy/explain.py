"""``idp policy explain``: what the policy would ask of a user signing in to a client.

It runs the same pieces the authorization pipeline runs (requested levels, reachability with
the user's enrolled factors, enforcement and adaptive rules) for a sign-in with a password
just now, and says what the user would see next.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from flask import current_app
from sqlalchemy import func, select

from idp.extensions import db
from idp.factors.password import password_event
from idp.factors.service import MfaService
from idp.models import Client, User
from idp.policy.rules import Signals, decide


class ExplainError(ValueError):
    """Unknown user or client."""


@dataclass
class Explanation:
    required: str | None
    trace: list[str]
    next_step: str
    reachable: list[str] = field(default_factory=list)


def explain(username: str, client_id: str, acr_values: list[str], new_device: bool = False,
            country: str | None = None, ip: str | None = None,
            recent_failures: int = 0) -> Explanation:
    user = db.session.scalar(select(User).where(func.lower(User.username) == username.lower()))
    if user is None:
        raise ExplainError(f"no user {username!r}")
    client = db.session.get(Client, client_id)
    if client is None:
        raise ExplainError(f"no client {client_id!r}")
    ladder = current_app.extensions["idp.ladder"]
    service = MfaService()
    now = int(time.time())
    events = [password_event(user.id, now)]
    reachable = service.reachable(ladder, user, events, now)
    requested = [ladder.resolve(v).name for v in (acr_values or client.default_acr_values or [])
                 if ladder.resolve(v) is not None]
    chosen = next((level for level in requested if level in reachable), None)
    geoip = current_app.extensions.get("idp.geoip")
    looked_up = country is None and ip is not None and geoip is not None
    if looked_up:
        # As at a real sign-in without a trusted country header (idp.policy.signals.country_of).
        country = geoip.country(ip)
    signals = Signals(client_id=client.client_id, ip=ip, new_device=new_device,
                      country=country, previous_country=user.last_country,
                      recent_failures=recent_failures, user_created_at=user.created_at,
                      user_has_factors=bool(service.credentials(user)),
                      logins_without_mfa=(user.logins_without_mfa or 0) + 1)
    decision = decide(current_app.extensions["idp.policy"], current_app.extensions["idp.rules"],
                      ladder, signals, current_app.extensions["idp.policy_since"])
    trace = list(decision.trace)
    if looked_up:
        trace.insert(0, f"country of {ip} in {geoip.database_type}: {country or 'unknown'}")
    if client.minimum_acr:
        trace.append(f"client minimum_acr is {client.minimum_acr}")
    if requested:
        trace.append(f"requested {', '.join(requested)}; first reachable: {chosen or 'none'}")
    required = ladder.strongest(chosen, client.minimum_acr, decision.required)
    return Explanation(required, trace, _next_step(service, ladder, user, events, required,
                                                   reachable, now), sorted(reachable))


def _next_step(service: MfaService, ladder: object, user: User, events: list, required: str | None,
               reachable: frozenset[str], now: int) -> str:
    if required is None or required in ladder.evaluate(events, now).satisfied:  # type: ignore[attr-defined]
        return "password sign-in, then the code is issued"
    if required in reachable:
        options = service.options(ladder, user, events, required, now)  # type: ignore[arg-type]
        names = ", ".join(f"{c.method} ({c.name})" for c in options)
        return f"password sign-in, then a {required} challenge with one of: {names}"
    return (f"password sign-in, then enrollment of a factor reaching {required} (if "
            f"policy.enroll_during_login), else error unmet_authentication_requirements")
