"""Hosted "Sign in with a passkey" (passwordless primary login) on the login page.

Two POSTs on the ``interaction`` blueprint: one returns the request options as JSON for
``static/webauthn.js`` (and parks the challenge under the interaction), the other takes the
assertion and ends like the password form (``finish_primary_login``).
"""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, render_template, request

from idp.authorize import passkey_login as passwordless
from idp.authorize.login import LoginFailed
from idp.errors import TooManyRequests
from idp.views.interaction import _client, _load, bp, finish_primary_login


@bp.context_processor
def passkey_login_context() -> dict[str, Any]:
    """``passkey_login``: show the passkey button on the login page when passkeys are
    allowed."""
    return {"passkey_login": passwordless.enabled()}


@bp.post("/<uid>/passkey/options")
def passkey_login_options(uid: str) -> Response | tuple[Response, int, dict[str, str]]:
    _client(_load(uid))
    try:
        options = passwordless.begin(uid, request.remote_addr or "")
    except TooManyRequests as exc:
        return (jsonify(error=exc.error, error_description=exc.description), 429,
                {"Retry-After": str(exc.retry_after)})
    response = jsonify(publicKey=options)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/<uid>/passkey")
def passkey_login(uid: str) -> Response | tuple[str, int] | tuple[str, int, dict[str, str]]:
    record = _load(uid)
    client = _client(record)
    try:
        login = passwordless.authenticate(uid, request.form.to_dict(),
                                          request.remote_addr or "", client.client_id)
    except TooManyRequests as exc:
        page = render_template("login.html", uid=uid, client=client, username="",
                               error=exc.description)
        return page, 429, {"Retry-After": str(exc.retry_after)}
    except LoginFailed as exc:
        return render_template("login.html", uid=uid, client=client, username="",
                               error=str(exc)), 401
    return finish_primary_login(uid, record, login)
