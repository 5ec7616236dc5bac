"""What the user must do next, as data (node-oidc-provider's interaction policy).

A :class:`Prompt` is a named step of the hosted pages holding :class:`Check` s. The first
prompt with a failing check is what the user sees next; under ``prompt=none`` that check's
``error`` goes back to the client instead (OIDC Core §3.1.2.6).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from idp.authorize.context import AuthorizeContext
from idp.extensions import settings


@dataclass(frozen=True)
class Check:
    reason: str
    description: str
    error: str
    #: True when this check requires the prompt.
    applies: Callable[[AuthorizeContext], bool]


@dataclass(frozen=True)
class Prompt:
    name: str
    checks: tuple[Check, ...]

    def failing(self, ctx: AuthorizeContext) -> tuple[Check, ...]:
        return tuple(check for check in self.checks if check.applies(ctx))


def _login_done_here(ctx: AuthorizeContext) -> bool:
    """A sign-in within this interaction answers prompt=login/max_age only for the
    interaction's lifetime (``session.interaction_ttl``): records are re-saved at each step,
    so the flag alone would never expire."""
    done_at = ctx.interaction_result.get("login")
    return isinstance(done_at, int) and \
        ctx.now - done_at <= settings().session.interaction_ttl


def _no_session(ctx: AuthorizeContext) -> bool:
    return ctx.user is None or ctx.assurance is None or ctx.assurance.acr is None


def _login_requested(ctx: AuthorizeContext) -> bool:
    wants = "login" in ctx.request.prompt or "select_account" in ctx.request.prompt
    return wants and not _login_done_here(ctx)


def _max_age_exceeded(ctx: AuthorizeContext) -> bool:
    """OIDC Core §3.1.2.1: re-authenticate when auth_time is older than max_age — the
    auth_time the tokens would carry (that of the level reported, DESIGN §4.6)."""
    if ctx.max_age is None or ctx.assurance is None:
        return False
    auth_time = ctx.ladder.report(ctx.assurance, ctx.requested_acr).auth_time
    if auth_time is None:
        return False
    return ctx.now - auth_time > ctx.max_age and not _login_done_here(ctx)


def _proofs_too_old(ctx: AuthorizeContext) -> bool:
    """DESIGN §4.3: the required level is out of reach from the session's (aged) proofs but
    reachable after signing in again: re-authenticate, then whatever the level needs."""
    required = ctx.required_acr
    if required is None or ctx.assurance is None or required in ctx.assurance.satisfied:
        return False
    if required in ctx.reachable:
        return False
    # Signing in again beats enrolling yet another factor.
    return required in ctx.reachable_after_login and not _login_done_here(ctx)


def _hint_mismatch(ctx: AuthorizeContext) -> bool:
    return ctx.hint_sub is not None and ctx.user is not None and ctx.user.id != ctx.hint_sub


LOGIN = Prompt("login", (
    Check("no_session", "End-User authentication is required.", "login_required", _no_session),
    Check("login_prompt", "prompt=login asks for a fresh sign-in.", "login_required",
          _login_requested),
    Check("max_age", "The authentication is older than max_age.", "login_required",
          _max_age_exceeded),
    Check("id_token_hint", "The signed-in user is not the one id_token_hint names.",
          "login_required", _hint_mismatch),
    Check("acr_stale", "The session's authentication is too old for the requested level.",
          "login_required", _proofs_too_old),
))


def _needs_proof(ctx: AuthorizeContext) -> bool:
    """DESIGN §4.4: the session lacks the required level but the user can reach it."""
    if ctx.user is None or ctx.required_acr is None or ctx.assurance is None:
        return False
    if ctx.required_acr in ctx.assurance.satisfied:
        return False
    return ctx.required_acr in ctx.reachable or ctx.required_acr in ctx.reachable_by_enrolling


MFA = Prompt("mfa", (
    Check("acr", "A stronger authentication is required.", "interaction_required",
          _needs_proof),
))


def _consent_missing(ctx: AuthorizeContext) -> bool:
    from idp.authorize.consent import has_consent

    if "consent" in ctx.interaction_result:
        return False
    if "consent" in ctx.request.prompt:
        return True
    client = ctx.request.client.model
    return not client.first_party and not has_consent(ctx.user, client, ctx.request.scope,
                                                      ctx.consent_claims)


CONSENT = Prompt("consent", (
    Check("consent", "The client needs the End-User's consent.", "consent_required",
          _consent_missing),
))

#: Evaluated in this order; the first with a failing check wins.
POLICY: tuple[Prompt, ...] = (LOGIN, MFA, CONSENT)
