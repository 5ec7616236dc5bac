"""Protocol endpoints: discovery, JWKS, authorize, token, userinfo, introspection, revocation."""

from __future__ import annotations

import base64
import time

from flask import (
    Blueprint,
    Response,
    current_app,
    jsonify,
    redirect,
    request,
    session,
)

from idp import audit, authorize, oidc
from idp.authorize import interactions
from idp.authorize.context import AuthorizeContext
from idp.errors import InvalidClient, InvalidRequest
from idp.extensions import csrf, settings
from idp.models import statements
from idp.oidc.authorization import AuthorizationRequest
from idp.oidc.discovery import provider_metadata
from idp.oidc.userinfo import BearerError, userinfo_claims
from idp.views.responses import deliver

bp = Blueprint("oidc", __name__)

#: Discovery and JWKS may be cached by relying parties (OIDC Discovery §4; RFC 7517).
METADATA_MAX_AGE = 300


def ladder():  # noqa: ANN201 - the Ladder of this app
    return current_app.extensions["idp.ladder"]


@bp.get("/.well-known/openid-configuration")
def discovery() -> Response:
    keyring = oidc.keyring()
    response = jsonify(provider_metadata(settings().issuer, ladder().values_supported,
                                         keyring.algorithms))
    response.headers["Cache-Control"] = f"public, max-age={METADATA_MAX_AGE}"
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


@bp.get("/jwks")
def jwks() -> Response:
    response = jsonify(oidc.keyring().public_jwks())
    response.headers["Cache-Control"] = f"public, max-age={METADATA_MAX_AGE}"
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.mimetype = "application/jwk-set+json"
    return response


@bp.route("/authorize", methods=["GET", "POST"])
@csrf.exempt
def authorization() -> Response:
    """OIDC Core §3.1.2.1: GET and POST (form-encoded) are both supported."""
    source = request.form if request.method == "POST" else request.args
    auth_request, grant = oidc.parse_authorization(list(source.items(multi=True)))
    return _continue(auth_request, grant, None)


@bp.get("/authorize/resume/<uid>")
def resume(uid: str) -> Response:
    """Back from the hosted pages: run the pipeline again with what the user did there."""
    record = interactions.load(uid, request.cookies.get(interactions.cookie_name()))
    return continue_interaction(record)


def continue_interaction(record: dict) -> Response:
    """Run the pipeline again for an interaction already loaded and bound to this browser:
    the code, an error to the client, or the next hosted page."""
    auth_request, grant = oidc.parse_authorization(list(record["params"].items()))
    return _continue(auth_request, grant, record)


def _continue(auth_request: AuthorizationRequest, grant: object,
              record: dict | None) -> Response:
    ctx = AuthorizeContext(request=auth_request, grant=grant, session=session,  # type: ignore[arg-type]
                           ladder=ladder(), now=int(time.time()), interaction=record)
    outcome = authorize.run(ctx)
    if isinstance(outcome, authorize.CodeIssued):
        if record is not None:
            interactions.finish(record["uid"])
        return deliver(auth_request.redirect_uri, outcome.params, auth_request.response_mode)
    if outcome.prompt == "mfa":
        audit.record("user.step_up_required", user_id=ctx.user.id if ctx.user else None,
                     client_id=auth_request.client.client_id,
                     required_acr=outcome.details.get("acr"),
                     trace=outcome.details.get("trace", []))
    if record is None:
        record = interactions.create(auth_request.params, auth_request.client.client_id,
                                     outcome.prompt, outcome.reasons, outcome.details)
    else:
        record["prompt"] = {"name": outcome.prompt, "reasons": outcome.reasons,
                            "details": outcome.details}
        interactions.save(record)
    response = redirect(interactions.page_url(record), code=303)
    interactions.bind_to_browser(response, record["uid"])
    return response


def require_form_parameters() -> None:
    """RFC 6749 §3.2 / RFC 7662 §2.1 / RFC 7009 §2.1: a form-encoded POST body whose
    parameters appear at most once."""
    if request.mimetype != "application/x-www-form-urlencoded":
        raise InvalidRequest("The body must be application/x-www-form-urlencoded.")
    repeated = sorted({k for k in request.form if len(request.form.getlist(k)) > 1})
    if repeated:
        raise InvalidRequest(f"Parameter {repeated[0]} appears more than once.")
    check_basic_credentials()


def check_basic_credentials() -> None:
    """HTTP Basic client credentials must decode (RFC 7617 §2: UTF-8 "id:secret" in base64)."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise InvalidClient("The Basic credentials are not valid base64 of UTF-8 text.") \
            from None
    if ":" not in decoded:
        raise InvalidClient("The Basic credentials must be client_id:client_secret.")


@bp.post("/token")
@csrf.exempt
def token() -> Response:
    require_form_parameters()
    if not request.form.get("grant_type"):
        raise InvalidRequest("grant_type is required (RFC 6749 §4.1.3).")
    return oidc.token_response()


@bp.route("/userinfo", methods=["GET", "POST"])
@csrf.exempt
def userinfo() -> Response:
    statements.reads_only()
    try:
        claims = userinfo_claims(request, oidc.keyring())
    except BearerError as exc:
        body = {"error": exc.error or "invalid_token", "error_description": exc.description}
        response = jsonify(body) if exc.error else Response(status=401)
        response.status_code = exc.status
        response.headers["WWW-Authenticate"] = exc.www_authenticate()
        response.headers["Cache-Control"] = "no-store"
        return response
    response = jsonify(claims)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


@bp.post("/introspect")
@csrf.exempt
def introspect() -> Response:
    require_form_parameters()
    statements.reads_only()
    return oidc.introspection_response()


@bp.post("/revoke")
@csrf.exempt
def revoke() -> Response:
    require_form_parameters()
    return oidc.revocation_response()
