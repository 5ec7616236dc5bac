"""The authorization pipeline's steps, in order (node-oidc-provider's authorization actions).

Each step takes the :class:`AuthorizeContext`, may fill it in, and raises an error the view
turns into a response. Reading :data:`PIPELINE` is reading the algorithm.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flask import current_app, request

from idp.assurance import AuthEvent
from idp.authorize.consent import claims_to_consent
from idp.authorize.context import AuthorizeContext
from idp.authorize.prompts import POLICY
from idp.extensions import settings
from idp.factors.password import password_event
from idp.factors.service import MfaService
from idp.models import statements
from idp.oidc import keyring
from idp.oidc.id_tokens import InvalidIdTokenHint, audiences, read_id_token_hint
from idp.policy.rules import Decision, decide, grace_logins_apply
from idp.policy.signals import signals_for
from idp.sessions import current_events, last_active, signed_in_user_id


def load_account(ctx: AuthorizeContext) -> None:
    """The signed-in user and what the session proves now (DESIGN §3: levels expire)."""
    user_id = signed_in_user_id(ctx.session)
    user = statements.user_by_id(user_id) if user_id else None
    if user is None or user.disabled:
        return
    ctx.user = user
    ctx.events = current_events(ctx.session)
    ctx.assurance = ctx.ladder.evaluate(ctx.events, ctx.now, last_active(ctx.session))


def check_id_token_hint(ctx: AuthorizeContext) -> None:
    """OIDC Core §3.1.2.1 id_token_hint: an ID token we issued to this client.

    A hint for another user than the signed-in one forces a new sign-in (login prompt) and is
    checked again after it, so it never yields tokens for either user.
    """
    hint = ctx.request.id_token_hint
    if not hint:
        return
    try:
        claims = read_id_token_hint(hint, keyring(), settings().issuer)
    except InvalidIdTokenHint as exc:
        raise ctx.request.error("invalid_request", f"id_token_hint: {exc}") from None
    if ctx.request.client.client_id not in audiences(claims):
        raise ctx.request.error("invalid_request", "id_token_hint was issued to another client.")
    ctx.hint_sub = str(claims["sub"])
    if "login" in ctx.interaction_result and ctx.user is not None and ctx.user.id != ctx.hint_sub:
        raise ctx.request.error("login_required",
                                "The signed-in user is not the one id_token_hint names.")


def assign_acr_requirements(ctx: AuthorizeContext) -> None:
    """DESIGN §4.1-4.2: the requested levels and the level the user must reach.

    Requested: claims.id_token.acr, else acr_values, else the client's default_acr_values,
    in preference order; unknown values are ignored (an essential request naming only unknown
    values fails). Required: the strongest of the first requested level the user can reach
    with the session and enrolled factors (else the first reachable by enrolling, where
    policy allows it) and the client's minimum_acr.
    """
    client = ctx.request.client.model
    acr_claim = ctx.request.requested_id_token_acr
    if acr_claim is not None:
        values = acr_claim.get("values") or ([acr_claim["value"]] if "value" in acr_claim else [])
        raw = [str(v) for v in values if isinstance(v, str)]
        essential = bool(acr_claim.get("essential"))
    elif ctx.request.acr_values:
        raw, essential = list(ctx.request.acr_values), bool(client.require_acr_values)
    else:
        raw, essential = list(client.default_acr_values or []), bool(client.require_acr_values)
    known = [v for v in raw if ctx.ladder.resolve(v) is not None]
    if essential and raw and not known:
        raise ctx.request.error("unmet_authentication_requirements",
                                "None of the requested acr values is supported.")
    ctx.requested_acr = tuple(known)
    ctx.acr_essential = essential and bool(known)
    names = [ctx.ladder.resolve(v).name for v in known]  # type: ignore[union-attr]
    chosen = first_requested_reachable(ctx, names)
    if chosen is None and ctx.acr_essential:
        chosen = names[0]
    decision = policy_decision(ctx)
    ctx.policy_trace = decision.trace
    if client.minimum_acr:
        ctx.policy_trace = (*ctx.policy_trace, f"client minimum_acr is {client.minimum_acr}")
    if chosen:
        ctx.policy_trace = (*ctx.policy_trace, f"requested {chosen}")
    ctx.required_acr = ctx.ladder.strongest(chosen, client.minimum_acr, decision.required)
    # The prompts ask what is reachable only when the session falls short of the level.
    if ctx.user is not None and not ctx.reachability_known and not _session_satisfies(
            ctx, ctx.required_acr):
        assign_reachability(ctx)


def _session_satisfies(ctx: AuthorizeContext, level: str | None) -> bool:
    return level is None or (ctx.assurance is not None and level in ctx.assurance.satisfied)


def first_requested_reachable(ctx: AuthorizeContext, names: list[str]) -> str | None:
    """DESIGN §4.2 preference order: the first requested level the user can reach with the
    session and enrolled factors (or after signing in again), else the first reachable by
    enrolling. A level the session already satisfies is reachable, so when the first one is
    satisfied the user's factors need not be read (the common single-sign-on case)."""
    if not names or ctx.user is None:
        return None
    if _session_satisfies(ctx, names[0]):
        return names[0]
    assign_reachability(ctx)
    return next((n for n in names if n in ctx.reachable | ctx.reachable_after_login), None) \
        or next((n for n in names if n in ctx.reachable_by_enrolling), None)


