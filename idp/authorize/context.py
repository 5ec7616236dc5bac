"""The state one run of the authorization pipeline works on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from idp.assurance import Assurance, AuthEvent, Ladder
from idp.models import User
from idp.oidc.authorization import AuthorizationRequest
from idp.sessions import ServerSession


@dataclass
class AuthorizeContext:
    request: AuthorizationRequest
    grant: Any                       # authlib grant, used only to issue the code
    session: ServerSession
    ladder: Ladder
    now: int
    #: The interaction record when resuming after hosted pages, else None.
    interaction: dict[str, Any] | None = None
    user: User | None = None
    events: list[AuthEvent] = field(default_factory=list)
    assurance: Assurance | None = None
    #: Subject named by a valid id_token_hint.
    hint_sub: str | None = None
    #: Requested acr values (known ones, canonical names, preference order) and whether essential.
    requested_acr: tuple[str, ...] = ()
    acr_essential: bool = False
    #: The level the user must reach before a code is issued (None: any authentication).
    required_acr: str | None = None
    #: Effective max_age (request, else client default).
    max_age: int | None = None
    #: Levels the user can reach with the session plus every enrolled factor.
    reachable: frozenset[str] = frozenset()
    #: Levels the user could reach by enrolling one more allowed factor now.
    reachable_by_enrolling: frozenset[str] = frozenset()
    #: Levels reachable only after signing in again (the session's proofs are too old).
    reachable_after_login: frozenset[str] = frozenset()
    #: Whether the three ``reachable*`` sets were computed (only when the session falls short
    #: of a requested or required level: they cost a read of the user's factors).
    reachability_known: bool = False
    #: Claims named in the claims parameter that the consent page asks about one by one
    #: (allowed for the client, not covered by a requested scope; OIDC Core §5.5).
    consent_claims: tuple[str, ...] = ()
    #: Why the required level is what it is (policy explain; user.step_up_required audit).
    policy_trace: tuple[str, ...] = ()

    @property
    def interaction_result(self) -> dict[str, Any]:
        return (self.interaction or {}).get("result", {})
