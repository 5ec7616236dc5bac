"""Primary sign-in with a passkey (passwordless; DESIGN §6): throttled and audited like the
password login.

The request asks for any discoverable credential of this RP (W3C WebAuthn Level 3 §5.5,
empty ``allowCredentials``); its challenge is parked in the store under the interaction, for
``mfa.challenge_ttl`` seconds, and consumed by the first answer, right or wrong. The answer's
credential id finds the credential record and so the account; the user handle must match it
(§7.2). A user-verifying passkey alone proves two factors (aal2, DESIGN §3).
"""

from __future__ import annotations

from typing import Any, cast

from idp import audit
from idp.authorize.login import LoginFailed, PrimaryLogin, login_limits
from idp.extensions import db, settings, store
from idp.factors.base import FactorRejected
from idp.factors.passkey import METHOD, PasskeyFactor, find_by_credential_id
from idp.factors.service import factor_env, registry
from idp.models import User
from idp.throttle import Limit, Throttle

PENDING_PREFIX = "passkey-login:"
FAILURE = "That passkey did not sign you in. Try again, or use your password."
EXPIRED = "The passkey request expired. Try again."


def enabled() -> bool:
    """Whether passkeys are an allowed factor (``policy.allowed_factors``)."""
    return isinstance(registry().get(METHOD), PasskeyFactor)


def _factor() -> PasskeyFactor:
    factor = registry().get(METHOD)
    if not isinstance(factor, PasskeyFactor):
        raise LoginFailed("Passkeys are not enabled.")
    return factor


def _ip_limit(ip: str) -> Limit:
    """The password login's per-IP limit: both ways of signing in share one budget."""
    return login_limits("", ip)[1]


def begin(uid: str, ip: str) -> dict[str, Any]:
    """``PublicKeyCredentialRequestOptionsJSON`` for interaction ``uid``; a new request
    replaces an unanswered one. Raises TooManyRequests while the IP is throttled."""
    Throttle(store.current).check(_ip_limit(ip))
    step = _factor().begin_discoverable(factor_env())
    store.current.put(PENDING_PREFIX + uid, step.state, settings().mfa.challenge_ttl)
    return cast(dict[str, Any], step.display.data["options"])


def authenticate(uid: str, response: dict[str, str], ip: str,
                 client_id: str | None = None) -> PrimaryLogin:
    """The account whose passkey answered the challenge parked for ``uid``, and what it
    proved. Raises LoginFailed (audited as ``user.login_failed``; a signature counter that
    did not increase also as ``mfa.clone_suspected``) or TooManyRequests."""
    attempt = Throttle(store.current).begin(_ip_limit(ip))  # a failure until it succeeds
    factor = _factor()
    state = store.current.pop(PENDING_PREFIX + uid)  # single use, whatever the outcome
    user: User | None = None
    credential = None
    try:
        if state is None:
            raise FactorRejected("expired_challenge", EXPIRED)
        credential = find_by_credential_id(factor.credential_id(response))
        if credential is None:
            raise FactorRejected("unknown_credential", FAILURE)
        user = db.session.get(User, credential.user_id)
        if user is None or user.disabled:
            raise FactorRejected("disabled", FAILURE)
        event = factor.verify(factor_env(), user, credential, state, response)
    except FactorRejected as exc:
        db.session.rollback()
        user_id = credential.user_id if credential is not None else None
        factor_id = credential.id if credential is not None else None
        audit.record("user.login_failed", user_id=user_id, client_id=client_id, method=METHOD,
                     factor_id=factor_id, reason=exc.reason)
        if exc.reason == "clone_suspected":
            audit.record("mfa.clone_suspected", user_id=user_id, client_id=client_id,
                         factor_type=METHOD, factor_id=factor_id)
        raise LoginFailed(EXPIRED if exc.reason == "expired_challenge" else FAILURE) from None
    assert user is not None and credential is not None
    credential.last_used_at = event.at
    # Like the password login, a success does not reset the per-IP count (it only takes back
    # its own): one working passkey must not buy an address fresh guesses.
    attempt.succeeded()
    audit.record("user.login_succeeded", user_id=user.id, client_id=client_id, method=METHOD,
                 factor_id=credential.id, commit=False)
    db.session.commit()
    return PrimaryLogin(user, event)
