"""RFC 9470 (OAuth 2.0 Step Up Authentication Challenge) for Flask resource servers.

Usable outside this package: it needs only the issuer URL. Access tokens are our RFC 9068
JWTs, verified against the issuer's JWKS (fetched from discovery and cached; refetched once
when an unknown ``kid`` appears, so key rotation needs no restart)::

    from flask import Flask, g
    from idp.resource import require_acr

    app = Flask(__name__)
    app.config["IDP_ISSUER"] = "https://login.example.com"
    app.config["IDP_AUDIENCE"] = "my-api"          # optional

    @app.post("/transfers")
    @require_acr("aal2", max_age=300)
    def transfer():
        return {"by": g.access_token["sub"]}

(``ResourceServer(issuer, audience).require_acr(...)`` does the same without app config.)

A token whose ``acr``/``auth_time`` fall short gets 401 with
``WWW-Authenticate: Bearer error="insufficient_user_authentication",
error_description="…", acr_values="aal2", max_age=300`` (RFC 9470 §3); the client sends the
user back through ``/authorize`` with those ``acr_values``/``max_age`` and retries.
"""

from __future__ import annotations

import base64
import functools
import json
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import requests
from flask import Response, current_app, g, jsonify, request
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

F = TypeVar("F", bound=Callable[..., Any])

#: Default ladder, weakest first, with aliases (DESIGN §3); a resource server that uses other
#: levels passes its own ``ladder``.
DEFAULT_LADDER: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("aal1", ("0", "1")),
    ("aal2", ("mfa", "http://schemas.openid.net/pape/policies/2007/06/multi-factor")),
    ("phr", ("http://schemas.openid.net/pape/policies/2007/06/phishing-resistant",)),
    ("phrh", ("aal3", "http://schemas.openid.net/acr/2016/07/phishing-resistant-hardware")),
)
JWKS_CACHE_SECONDS = 300
HTTP_TIMEOUT_SECONDS = 5
CLOCK_SKEW_SECONDS = 30


class TokenRejected(Exception):
    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


