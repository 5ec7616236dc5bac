"""RFC 9470 (OAuth 2.0 Step Up Authentication Challenge) for Flask resource servers.

Usable outside this package: it needs the issuer URL and this server's audience. Access
tokens are our RFC 9068 JWTs, verified against the issuer's JWKS (fetched from discovery and
cached; refetched when an unknown ``kid`` appears, so key rotation needs no restart, but at
most once per :data:`JWKS_MIN_REFETCH_SECONDS`, so tokens with made-up ``kid`` s cannot make
us hammer the issuer)::

    from flask import Flask, g
    from idp import resource
    from idp.resource import require_acr

    app = Flask(__name__)
    app.config["IDP_ISSUER"] = "https://login.example.com"
    app.config["IDP_AUDIENCE"] = "https://api.example.com"   # the tokens' aud: required
    resource.init_app(app)   # checks the configuration now rather than at the first request

    @app.post("/transfers")
    @require_acr("aal2", max_age=300)
    def transfer():
        return {"by": g.access_token["sub"]}

(``ResourceServer(issuer, audience).require_acr(...)`` does the same without app config.)

The audience is mandatory (RFC 9068 §4: the resource server MUST check that ``aud`` names it;
otherwise a token issued for any other API of the same IdP would be accepted here). Without
one, :class:`ResourceServerConfigError` is raised when the server is set up. A server that
really accepts every audience says so with ``IDP_ACCEPT_ANY_AUDIENCE = True`` /
``accept_any_audience=True``.

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
from flask import Flask, Response, current_app, g, jsonify, request
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
#: Least time between two JWKS fetches once keys are known: an unknown ``kid`` (rotation, or a
#: forged token) or a stale cache triggers at most one fetch per interval.
JWKS_MIN_REFETCH_SECONDS = 30
HTTP_TIMEOUT_SECONDS = 5
CLOCK_SKEW_SECONDS = 30


class TokenRejected(Exception):
    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


class ResourceServerConfigError(ValueError):
    """The resource server is set up without an issuer or without an audience."""


class ResourceServer:
    """Validates bearer tokens from one issuer and answers RFC 9470 challenges.

    ``audience``: the value(s) of which a token's ``aud`` must contain one; required unless
    ``accept_any_audience`` is true. ``clock`` (monotonic seconds) paces JWKS fetches.
    Raises ResourceServerConfigError.
    """

    def __init__(self, issuer: str, audience: str | Sequence[str] | None = None,
                 ladder: Sequence[tuple[str, Sequence[str]]] = DEFAULT_LADDER,
                 jwks: dict | None = None, http: requests.Session | None = None, *,
                 accept_any_audience: bool = False,
                 min_refetch_seconds: float = JWKS_MIN_REFETCH_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not issuer:
            raise ResourceServerConfigError("the issuer (IDP_ISSUER) is required")
        self.issuer = issuer.rstrip("/")
        self.audiences = [audience] if isinstance(audience, str) else list(audience or [])
        if not any(self.audiences) and not accept_any_audience:
            raise ResourceServerConfigError(
                "no audience: set IDP_AUDIENCE (ResourceServer(audience=...)) to this "
                "resource server's identifier, the aud the IdP puts in its access tokens "
                "(tokens.access_token_audience); accepting every audience needs "
                "IDP_ACCEPT_ANY_AUDIENCE = True (accept_any_audience=True)")
        self.accept_any_audience = accept_any_audience and not any(self.audiences)
        self._rank: dict[str, int] = {}
        for index, (name, aliases) in enumerate(ladder):
            for value in (name, *aliases):
                self._rank[value] = index
        self._http = http or requests.Session()
        self._lock = threading.Lock()
        self._keys: KeySet | None = KeySet.import_key_set(jwks) if jwks else None
        self._fixed_keys = jwks is not None
        self._min_refetch = min_refetch_seconds
        self._clock = clock
        #: When keys were last fetched, and last tried (successfully or not).
        self._fetched_at: float | None = None
        self._tried_at: float | None = None

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
            if not self._fixed_keys and self._should_fetch(kid):
                self._tried_at = self._clock()
                try:
                    self._keys = self._fetch_keys()
                    self._fetched_at = self._tried_at
                except (requests.RequestException, ValueError, KeyError) as exc:
                    if self._keys is None:
                        raise TokenRejected("invalid_token", "cannot fetch the issuer's keys") \
                            from exc
            if self._keys is None:
                raise TokenRejected("invalid_token", "cannot fetch the issuer's keys")
            return self._keys

    def _should_fetch(self, kid: str | None) -> bool:
        """Fetch when the cache is stale or lacks ``kid`` — but never twice within the minimum
        interval (failed attempts count), so the issuer sees a bounded rate whatever the
        tokens presented; with no keys yet, attempts are paced the same way."""
        now = self._clock()
        if self._tried_at is not None and now - self._tried_at < self._min_refetch:
            return False
        if self._keys is None or self._fetched_at is None:
            return True
        if now - self._fetched_at > JWKS_CACHE_SECONDS:
            return True
        return kid is not None and not any(key.kid == kid for key in self._keys.keys)

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
        aud = claims.get("aud")
        auds = [aud] if isinstance(aud, str) else list(aud or [])
        if not auds:
            raise TokenRejected("invalid_token", "no audience (RFC 9068 §2.2: aud is required)")
        if not self.accept_any_audience and not set(auds) & set(self.audiences):
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


EXTENSION = "idp.resource_server"


def init_app(app: Flask) -> ResourceServer:
    """The app's ResourceServer, built from ``IDP_ISSUER``, ``IDP_AUDIENCE`` (a string or a
    list) and ``IDP_ACCEPT_ANY_AUDIENCE``; call it at start so that a missing audience stops
    the app there. Raises ResourceServerConfigError."""
    server = app.extensions.get(EXTENSION)
    if server is None:
        server = ResourceServer(app.config.get("IDP_ISSUER") or "",
                                app.config.get("IDP_AUDIENCE"),
                                accept_any_audience=bool(app.config.get(
                                    "IDP_ACCEPT_ANY_AUDIENCE", False)))
        app.extensions[EXTENSION] = server
    return server


def require_acr(acr: str, max_age: int | None = None) -> Callable[[F], F]:
    """``@require_acr("aal2", max_age=300)`` for an app whose config names the issuer and the
    audience (:func:`init_app`); one ResourceServer (and JWKS cache) per app. Without
    :func:`init_app` the server is built at the first request, and a missing audience raises
    ResourceServerConfigError then (the request fails; no token is accepted)."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            server = init_app(current_app._get_current_object())  # type: ignore[attr-defined]
            return server.require_acr(acr, max_age)(view)(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate
