"""The authorization endpoint as a pipeline of small steps (DESIGN §1, §4).

:func:`run` validates nothing itself: the request arrives validated by ``idp.oidc``. It runs
:data:`steps.PIPELINE`, then asks the prompts whether the user must interact; if not, it
checks the acr outcome and issues a code bound to a snapshot of the session's assurance.
"""

from __future__ import annotations

from dataclasses import dataclass

from idp.authorize import steps
from idp.authorize.consent import released_claims
from idp.authorize.context import AuthorizeContext
from idp.authorize.steps import NeedsInteraction
from idp.oidc.authorization import issue_code
from idp.oidc.claims import restrict_claims_request
from idp.oidc.principal import AuthContext, Principal

__all__ = ["AuthorizeContext", "CodeIssued", "NeedsInteraction", "run"]


@dataclass(frozen=True)
class CodeIssued:
    params: list[tuple[str, str]]


def run(ctx: AuthorizeContext) -> CodeIssued | NeedsInteraction:
    for step in steps.PIPELINE:
        step(ctx)
    needed = steps.interactions(ctx)
    if needed is not None:
        return needed
    steps.check_acr_met(ctx)
    return CodeIssued(issue_code(ctx.grant, ctx.request, _principal(ctx), _claims(ctx)))


def _claims(ctx: AuthorizeContext) -> dict | None:
    """The claims parameter as the code keeps it: user claims the client may not have or the
    user did not consent to are dropped, so neither /token nor UserInfo (which read only the
    code and its tokens) can release them (OIDC Core §5.5.1: unavailable claims are omitted)."""
    assert ctx.user is not None
    claims = ctx.request.claims
    if not claims:
        return claims
    return restrict_claims_request(
        claims, released_claims(ctx.user, ctx.request.client.model, claims))


def _principal(ctx: AuthorizeContext) -> Principal:
    """DESIGN §4.6: the ID token's acr is the first requested value that is satisfied, else
    the strongest satisfied level; amr and auth_time are that level's own."""
    assert ctx.user is not None and ctx.assurance is not None
    report = ctx.ladder.report(ctx.assurance, ctx.requested_acr)
    sid = ctx.session.get("oidc_sid")
    return Principal(ctx.user, AuthContext(report.acr, report.amr, report.auth_time, sid,
                                           report.expires))
