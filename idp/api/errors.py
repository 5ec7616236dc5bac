"""The JSON APIs' errors: one shape, ``{"error": "<code>", "error_description": "…"}``.

Each class is named after the error it becomes (STYLE §9) and carries its HTTP status
(RFC 9110 §15) and any header the status calls for: ``WWW-Authenticate`` on 401 and on the
bearer 403s (RFC 6750 §3), ``Retry-After`` on 429 (RFC 6585 §4). Validation errors add a
``field`` member naming the offending request member (dotted path) — the only addition to the
shape, and only on ``validation_failed``.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from idp.errors import IdpError
from idp.factors import base as factor_base

#: The ``realm`` of every API challenge (RFC 6750 §3).
REALM = "stepup-idp"


def _quoted(value: str) -> str:
    """An RFC 9110 §5.6.4 quoted-string: backslash-escape quotes and backslashes, drop
    control characters (descriptions are ours, but never let one break the header)."""
    cleaned = "".join(ch for ch in value if ch >= " " and ch != "\x7f")
    return '"' + cleaned.replace("\\", "\\\\").replace('"', '\\"') + '"'


class ApiError(IdpError):
    """Base of the API errors; ``headers()`` adds what the status requires."""

    error = "invalid_request"
    status = 400

    def headers(self) -> dict[str, str]:
        return {}

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description or self.error}


class InvalidRequest(ApiError):
    """400: the body is not JSON, or the request is malformed (RFC 6750 §3.1 too)."""


class BearerChallenge(ApiError):
    """An RFC 6750 §3 error: its ``WWW-Authenticate`` names the error (and the scope)."""

    scope: str | None = None

    def __init__(self, description: str = "", scope: str | None = None) -> None:
        super().__init__(description)
        self.scope = scope

    def headers(self) -> dict[str, str]:
        parts = [f"Bearer realm={_quoted(REALM)}", f"error={_quoted(self.error)}",
                 f"error_description={_quoted(self.description or self.error)}"]
        if self.scope:
            parts.append(f"scope={_quoted(self.scope)}")
        return {"WWW-Authenticate": ", ".join(parts)}


class MissingToken(BearerChallenge):
    """401 without an error code in the challenge: the request carried no credentials
    (RFC 6750 §3.1: "SHOULD NOT include an error code")."""

    error = "invalid_token"
    status = 401

    def headers(self) -> dict[str, str]:
        challenge = f"Bearer realm={_quoted(REALM)}"
        if self.scope:
            challenge += f", scope={_quoted(self.scope)}"
        return {"WWW-Authenticate": challenge}


class InvalidToken(BearerChallenge):
    """401 ``invalid_token``: expired, revoked, malformed, or no longer backed by a live
    user, client or authentication (RFC 6750 §3.1)."""

    error = "invalid_token"
    status = 401


class MalformedAuthorization(BearerChallenge):
    """400 ``invalid_request``: an Authorization header that is not a bearer token, or a token
    sent in the query (RFC 6750 §2.3 is not supported)."""

    error = "invalid_request"
    status = 400


class InsufficientScope(BearerChallenge):
    """403 ``insufficient_scope`` (RFC 6750 §3.1); the challenge names the scope needed."""

    error = "insufficient_scope"
    status = 403


class InsufficientAal(ApiError):
    """403 ``insufficient_aal`` (Supabase's code): the token's authentication is below the
    level the operation needs. The challenge tells a client what to do, in RFC 9470 terms."""

    error = "insufficient_aal"
    status = 403

    def __init__(self, description: str = "", acr: str = "aal2",
                 max_age: int | None = None) -> None:
        super().__init__(description)
        self.acr = acr
        self.max_age = max_age

    def headers(self) -> dict[str, str]:
        challenge = (f"Bearer realm={_quoted(REALM)}, "
                     f"error={_quoted('insufficient_user_authentication')}, "
                     f"error_description={_quoted(self.description)}, "
                     f"acr_values={_quoted(self.acr)}")
        if self.max_age is not None:
            challenge += f", max_age={self.max_age}"
        return {"WWW-Authenticate": challenge}


class NotFound(ApiError):
    error = "not_found"
    status = 404


class Conflict(ApiError):
    """409: the request conflicts with the resource's current state (RFC 9110 §15.5.10)."""

    error = "conflict"
    status = 409


class FactorUnavailable(ApiError):
    """409: the factor cannot be used now (no address on file, delivery failed…)."""

    error = "factor_unavailable"
    status = 409


class PayloadTooLarge(ApiError):
    """413 (RFC 9110 §15.5.14)."""

    error = "request_too_large"
    status = 413


class UnsupportedMediaType(ApiError):
    """415 (RFC 9110 §15.5.16): request bodies must be ``application/json``."""

    error = "unsupported_media_type"
    status = 415


class ValidationFailed(ApiError):
    """422 (RFC 9110 §15.5.21): well-formed JSON whose content is wrong; names the field."""

    error = "validation_failed"
    status = 422

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field

    def body(self) -> dict[str, str]:
        return {**super().body(), "field": self.field}


class VerificationFailed(ApiError):
    """422: the answer did not prove the factor (wrong or replayed code, bad assertion)."""

    error = "verification_failed"
    status = 422


class ChallengeExpired(ApiError):
    """422: the challenge is unknown, used, expired, or belongs to another factor."""

    error = "challenge_expired"
    status = 422


class TooManyRequests(ApiError):
    """429 with ``Retry-After`` (RFC 6585 §4): the shared throttles of the hosted pages."""

    error = "too_many_requests"
    status = 429

    def __init__(self, description: str = "", retry_after: int = 1) -> None:
        super().__init__(description)
        self.retry_after = max(1, int(retry_after))

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


def render(exc: IdpError) -> Response:
    """The response for any :class:`~idp.errors.IdpError` raised under ``/api/``."""
    if isinstance(exc, ApiError):
        body, headers = exc.body(), exc.headers()
    else:  # the app's own typed errors (e.g. from idp.oidc.clients or the service)
        body = {"error": exc.error, "error_description": exc.description or exc.error}
        headers = {}
        retry_after = getattr(exc, "retry_after", None)
        if exc.status == 429 and retry_after:
            headers["Retry-After"] = str(retry_after)
    response = jsonify(body)
    response.status_code = exc.status
    response.headers.update(headers)
    response.headers["Cache-Control"] = "no-store"
    return response


def install_handlers(blueprint: Blueprint) -> None:
    """Render every typed error raised under ``blueprint`` in the API shape; a factor's own
    refusal that a view did not translate still becomes a 4xx, never a 500."""
    blueprint.register_error_handler(IdpError, render)
    blueprint.register_error_handler(
        factor_base.FactorRejected, lambda exc: render(VerificationFailed(exc.message)))
    blueprint.register_error_handler(
        factor_base.FactorUnavailable,
        lambda exc: render(TooManyRequests(exc.message, exc.retry_after) if exc.retry_after
                           else FactorUnavailable(exc.message)))