def policy_decision(ctx: AuthorizeContext) -> Decision:
    """DESIGN §5: enforcement and every matching adaptive rule (signals from the sign-in)."""
    if ctx.user is None:
        return Decision(None, ("not signed in yet",))
    policy = current_app.extensions["idp.policy"]
    # Only grace sign-ins look at whether the user has factors: spare the query otherwise.
    has_factors = grace_logins_apply(policy) and bool(mfa().credentials(ctx.user))
    signals = signals_for(ctx.user, ctx.session.get("signals"), ctx.request.client.client_id,
                          request.remote_addr, has_factors)
    return decide(policy, current_app.extensions["idp.rules"], ctx.ladder, signals,
                  current_app.extensions["idp.policy_since"])


def assign_reachability(ctx: AuthorizeContext) -> None:
    """Which levels the user can reach: with the session's proofs plus enrolled factors; by
    enrolling one more factor (if policy allows); or only after signing in again, when the
    session's proofs have aged out for a level (DESIGN §4.3)."""
    assert ctx.user is not None
    ctx.reachability_known = True
    ctx.reachable = reachable_levels(ctx, ctx.events, enrolling=False)
    if settings().policy.enroll_during_login:
        ctx.reachable_by_enrolling = reachable_levels(ctx, ctx.events, enrolling=True)
    if ctx.user.password_hash:
        fresh = [password_event(ctx.user.id, ctx.now)]
        ctx.reachable_after_login = reachable_levels(ctx, fresh, enrolling=False)


def reachable_levels(ctx: AuthorizeContext, events: list[AuthEvent],
                     enrolling: bool) -> frozenset[str]:
    """Levels satisfiable from ``events`` plus every enrolled factor (plus, with
    ``enrolling``, one newly enrolled allowed factor)."""
    assert ctx.user is not None
    service = mfa()
    if not enrolling:
        return service.reachable(ctx.ladder, ctx.user, events, ctx.now)
    by_factor = service.levels_by_enrolling(ctx.ladder, ctx.user, events, ctx.now)
    return frozenset().union(*by_factor.values())


def mfa() -> MfaService:
    return MfaService()


def check_max_age(ctx: AuthorizeContext) -> None:
    """max_age from the request, else the client's default_max_age (OIDC Core §3.1.2.1,
    OIDC Registration §2); enforced by the login prompt."""
    ctx.max_age = ctx.request.max_age
    if ctx.max_age is None:
        ctx.max_age = ctx.request.client.model.default_max_age


def assign_consent_claims(ctx: AuthorizeContext) -> None:
    """OIDC Core §5.5: claims requested by name need the user's consent like scopes do, for
    clients that are not first-party; the consent page lists them (``idp.authorize.consent``).
    Claims the client is not registered for are never offered."""
    request = ctx.request
    ctx.consent_claims = tuple(claims_to_consent(request.client.model, request.scope,
                                                 request.claims))


@dataclass(frozen=True)
class NeedsInteraction:
    prompt: str
    reasons: list[str]
    #: What the hosted pages need to know (for "mfa": the level to reach).
    details: dict


def interactions(ctx: AuthorizeContext) -> NeedsInteraction | None:
    """The first prompt with a failing check, or None; under prompt=none, its error."""
    for prompt in POLICY:
        failing = prompt.failing(ctx)
        if not failing:
            continue
        if "none" in ctx.request.prompt:
            raise ctx.request.error(failing[0].error, failing[0].description)
        details: dict = {}
        if prompt.name == "mfa":
            details = {"acr": ctx.required_acr, "trace": list(ctx.policy_trace)}
        elif prompt.name == "consent":
            details = {"claims": list(ctx.consent_claims)}
        return NeedsInteraction(prompt.name, [check.reason for check in failing], details)
    return None


def check_acr_met(ctx: AuthorizeContext) -> None:
    """DESIGN §4.5: an essential request the session does not satisfy fails; a voluntary one
    is answered with the acr actually achieved."""
    assert ctx.assurance is not None
    satisfied = ctx.assurance.satisfied
    if ctx.required_acr and ctx.required_acr not in satisfied:
        raise ctx.request.error("unmet_authentication_requirements",
                                f"The client requires {ctx.required_acr}.")
    if ctx.acr_essential and not any(
        ctx.ladder.resolve(v).name in satisfied for v in ctx.requested_acr  # type: ignore[union-attr]
    ):
        raise ctx.request.error("unmet_authentication_requirements",
                                "The requested authentication level cannot be met.")


Step = Callable[[AuthorizeContext], object]

#: Steps before the interaction decision.
PIPELINE: tuple[Step, ...] = (
    load_account,
    check_id_token_hint,
    assign_acr_requirements,
    check_max_age,
    assign_consent_claims,
)
