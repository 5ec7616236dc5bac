"""Typed errors, each named after the protocol error it becomes.

Views never build error dictionaries: they raise one of these and the error handlers in
``idp/views/errors.py`` render it in the protocol's own format (a JSON body, a redirect to the
relying party, or the hosted error page).
"""

from __future__ import annotations


class IdpError(Exception):
    """Base class: ``error`` is the protocol error code, ``status`` the HTTP status."""

    error = "server_error"
    status = 500

    def __init__(self, description: str = "") -> None:
        super().__init__(description or self.error)
        self.description = description


class InvalidRequest(IdpError):
    error = "invalid_request"
    status = 400


class InvalidClient(IdpError):
    error = "invalid_client"
    status = 401


class InvalidGrant(IdpError):
    error = "invalid_grant"
    status = 400


class AccessDenied(IdpError):
    error = "access_denied"
    status = 403


class LoginRequired(IdpError):
    error = "login_required"
    status = 400


class InteractionRequired(IdpError):
    error = "interaction_required"
    status = 400


class ConsentRequired(IdpError):
    error = "consent_required"
    status = 400


class UnmetAuthenticationRequirements(IdpError):
    """OpenID Connect Core Error Code unmet_authentication_requirements 1.0."""

    error = "unmet_authentication_requirements"
    status = 400


class NotFound(IdpError):
    error = "not_found"
    status = 404


class TooManyRequests(IdpError):
    error = "too_many_requests"
    status = 429

    def __init__(self, description: str = "", retry_after: int = 1) -> None:
        super().__init__(description)
        self.retry_after = max(1, int(retry_after))


class ServiceUnavailable(IdpError):
    error = "temporarily_unavailable"
    status = 503


class InteractionExpired(IdpError):
    """The sign-in attempt (interaction) is unknown or expired: the user starts again at the RP."""

    error = "interaction_expired"
    status = 400
