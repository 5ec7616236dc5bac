"""The authorization request: validation (through authlib's code grant) and code issuance.

Validation order matters for safety (RFC 6749 §4.1.2.1): until the client and its exact
redirect URI are established, errors are shown on our own page and never redirected.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from authlib.oauth2.rfc6749 import OAuth2Error, OAuth2Request
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload

from idp.errors import IdpError
from idp.oidc.clients import OAuthClient, load_client
from idp.oidc.principal import Principal

RESPONSE_MODES = ("query", "form_post")
PROMPTS = frozenset({"none", "login", "consent", "select_account"})
#: Longest single parameter value accepted (bounded work, bounded storage).
MAX_PARAM_LENGTH = 4096
#: The user-facing parameters kept with an interaction so the request can resume after it.
MAX_PARAMS = 50


class AuthorizationError(IdpError):
    """An error in an authorization request.

    With ``redirect_uri`` set the error goes back to the client (with ``state`` and ``iss``,
    RFC 9207); without it the user sees our error page.
    """

    def __init__(self, error: str, description: str, *, redirect_uri: str | None = None,
                 state: str | None = None, response_mode: str = "query") -> None:
        super().__init__(description)
        self.error = error
        self.status = 400
        self.redirect_uri = redirect_uri
        self.state = state
        self.response_mode = response_mode


@dataclass
class AuthorizationRequest:
    """A validated authorization request."""

    client: OAuthClient
    redirect_uri: str
    response_mode: str
    scope: str
    state: str | None
    nonce: str | None
    prompt: frozenset[str]
    max_age: int | None
    acr_values: tuple[str, ...]
    claims: dict[str, Any] | None
    id_token_hint: str | None
    login_hint: str | None
    params: dict[str, str] = field(default_factory=dict)

    def error(self, error: str, description: str) -> AuthorizationError:
        """An error that is sent back to this request's client."""
        return AuthorizationError(error, description, redirect_uri=self.redirect_uri,
                                  state=self.state, response_mode=self.response_mode)

    @property
    def requested_id_token_acr(self) -> dict[str, Any] | None:
        """``claims.id_token.acr`` (OIDC Core §5.5.1.1), if requested."""
        if not self.claims:
            return None
        acr = (self.claims.get("id_token") or {}).get("acr")
        return acr if isinstance(acr, dict) else None


class _ParamsRequest(OAuth2Request):
    """An authlib request over already-decoded parameters (fresh, or resumed from the store)."""

    def __init__(self, params: Mapping[str, str], uri: str) -> None:
        super().__init__("GET", uri)
        self.payload = BasicOAuth2Payload(dict(params))

    @property
    def args(self) -> Mapping[str, str]:
        return self.payload.data

    @property
    def form(self) -> Mapping[str, str]:
        return {}


def single_values(multi: Sequence[tuple[str, str]]) -> tuple[dict[str, str], set[str]]:
    """Parameters as a dict, plus the names that appeared more than once (RFC 6749 §3.1)."""
    values: dict[str, str] = {}
    repeated: set[str] = set()
    for name, value in multi:
        if name in values:
            repeated.add(name)
        values[name] = value
    return values, repeated


