"""Token sets issued outside ``/token``: the self-service API's step-up (DESIGN §7).

When a user proves a factor through ``POST /api/v1/me/factors/{id}/verify``, the answer is a
new token set — the API equivalent of a step-up at ``/authorize``. The set is made with the
authorization server's own token generator (RFC 9068 access token, rotating refresh token) and
the OpenID ID token encoder, then persisted like any other (:func:`tokens.persist_token`), so
introspection, revocation, refresh (:func:`grants.current_context`) and reuse detection treat it
exactly like a token from ``/token``.

The authentication context is computed by the ladder (:mod:`idp.assurance`) in
:func:`stepped_up_context` from the presented token's authentication and the new proof:

- the presented token's authentication must still hold at some level (the ladder's max ages,
  :meth:`~idp.assurance.Ladder.still_holds`), else :class:`AuthenticationExpired`;
- the caller passes the token's earlier proofs as events whose times are never later than the
  real ones (see ``idp.api.aal.prior_events``), so the ladder cannot count an old proof as
  fresher than it was: the new ``acr`` never exceeds what the proofs justify;
- if the new proof adds nothing (the evaluation is weaker than what the token already holds),
  the token's current context is kept unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

from flask import current_app

from idp.assurance import AuthEvent, Ladder
from idp.extensions import db, settings
from idp.models import Token, User
from idp.oidc import tokens
from idp.oidc.clients import load_client
from idp.oidc.grants import RefreshIdToken, current_context
from idp.oidc.principal import AuthContext, Principal

#: The ``grant_type`` handed to the token generator (only its expiry lookup reads it; the
#: default access-token lifetime applies).
STEP_UP_GRANT_TYPE = "urn:stepup-idp:api-step-up"


class AuthenticationExpired(Exception):
    """The presented token's authentication no longer holds at any level."""


class ClientGone(Exception):
    """The client the token was issued to is deleted or disabled."""


def _ladder() -> Ladder:
    return current_app.extensions["idp.ladder"]


def held_context(row: Token, now: int) -> AuthContext:
    """The token's authentication as it stands at ``now`` (what refresh would report);
    raises AuthenticationExpired when nothing holds any more."""
    context = current_context(row, now)
    if context is None or context.acr is None:
        raise AuthenticationExpired("the authentication behind this token has expired")
    return context


def stepped_up_context(row: Token, prior: Sequence[AuthEvent], proof: AuthEvent,
                       now: int) -> AuthContext:
    """The context of a token set issued after ``proof``, for the token ``row`` whose earlier
    proofs are ``prior`` (times never later than the real ones). Raises AuthenticationExpired.

    A proof of a method already among ``prior`` replaces it (as on the hosted pages,
    ``idp.sessions.record_event``).
    """
    ladder = _ladder()
    held = held_context(row, now)
    events = [e for e in prior if e.method != proof.method] + [proof]
    result = ladder.evaluate(events, now)
    held_level = ladder.resolve(held.acr or "")
    if result.acr is None or held_level is None \
            or ladder.rank(result.acr) < ladder.rank(held_level.name):
        return held
    report = ladder.report(result)
    return AuthContext(report.acr, report.amr, report.auth_time, row.sid, report.expires)


def issue_token_set(row: Token, user: User, context: AuthContext,
                    now: int | None = None) -> dict[str, Any]:
    """A new token set for the client and scope of ``row``, carrying ``context``.

    The access token (RFC 9068) comes from the registered token generator; an ID token
    (OIDC Core §2, no nonce: nothing was requested at /authorize) when the scope has
    ``openid``; a refresh token when ``row`` had one and the client may refresh. The set joins
    ``row``'s family and code lineage, so revoking the grant, reusing a rotated refresh token
    or replaying the code revokes it too. Raises ClientGone.
    """
    client = load_client(row.client_id)
    if client is None:
        raise ClientGone(row.client_id)
    principal = Principal(user, context, claims_request=row.claims)
    server = current_app.extensions["idp.oauth_server"]
    with_refresh = row.refresh_token_hash is not None and client.check_grant_type(
        "refresh_token")
    token = dict(server.generate_token(STEP_UP_GRANT_TYPE, client, user=principal,
                                       scope=row.scope, include_refresh_token=with_refresh))
    if "openid" in (token.get("scope") or "").split():
        encoder = RefreshIdToken(current_app.extensions["idp.keyring"])
        request = SimpleNamespace(client=client, user=principal, authorization_code=None)
        token["id_token"] = encoder.encode_id_token(token, request)  # type: ignore[arg-type]
    tokens.persist_token(token, client_id=row.client_id, principal=principal,
                         family_id=row.family_id, code_hash=row.code_hash,
                         refresh_ttl=settings().tokens.refresh_token_ttl)
    db.session.commit()
    return token


__all__ = ["AuthenticationExpired", "ClientGone", "held_context", "issue_token_set",
           "stepped_up_context"]
