"""Interaction records: an authorization request parked while the user is on hosted pages.

Stored in the ephemeral store under a 256-bit random uid and bound to the browser by the
``idp_interaction`` cookie, so a uid leaked from one browser is useless in another.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from flask import url_for
from werkzeug.wrappers import Response

from idp import request_log
from idp.cookies import host_cookie_name
from idp.crypto import constant_time_equals
from idp.errors import InteractionExpired
from idp.extensions import settings, store

KEY_PREFIX = "interaction:"
#: Interaction kinds: a relying party's authorization request, or the IdP's own account pages.
AUTHORIZE = "authorize"
ACCOUNT = "account"
#: The cookie binding an interaction to the browser; see :func:`cookie_name`.
COOKIE_NAME = "idp_interaction"
UID_BYTES = 32


def cookie_name() -> str:
    """``idp_interaction``, as ``__Host-idp_interaction`` on an https issuer (idp.cookies)."""
    return host_cookie_name(COOKIE_NAME, settings().secure_cookies)


def page_url(record: dict[str, Any]) -> str:
    """Where the browser goes for the interaction's current prompt: a second factor straight
    to the factor picker (which opens the only challenge at once), everything else to the
    interaction page; one redirect fewer per step-up than going through the latter."""
    if record["prompt"]["name"] == "mfa":
        return url_for("interaction.mfa_picker", uid=record["uid"])
    return url_for("interaction.show", uid=record["uid"])


def bind_to_browser(response: Response, uid: str) -> None:
    """Set the cookie that ties interaction ``uid`` to this browser (host-only, Path=/)."""
    response.set_cookie(cookie_name(), uid, httponly=True, samesite="Lax",
                        secure=settings().secure_cookies, path="/",
                        max_age=settings().session.interaction_ttl)


def create(params: dict[str, str], client_id: str | None, prompt: str, reasons: list[str],
           details: dict[str, Any] | None = None, kind: str = AUTHORIZE,
           return_to: str | None = None) -> dict[str, Any]:
    record = {
        "uid": secrets.token_urlsafe(UID_BYTES),
        "kind": kind,
        "return_to": return_to,
        "params": params,
        "client_id": client_id,
        "prompt": {"name": prompt, "reasons": reasons, "details": details or {}},
        "created": int(time.time()),
        "result": {},
    }
    save(record)
    return record


def save(record: dict[str, Any]) -> None:
    store.current.put(KEY_PREFIX + record["uid"], record, settings().session.interaction_ttl)


def load(uid: str, cookie_value: str | None) -> dict[str, Any]:
    """The record for ``uid`` if it exists and belongs to this browser; else InteractionExpired."""
    if not uid or len(uid) > 100 or not cookie_value or not constant_time_equals(uid, cookie_value):
        raise InteractionExpired("This sign-in link is not valid in this browser. Start again "
                                 "from the application.")
    record = store.current.get(KEY_PREFIX + uid)
    if record is None:
        raise InteractionExpired("This sign-in attempt has expired. Start again from the "
                                 "application.")
    request_log.note_identity(client_id=record.get("client_id"))
    return record


def finish(uid: str) -> None:
    store.current.delete(KEY_PREFIX + uid)