def parse_authorization_request(multi: Sequence[tuple[str, str]], server: Any,
                                issuer_uri: str) -> tuple[AuthorizationRequest, Any]:
    """Validate an authorization request; returns it with authlib's grant for code issuance.

    Raises :class:`AuthorizationError`, redirectable to the client or not.
    """
    params, repeated = single_values(multi)
    if len(params) > MAX_PARAMS:
        raise AuthorizationError("invalid_request", "Too many parameters.")
    # 1. Client and redirect URI: until both are known good, nothing is redirected.
    if "client_id" in repeated or "redirect_uri" in repeated:
        raise AuthorizationError("invalid_request", "client_id and redirect_uri may appear once.")
    client = load_client(params.get("client_id"))
    if client is None:
        raise AuthorizationError("invalid_client", "Unknown or missing client_id.")
    redirect_uri = params.get("redirect_uri")
    if not redirect_uri:
        raise AuthorizationError("invalid_request",
                                 "redirect_uri is required (OpenID Connect Core §3.1.2.1).")
    if not client.check_redirect_uri(redirect_uri):
        raise AuthorizationError("invalid_request",
                                 "redirect_uri is not registered for this client.")
    state = params.get("state")
    response_mode = params.get("response_mode") or "query"
    if response_mode not in RESPONSE_MODES or "response_mode" in repeated:
        response_mode_error = "response_mode must be query or form_post."
        raise AuthorizationError("invalid_request", response_mode_error,
                                 redirect_uri=redirect_uri, state=state)

    def fail(error: str, description: str) -> AuthorizationError:
        return AuthorizationError(error, description, redirect_uri=redirect_uri, state=state,
                                  response_mode=response_mode)

    # 2. Everything else is reported to the client.
    if repeated:
        raise fail("invalid_request", f"Repeated parameter: {sorted(repeated)[0]}.")
    too_long = next((k for k, v in params.items() if len(v) > MAX_PARAM_LENGTH), None)
    if too_long:
        raise fail("invalid_request", f"Parameter {too_long} is too long.")
    if "request" in params:
        raise fail("request_not_supported", "Request objects are not supported.")
    if "request_uri" in params:
        raise fail("request_uri_not_supported", "request_uri is not supported.")
    if not params.get("response_type"):
        raise fail("invalid_request", "response_type is required.")
    if params["response_type"] != "code":
        raise fail("unsupported_response_type", "Only response_type=code is supported.")
    scopes = params.get("scope", "").split()
    if "openid" not in scopes:
        raise fail("invalid_scope", "The openid scope is required.")

    # authlib: client/response_type/redirect checks again, scope, PKCE S256 and nonce hooks.
    request = _ParamsRequest(params, issuer_uri)
    try:
        grant = server.get_authorization_grant(request)
        grant.validate_authorization_request()
    except OAuth2Error as error:
        raise fail(error.error, error.description or error.error) from error

    prompt = frozenset(params.get("prompt", "").split())
    if not prompt <= PROMPTS:
        raise fail("invalid_request", "Unknown prompt value.")
    if "none" in prompt and len(prompt) > 1:
        raise fail("invalid_request", "prompt=none cannot be combined with other values.")
    max_age = _max_age(params.get("max_age"), fail)
    claims = _claims(params.get("claims"), fail)
    request.requested_claims = claims
    return AuthorizationRequest(
        client=client, redirect_uri=redirect_uri, response_mode=response_mode,
        scope=request.scope, state=state, nonce=params.get("nonce"), prompt=prompt,
        max_age=max_age, acr_values=tuple(params.get("acr_values", "").split()),
        claims=claims, id_token_hint=params.get("id_token_hint"),
        login_hint=params.get("login_hint"), params=params,
    ), grant


def _max_age(raw: str | None, fail: Any) -> int | None:
    if raw is None or raw == "":
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 10:
        raise fail("invalid_request", "max_age must be a non-negative integer.")
    return int(raw)


def _claims(raw: str | None, fail: Any) -> dict[str, Any] | None:
    """The ``claims`` parameter (OIDC Core §5.5): a JSON object of id_token/userinfo members."""
    if raw is None or raw == "":
        return None
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        raise fail("invalid_request", "claims is not valid JSON.") from None
    if not isinstance(value, dict) or any(
        k in value and not isinstance(value[k], dict) for k in ("id_token", "userinfo")
    ):
        raise fail("invalid_request", "claims must be a JSON object of objects.")
    acr = (value.get("id_token") or {}).get("acr")
    if acr is not None and not _valid_claim_request(acr):
        raise fail("invalid_request", "claims.id_token.acr must be null or an object with "
                                      "'essential' (boolean), 'value' (string) or 'values' "
                                      "(array of strings) (OIDC Core §5.5.1).")
    return value


def _valid_claim_request(request: object) -> bool:
    if not isinstance(request, dict):
        return False
    if "essential" in request and not isinstance(request["essential"], bool):
        return False
    if "value" in request and not isinstance(request["value"], str):
        return False
    values = request.get("values")
    return values is None or (isinstance(values, list)
                              and all(isinstance(v, str) for v in values))


def issue_code(grant: Any, request: AuthorizationRequest, principal: Principal,
               claims: dict[str, Any] | None) -> list[tuple[str, str]]:
    """Issue a code bound to the authentication snapshot and to ``claims``, the claims
    parameter reduced to what may be released; returns the response parameters (``code``,
    ``state``) for the client's redirect URI (RFC 6749 §4.1.2)."""
    grant.request.user = principal
    grant.request.requested_claims = claims
    code = grant.generate_authorization_code()
    grant.save_authorization_code(code, grant.request)
    params = [("code", code)]
    if request.state is not None:
        params.append(("state", request.state))
    return params