class ResourceServer:
    """Validates bearer tokens from one issuer and answers RFC 9470 challenges."""

    def __init__(self, issuer: str, audience: str | Sequence[str] | None = None,
                 ladder: Sequence[tuple[str, Sequence[str]]] = DEFAULT_LADDER,
                 jwks: dict | None = None, http: requests.Session | None = None) -> None:
        self.issuer = issuer.rstrip("/")
        self.audiences = [audience] if isinstance(audience, str) else list(audience or [])
        self._rank: dict[str, int] = {}
        for index, (name, aliases) in enumerate(ladder):
            for value in (name, *aliases):
                self._rank[value] = index
        self._http = http or requests.Session()
        self._lock = threading.Lock()
        self._keys: KeySet | None = KeySet.import_key_set(jwks) if jwks else None
        self._fixed_keys = jwks is not None
        self._fetched_at = 0.0

    # -- keys ----------------------------------------------------------------------------------

    def _fetch_keys(self) -> KeySet:
        metadata = self._http.get(f"{self.issuer}/.well-known/openid-configuration",
                                  timeout=HTTP_TIMEOUT_SECONDS).json()
        if metadata.get("issuer") != self.issuer:
            raise TokenRejected("invalid_token", "issuer metadata mismatch")
        data = self._http.get(metadata["jwks_uri"], timeout=HTTP_TIMEOUT_SECONDS).json()
        return KeySet.import_key_set(data)

    def _key_set(self, kid: str | None) -> KeySet:
        with self._lock:
            stale = time.monotonic() - self._fetched_at > JWKS_CACHE_SECONDS
            unknown = kid is not None and self._keys is not None and not any(
                key.kid == kid for key in self._keys.keys)
            if not self._fixed_keys and (self._keys is None or stale or unknown):
                try:
                    self._keys = self._fetch_keys()
                    self._fetched_at = time.monotonic()
                except (requests.RequestException, ValueError, KeyError) as exc:
                    if self._keys is None:
                        raise TokenRejected("invalid_token", "cannot fetch the issuer's keys") \
                            from exc
            assert self._keys is not None
            return self._keys

    # -- validation ------------------------------------------------------------------------

    def validate(self, token: str, now: int | None = None) -> dict[str, Any]:
        """The claims of a valid access token; raises TokenRejected (RFC 6750 §3.1)."""
        now = int(time.time()) if now is None else now
        if not token or token.count(".") != 2 or len(token) > 8192:
            raise TokenRejected("invalid_token", "malformed token")
        try:
            decoded = jwt.decode(token, self._key_set(_unverified_kid(token)),
                                 algorithms=["RS256", "ES256"])
        except (JoseError, ValueError, KeyError, TypeError) as exc:
            raise TokenRejected("invalid_token", "signature rejected") from exc
        if decoded.header.get("typ") != "at+jwt":
            raise TokenRejected("invalid_token", "not an access token (RFC 9068 typ)")
        claims = decoded.claims
        if claims.get("iss") != self.issuer:
            raise TokenRejected("invalid_token", "wrong issuer")
        if not isinstance(claims.get("exp"), int) or claims["exp"] + CLOCK_SKEW_SECONDS <= now:
            raise TokenRejected("invalid_token", "expired")
        if self.audiences:
            aud = claims.get("aud")
            auds = [aud] if isinstance(aud, str) else list(aud or [])
            if not set(auds) & set(self.audiences):
                raise TokenRejected("invalid_token", "not meant for this resource")
        return claims

    def satisfies(self, claims: dict[str, Any], acr: str, max_age: int | None,
                  now: int | None = None) -> bool:
        """RFC 9470 §3: the token's acr is at least ``acr`` and its auth_time recent enough."""
        now = int(time.time()) if now is None else now
        have = self._rank.get(str(claims.get("acr", "")), -1)
        if have < self._rank.get(acr, len(self._rank)):
            return False
        if max_age is not None:
            auth_time = claims.get("auth_time")
            if not isinstance(auth_time, int) or now - auth_time > max_age:
                return False
        return True

    # -- the decorator -----------------------------------------------------------------------

    def require_acr(self, acr: str, max_age: int | None = None) -> Callable[[F], F]:
        """Protect a view: valid token, and ``acr``/``max_age`` met, else a challenge."""

        def decorate(view: F) -> F:
            @functools.wraps(view)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                header = request.headers.get("Authorization", "")
                scheme, _, token = header.partition(" ")
                if scheme.lower() != "bearer" or not token.strip():
                    return _challenge(None, "a bearer token is required", 401)
                try:
                    claims = self.validate(token.strip())
                except TokenRejected as exc:
                    return _challenge(exc.error, exc.description, 401)
                if not self.satisfies(claims, acr, max_age):
                    description = (f"A stronger or more recent authentication is required "
                                   f"({acr}" + (f" within {max_age} s)" if max_age else ")"))
                    return _challenge("insufficient_user_authentication", description, 401,
                                      acr_values=acr, max_age=max_age)
                g.access_token = claims
                return view(*args, **kwargs)

            return wrapper  # type: ignore[return-value]

        return decorate


def _challenge(error: str | None, description: str, status: int,
               acr_values: str | None = None, max_age: int | None = None) -> Response:
    parts = ['Bearer realm="api"']
    if error:
        parts.append(f'error="{error}"')
        parts.append(f'error_description="{description}"')
    if acr_values:
        parts.append(f'acr_values="{acr_values}"')
    if max_age is not None:
        parts.append(f"max_age={max_age}")
    body = {"error": error or "invalid_request", "error_description": description}
    response = jsonify(body)
    response.status_code = status
    response.headers["WWW-Authenticate"] = ", ".join(parts)
    return response


def _unverified_kid(token: str) -> str | None:
    """The ``kid`` of a JWS header, read before verification only to pick the key."""
    try:
        segment = token.split(".")[0]
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, UnicodeDecodeError):
        return None
    kid = header.get("kid") if isinstance(header, dict) else None
    return kid if isinstance(kid, str) else None


def require_acr(acr: str, max_age: int | None = None) -> Callable[[F], F]:
    """``@require_acr("aal2", max_age=300)`` for an app whose config names the issuer
    (``IDP_ISSUER``, optional ``IDP_AUDIENCE``); one ResourceServer (and JWKS cache) per app."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            server = current_app.extensions.get("idp.resource_server")
            if server is None:
                server = ResourceServer(current_app.config["IDP_ISSUER"],
                                        current_app.config.get("IDP_AUDIENCE"))
                current_app.extensions["idp.resource_server"] = server
            return server.require_acr(acr, max_age)(view)(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate
