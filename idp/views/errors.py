"""Error handlers: every error leaves in its protocol's own format, never as a bare 500."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from sqlalchemy import exc as sa_exc
from werkzeug.exceptions import HTTPException

from idp import metrics
from idp.errors import IdpError, ServiceUnavailable
from idp.oidc.authorization import AuthorizationError
from idp.store import StoreUnavailable
from idp.views.responses import deliver

logger = logging.getLogger("idp.errors")

#: Database errors that mean "unreachable right now" (refused, dropped, pool timeout): 503.
DATABASE_UNAVAILABLE = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError)

#: Paths answered with JSON errors (machine clients), everything else with the error page.
JSON_PATH_PREFIXES = ("/token", "/introspect", "/revoke", "/userinfo", "/api/", "/jwks",
                      "/.well-known/")


def wants_json() -> bool:
    return request.path.startswith(JSON_PATH_PREFIXES)


def error_response(error: str, description: str, status: int) -> Response:
    if wants_json():
        response = jsonify(error=error, error_description=description)
        response.status_code = status
        response.headers["Cache-Control"] = "no-store"
        return response
    response = Response(render_template("error.html", error=error, description=description),
                        status=status, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    return response


def _unavailable() -> Response:
    unavailable = ServiceUnavailable(
        "The sign-in service is temporarily unavailable. Please try again shortly.")
    response = error_response(unavailable.error, unavailable.description, 503)
    response.headers["Retry-After"] = "5"
    return response


def register(app: Flask) -> None:
    @app.errorhandler(AuthorizationError)
    def authorization_error(exc: AuthorizationError) -> Response:
        if exc.redirect_uri:
            params = [("error", exc.error), ("error_description", exc.description)]
            if exc.state is not None:
                params.append(("state", exc.state))
            return deliver(exc.redirect_uri, params, exc.response_mode)
        return error_response(exc.error, exc.description, 400)

    @app.errorhandler(IdpError)
    def idp_error(exc: IdpError) -> Response:
        response = error_response(exc.error, exc.description, exc.status)
        if exc.status == 401 and exc.error == "invalid_client":
            response.headers["WWW-Authenticate"] = 'Basic realm="stepup-idp"'  # RFC 6749 §5.2
        retry_after = getattr(exc, "retry_after", None)
        if retry_after:
            response.headers["Retry-After"] = str(retry_after)
        return response

    @app.errorhandler(StoreUnavailable)
    def store_down(exc: StoreUnavailable) -> Response:
        logger.error("store unavailable: %s", exc)
        metrics.dependency_unavailable("redis")
        return _unavailable()

    def database_down(exc: Exception) -> Response:
        # The message may name hosts; the type is enough here (the driver logs the rest).
        logger.error("database unavailable on %s %s: %s", request.method, request.path,
                     type(getattr(exc, "orig", None) or exc).__name__)
        try:
            from idp.extensions import db

            db.session.rollback()
        except Exception:  # the connection is already gone; the session is removed anyway
            logger.debug("rollback after a database error failed", exc_info=True)
        metrics.dependency_unavailable("database")
        return _unavailable()

    for error_class in DATABASE_UNAVAILABLE:
        app.register_error_handler(error_class, database_down)

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError) -> Response:
        return error_response("invalid_request",
                              "The form expired or was not sent by this site. Go back, reload "
                              "the page and try again.", 400)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        code = exc.code or 500
        names = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed",
                 413: "request_too_large", 415: "unsupported_media_type"}
        response = error_response(names.get(code, "invalid_request" if code < 500 else
                                            "server_error"), exc.description or exc.name, code)
        # Keep the exception's own headers (e.g. Allow on 405, RFC 9110 §15.5.6).
        for name, value in exc.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        logger.exception("unhandled error on %s %s", request.method, request.path)
        return error_response("server_error", "Something went wrong on our side.", 500)
