"""RP-Initiated Logout 1.0 (``end_session_endpoint``).

A post_logout_redirect_uri is honoured only when it is registered, exactly, for the client
named by a valid id_token_hint (or client_id). Without a valid hint for the signed-in session,
the user confirms on our page first (protects against forced logout, ASVS 10.6.2).
"""

from __future__ import annotations

import secrets
from urllib.parse import urlencode, urlsplit

from flask import Blueprint, Response, redirect, render_template, request, session

from idp import audit, oidc, sessions
from idp.errors import InvalidRequest
from idp.extensions import csrf, db, settings, store
from idp.models import Client
from idp.oidc.id_tokens import InvalidIdTokenHint, audiences, read_id_token_hint
from idp.oidc.tokens import revoke_session_tokens
from idp.views.security import allow_form_action

bp = Blueprint("logout", __name__)

PENDING_PREFIX = "logout:"
PENDING_TTL = 600


def _resolve(params: dict[str, str]) -> dict[str, str | None]:
    """Validate the request; returns the redirect target (or None) and whether the hint
    matches the current session. Raises InvalidRequest (shown on our page, no redirect)."""
    hint = params.get("id_token_hint")
    claims = None
    if hint:
        try:
            claims = read_id_token_hint(hint, oidc.keyring(), settings().issuer)
        except InvalidIdTokenHint as exc:
            raise InvalidRequest(f"id_token_hint: {exc}") from None
    client_id = params.get("client_id")
    if claims is not None:
        auds = audiences(claims)
        if client_id and client_id not in auds:
            raise InvalidRequest("client_id does not match the id_token_hint audience.")
        client_id = client_id or (auds[0] if auds else None)
    target = params.get("post_logout_redirect_uri")
    if target:
        client = db.session.get(Client, client_id) if client_id else None
        if client is None:
            raise InvalidRequest("post_logout_redirect_uri needs id_token_hint or client_id.")
        if target not in (client.post_logout_redirect_uris or []):
            raise InvalidRequest("post_logout_redirect_uri is not registered for this client.")
    user_id = sessions.signed_in_user_id(session)
    hint_matches = claims is not None and user_id is not None and claims.get("sub") == user_id \
        and claims.get("sid") in (None, session.get("oidc_sid"))
    return {"target": target, "state": params.get("state"), "client_id": client_id,
            "confirmed": "yes" if hint_matches else None}


def _finish(target: str | None, state: str | None, client_id: str | None) -> Response:
    user_id = sessions.signed_in_user_id(session)
    sid = session.get("oidc_sid")
    if user_id and sid:
        # Tokens issued to this browser session end with it (RFC 9700 §4.14.2 spirit; OIDC
        # Core §11 keeps offline_access ones).
        revoke_session_tokens(user_id, sid)
        db.session.commit()
    if user_id:
        audit.record("user.logout", user_id=user_id, client_id=client_id)
    sessions.end(session)  # type: ignore[arg-type]
    if target:
        query = urlencode([("state", state)]) if state else ""
        sep = "&" if urlsplit(target).query else "?"
        return redirect(target + (sep + query if query else ""), code=303)
    return Response(render_template("logged_out.html"), mimetype="text/html")


@bp.route("/logout", methods=["GET", "POST"])
@csrf.exempt
def end_session() -> Response:
    source = request.form if request.method == "POST" else request.args
    params = {k: source.get(k, "") for k in
              ("id_token_hint", "post_logout_redirect_uri", "state", "client_id")
              if source.get(k)}
    resolved = _resolve(params)
    if resolved["confirmed"]:
        return _finish(resolved["target"], resolved["state"], resolved["client_id"])
    token = secrets.token_urlsafe(24)
    store.current.put(PENDING_PREFIX + token, resolved, PENDING_TTL)
    if resolved["target"]:
        # Confirming ends in a redirect to the client: browsers check form-action on it.
        allow_form_action(resolved["target"])
    return Response(render_template("logout.html", token=token,
                                    signed_in=sessions.signed_in_user_id(session) is not None),
                    mimetype="text/html")


@bp.post("/logout/confirm")
def confirm() -> Response:
    pending = store.current.pop(PENDING_PREFIX + request.form.get("token", "")[:64])
    if pending is None:
        raise InvalidRequest("This sign-out request expired. Sign out again from the application.")
    if request.form.get("decision") != "logout":
        return Response(render_template("logged_out.html", cancelled=True), mimetype="text/html")
    return _finish(pending["target"], pending["state"], pending["client_id"])
