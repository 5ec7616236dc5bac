"""The OpenID Foundation conformance suite's conditions, replicated as plain functions.

The official suite (openid-certification/conformance-suite) drives an OP with a browser and
checks every response with small "conditions" (``ValidateIdToken``, ``CheckMatchingStateParameter``,
``CheckTokenEndpointCacheHeaders``, ...). The functions here are those checks, named after the
conditions in their docstrings, so each test module reads like the suite's module it replicates.

The user agent is ``tests.helpers.rp.Browser``; the hosted pages are recognised by their
``<main data-page="...">`` contract.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import requests
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.helpers.rp import DEFAULT_PASSWORD, Browser, RelyingParty, page_name

#: Clock skew the suite tolerates on iat/exp/auth_time (5 minutes).
SKEW = 300
YEAR = 365 * 24 * 3600
#: RFC 6749 §4.1.2.1 / §5.2: characters allowed in error and error_description.
ERROR_CHARS = re.compile(r"^[\x20\x21\x23-\x5B\x5D-\x7E]+$")
#: RFC 6749 Appendix A: VSCHAR (access tokens A.12, refresh tokens A.17).
VSCHAR = re.compile(r"^[\x20-\x7E]+$")
#: CheckErrorFromAuthorizationEndpointIsOneThatRequiredAUserInterface (OIDC Core §3.1.2.6).
USER_INTERFACE_ERRORS = frozenset({"login_required", "interaction_required", "consent_required",
                                   "account_selection_required"})
#: Members of a JWK that only a private or symmetric key has (RFC 7518 §6.3.2, §6.4).
PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
REDIRECT_STATUSES = (301, 302, 303, 307, 308)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_json(value: dict[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def unverified_part(token: str, index: int) -> dict[str, Any]:
    part = token.split(".")[index]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def unsigned_jwt(claims: dict[str, Any]) -> str:
    """An ``alg: none`` JWT (SerializeRequestObjectWithNullAlgorithm, ChangeIdTokenToAlgNone)."""
    return f"{b64url_json({'alg': 'none', 'typ': 'JWT'})}.{b64url_json(claims)}."


def long_state() -> str:
    """A 128-character state (the suite's ``requested_state_length`` = 128)."""
    state = secrets.token_urlsafe(96)
    assert len(state) == 128
    return state


# -- the authorization request ---------------------------------------------------------------

@dataclass
class AuthRequest:
    """An authorization request and the client-side secrets that go with it."""

    params: dict[str, str]
    verifier: str

    @property
    def state(self) -> str | None:
        return self.params.get("state")

    @property
    def nonce(self) -> str | None:
        return self.params.get("nonce")

    @property
    def redirect_uri(self) -> str | None:
        return self.params.get("redirect_uri")

    def url(self, issuer: str) -> str:
        return f"{issuer}/authorize?{urlencode(list(self.params.items()))}"


def auth_request(rp: RelyingParty, **params: Any) -> AuthRequest:
    """CreateAuthorizationEndpointRequestFromClientInformation + random state and nonce, plus
    PKCE S256 (required by this OP for every client). A value of None leaves the parameter out."""
    verifier = secrets.token_urlsafe(48)
    base: dict[str, Any] = {
        "response_type": "code", "client_id": rp.client_id, "redirect_uri": rp.redirect_uri,
        "scope": "openid profile email", "state": secrets.token_urlsafe(16),
        "nonce": secrets.token_urlsafe(16),
        "code_challenge": create_s256_code_challenge(verifier), "code_challenge_method": "S256",
    }
    base.update(params)
    return AuthRequest({k: str(v) for k, v in base.items() if v is not None}, verifier)


@dataclass
class Callback:
    """What arrived at the client's redirect URI, and how (``query`` or ``form_post``)."""

    params: dict[str, str]
    mode: str


@dataclass
class Outcome:
    """Where a browser ended after the OP was done with it."""

    response: requests.Response
    #: Hosted pages the user went through, in order ("login", "consent").
    pages: list[str] = field(default_factory=list)
    #: Every URL requested and every Location received on the way.
    urls: list[str] = field(default_factory=list)

    @property
    def location(self) -> str | None:
        if self.response.status_code in REDIRECT_STATUSES:
            return self.response.headers.get("Location")
        return None

    @property
    def page(self) -> str | None:
        return None if self.location else page_name(self.response.text)

    def callback(self, redirect_uri: str) -> Callback:
        """The authorization response delivered to ``redirect_uri`` (query or form_post)."""
        location = self.location
        if location is not None:
            assert location.startswith(redirect_uri) and \
                location[len(redirect_uri):len(redirect_uri) + 1] in ("?", "&"), \
                f"redirected to {location!r}, expected {redirect_uri!r}"
            parts = urlsplit(location)
            assert not parts.fragment, f"response in the fragment: {location}"
            query = parse_qs(parts.query, keep_blank_values=True)
            for name, values in query.items():
                assert len(values) == 1, f"{name} repeated in {location}"
            return Callback({k: v[0] for k, v in query.items()}, "query")
        assert self.page == "form-post", \
            f"not delivered to the client: {self.response.status_code} {self.response.text[:500]}"
        form = form_post(self.response)
        assert form.action == redirect_uri, form.action
        return Callback(form.fields, "form_post")


@dataclass
class FormPost:
    action: str
    method: str
    enctype: str | None
    fields: dict[str, str]
    form_id: str | None
    html: str


FORM_RE = re.compile(r"<form\b([^>]*)>(.*?)</form>", re.S)
ATTR_RE = re.compile(r'([a-zA-Z-]+)="([^"]*)"')
INPUT_RE = re.compile(r"<input\b([^>]*)>")


def _attrs(tag: str) -> dict[str, str]:
    return {k.lower(): html.unescape(v) for k, v in ATTR_RE.findall(tag)}


def form_post(response: requests.Response) -> FormPost:
    """The single form of an OAuth 2.0 Form Post Response Mode page."""
    forms = FORM_RE.findall(response.text)
    assert len(forms) == 1, f"expected one form, got {len(forms)}"
    attrs, body = forms[0]
    form = _attrs(attrs)
    fields: dict[str, str] = {}
    for tag in INPUT_RE.findall(body):
        item = _attrs(tag)
        assert item.get("type") == "hidden", f"visible input in form_post page: {tag}"
        assert item["name"] not in fields, f"{item['name']} repeated"
        fields[item["name"]] = item.get("value", "")
    return FormPost(action=form.get("action", ""), method=form.get("method", "get").lower(),
                    enctype=form.get("enctype"), fields=fields, form_id=form.get("id"),
                    html=response.text)


def start(browser: Browser, issuer: str, request: AuthRequest,
          method: str = "GET") -> requests.Response:
    if method == "POST":
        # OIDC Core §3.1.2.1: form-serialized POST to the authorization endpoint.
        return browser.post(f"{issuer}/authorize", dict(request.params))
    return browser.get(request.url(issuer))


def drive(browser: Browser, response: requests.Response, *, username: str = "alice",
          password: str = DEFAULT_PASSWORD, decision: str = "allow") -> Outcome:
    """Follow the OP's redirects and hosted pages (signing in and consenting as asked) until
    the browser leaves the OP or stops on a page it has no business filling in."""
    outcome = Outcome(response, urls=[response.url])
    for _ in range(30):
        response = outcome.response
        location = response.headers.get("Location")
        if response.status_code in REDIRECT_STATUSES and location:
            outcome.urls.append(location)
            if not location.startswith(("/", browser.base_url)):
                return outcome  # left the OP (to the client, or elsewhere)
            outcome.response = browser.get(location)
            outcome.urls.append(outcome.response.url)
            continue
        page = page_name(response.text)
        if page == "login":
            assert outcome.pages.count("login") < 2, "login page shown again after signing in"
            outcome.pages.append(page)
            outcome.response = browser.submit_login(response, username, password)
        elif page == "consent":
            assert outcome.pages.count("consent") < 2, "consent page shown twice"
            outcome.pages.append(page)
            outcome.response = browser.submit_consent(response, decision)
        else:
            return outcome
        outcome.urls.append(outcome.response.url)
    raise AssertionError("the OP kept the browser busy for more than 30 steps")


def authorize(browser: Browser, rp: RelyingParty, request: AuthRequest, *,
              method: str = "GET", **kw: Any) -> Outcome:
    return drive(browser, start(browser, rp.issuer, request, method), **kw)


# -- authorization responses -----------------------------------------------------------------

def check_authorization_success(rp: RelyingParty, callback: Callback,
                                request: AuthRequest) -> str:
    """CheckIfAuthorizationEndpointError, CheckMatchingStateParameter, RFC 9207 iss,
    ExtractAuthorizationCodeFromAuthorizationResponse. Returns the code."""
    params = callback.params
    assert "error" not in params, f"authorization error: {params}"
    assert params.get("state") == request.state, (params.get("state"), request.state)
    assert params.get("iss") == rp.issuer, f"iss {params.get('iss')!r} (RFC 9207)"
    code = params.get("code")
    assert code and VSCHAR.match(code), f"no usable code: {params}"
    return code


def check_authorization_error(rp: RelyingParty, callback: Callback, *,
                              errors: set[str] | frozenset[str], state: str | None) -> str:
    """performGenericAuthorizationEndpointErrorResponseValidation: an error, no code, state
    returned intact, ValidateErrorResponseFromAuthorizationEndpoint (error/description charset,
    error_uri), RFC 9207 iss. Returns the error."""
    params = callback.params
    assert "code" not in params, f"code issued with an error: {params}"
    error = params.get("error")
    assert error in errors, f"error {error!r} not in {sorted(errors)}: {params}"
    assert ERROR_CHARS.match(error)
    if "error_description" in params:
        assert ERROR_CHARS.match(params["error_description"]), params["error_description"]
    if "error_uri" in params:
        assert urlsplit(params["error_uri"]).scheme in ("http", "https")
    if state is None:
        assert "state" not in params, params
    else:
        assert params.get("state") == state, (params.get("state"), state)
    assert params.get("iss") == rp.issuer, f"iss {params.get('iss')!r} (RFC 9207)"
    return error


def assert_error_page(response: requests.Response) -> str:
    """The OP shows its own error page and does not redirect (the suite's screenshot
    placeholders ExpectRedirectUriErrorPage etc.). Returns the error code it shows."""
    assert response.status_code not in REDIRECT_STATUSES, \
        f"redirected to {response.headers.get('Location')}"
    assert "Location" not in response.headers
    assert 400 <= response.status_code < 500, response.status_code
    assert response.headers["Content-Type"].startswith("text/html")
    assert page_name(response.text) == "error", response.text[:500]
    match = re.search(r'data-error="([^"]*)"', response.text)
    assert match and match.group(1), "error page names no error"
    return match.group(1)


# -- token endpoint --------------------------------------------------------------------------

def token_request(rp: RelyingParty, data: dict[str, str], *, auth_method: str | None = None,
                  client_id: str | None = None,
                  client_secret: str | None = None) -> requests.Response:
    """A token request authenticated as the client (client_secret_basic or _post)."""
    method = auth_method or rp.auth_method
    client_id = client_id or rp.client_id
    secret = client_secret or rp.client_secret or ""
    form = dict(data)
    auth = None
    if method == "client_secret_basic":
        auth = (client_id, secret)  # token_urlsafe values: nothing to form-encode (RFC 6749 §2.3.1)
    elif method == "client_secret_post":
        form.update(client_id=client_id, client_secret=secret)
    else:
        form["client_id"] = client_id
    return requests.post(f"{rp.issuer}/token", data=form, auth=auth, timeout=30)


def redeem(rp: RelyingParty, code: str, request: AuthRequest, **kw: Any) -> requests.Response:
    """CreateTokenEndpointRequestForAuthorizationCodeGrant + CallTokenEndpoint."""
    return token_request(rp, {"grant_type": "authorization_code", "code": code,
                              "redirect_uri": request.redirect_uri or rp.redirect_uri,
                              "code_verifier": request.verifier}, **kw)


def check_token_success(response: requests.Response) -> dict[str, Any]:
    """CheckTokenEndpointHttpStatus200, CheckTokenEndpointReturnedJsonContentType,
    CheckTokenEndpointCacheHeaders, CheckForAccessTokenValue, CheckTokenTypeIsBearer,
    EnsureAccessTokenContainsAllowedCharactersOnly, ValidateExpiresIn."""
    assert response.status_code == 200, f"{response.status_code} {response.text[:500]}"
    assert response.headers["Content-Type"].split(";")[0].strip() == "application/json"
    cache = [v.strip() for v in response.headers.get("Cache-Control", "").split(",")]
    assert "no-store" in cache, response.headers.get("Cache-Control")
    if "Pragma" in response.headers:
        assert "no-cache" in [v.strip() for v in response.headers["Pragma"].split(",")]
    body = response.json()
    assert isinstance(body.get("access_token"), str) and VSCHAR.match(body["access_token"])
    assert str(body.get("token_type", "")).lower() == "bearer", body.get("token_type")
    assert isinstance(body.get("expires_in"), int) and body["expires_in"] > 0, \
        body.get("expires_in")
    if "refresh_token" in body:
        assert isinstance(body["refresh_token"], str) and VSCHAR.match(body["refresh_token"])
    return body


def check_token_error(response: requests.Response, error: str = "invalid_grant") -> dict[str, Any]:
    """CheckTokenEndpointHttpStatus400, CheckTokenEndpointReturnedJsonContentType,
    CheckErrorFromTokenEndpointResponseErrorInvalidGrant,
    ValidateErrorDescriptionFromTokenEndpointResponseError,
    ValidateErrorUriFromTokenEndpointResponseError."""
    assert response.status_code == 400, f"{response.status_code} {response.text[:500]}"
    assert response.headers["Content-Type"].split(";")[0].strip() == "application/json"
    body = response.json()
    assert body.get("error") == error, body
    assert "access_token" not in body and "id_token" not in body
    if "error_description" in body:
        assert ERROR_CHARS.match(body["error_description"]), body["error_description"]
    if "error_uri" in body:
        assert urlsplit(body["error_uri"]).scheme in ("http", "https")
    return body


# -- keys and ID tokens ----------------------------------------------------------------------

def discovery(issuer: str) -> dict[str, Any]:
    """GetDynamicServerConfiguration + EnsureDiscoveryEndpointResponseStatusCodeIs200 +
    CheckDiscoveryEndpointReturnedJsonContentType."""
    response = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=10)
    assert response.status_code == 200, response.status_code
    assert response.headers["Content-Type"].split(";")[0].strip() == "application/json"
    body = response.json()
    assert isinstance(body, dict)
    return body


def fetch_jwks(issuer: str) -> dict[str, Any]:
    """FetchServerKeys (jwks_uri from discovery) + check_jwks."""
    response = requests.get(discovery(issuer)["jwks_uri"], timeout=10)
    assert response.status_code == 200, response.status_code
    assert response.headers["Content-Type"].split(";")[0].strip() in (
        "application/json", "application/jwk-set+json")
    jwks = response.json()
    check_jwks(jwks)
    return jwks


def check_jwks(jwks: dict[str, Any]) -> None:
    """ValidateServerJWKs, CheckForKeyIdInServerJWKs, CheckDistinctKeyIdValueInServerJWKs,
    EnsureServerJwksDoesNotContainPrivateOrSymmetricKeys."""
    keys = jwks.get("keys")
    assert isinstance(keys, list) and keys, jwks
    kids = []
    for key in keys:
        assert isinstance(key, dict) and key.get("kty") in ("RSA", "EC", "OKP"), key
        assert isinstance(key.get("kid"), str) and key["kid"], f"key without kid: {key}"
        kids.append(key["kid"])
        assert not PRIVATE_JWK_MEMBERS & key.keys(), f"private members in {key['kid']}"
        assert key.get("use", "sig") == "sig"
        b64_members = ("n", "e") if key["kty"] == "RSA" else ("x", "y") if key["kty"] == "EC" \
            else ("x",)
        for member in b64_members:
            assert re.fullmatch(r"[A-Za-z0-9_-]+", key.get(member, "")), (key["kid"], member)
    assert len(kids) == len(set(kids)), f"duplicate kids: {kids}"
    KeySet.import_key_set(jwks)  # every key parses


@dataclass
class IdToken:
    raw: str
    header: dict[str, Any]
    claims: dict[str, Any]


def check_id_token(rp: RelyingParty, raw: str, *, nonce: str | None,
                   access_token: str | None = None, jwks: dict[str, Any] | None = None,
                   alg: str = "RS256") -> IdToken:
    """ValidateIdToken, ValidateIdTokenNonce, ValidateIdTokenSignature,
    ValidateIdTokenSignatureUsingKid, CheckForSubjectInIdToken, ValidateAtHash (when present);
    ``nonce=None`` means the request had none, so the ID token must not carry one."""
    assert isinstance(raw, str) and raw.count(".") == 2, "ID token is not a JWS"
    jwks = jwks if jwks is not None else fetch_jwks(rp.issuer)
    header = unverified_part(raw, 0)
    assert header.get("alg") == alg, header
    kids = [k["kid"] for k in jwks["keys"]]
    assert header.get("kid") in kids, f"kid {header.get('kid')!r} not in the jwks {kids}"
    key = KeySet.import_key_set({"keys": [k for k in jwks["keys"] if k["kid"] == header["kid"]]})
    claims = jwt.decode(raw, key, algorithms=[alg]).claims
    now = time.time()
    assert claims.get("iss") == rp.issuer, claims.get("iss")
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    assert all(isinstance(a, str) for a in audiences) and rp.client_id in audiences, aud
    if len(audiences) > 1 or "azp" in claims:
        assert claims.get("azp") == rp.client_id, claims.get("azp")
    for name in ("exp", "iat"):
        assert isinstance(claims.get(name), int | float) and not isinstance(claims[name], bool), \
            f"{name} missing or not a number"
    assert claims["iat"] <= now + SKEW, "iat in the future"
    assert claims["exp"] > now - SKEW, "ID token expired"
    assert claims["exp"] < now + 50 * YEAR, "exp unreasonably far in the future"
    assert claims["exp"] >= claims["iat"]
    if "auth_time" in claims:
        assert isinstance(claims["auth_time"], int | float) and \
            not isinstance(claims["auth_time"], bool)
        assert claims["auth_time"] <= now + SKEW, "auth_time in the future"
        assert claims["auth_time"] >= now - YEAR, "auth_time more than a year old"
    if "acr" in claims:
        assert isinstance(claims["acr"], str) and claims["acr"], claims["acr"]
    sub = claims.get("sub")
    assert isinstance(sub, str) and 0 < len(sub) <= 255 and sub.isascii(), sub
    if "amr" in claims:
        assert isinstance(claims["amr"], list) and all(isinstance(v, str) for v in claims["amr"])
    if "at_hash" in claims:  # OIDC Core §3.1.3.8 / §3.3.2.11
        assert access_token is not None, "at_hash without an access token to check it against"
        digest = hashlib.sha256(access_token.encode("ascii")).digest()
        assert claims["at_hash"] == b64url(digest[: len(digest) // 2]), "at_hash mismatch"
    check_standard_claims({k: v for k, v in claims.items() if k != "sub"})
    if nonce is None:
        assert "nonce" not in claims, "nonce in an ID token for a request without one"
    else:
        assert claims.get("nonce") == nonce, (claims.get("nonce"), nonce)
    return IdToken(raw, header, claims)


# -- UserInfo --------------------------------------------------------------------------------

def userinfo(rp: RelyingParty, access_token: str, how: str = "get") -> requests.Response:
    """CallUserInfoEndpointWithBearerToken (GET, POST with header) or access_token in a form
    body (RFC 6750 §2.2)."""
    url = discovery(rp.issuer)["userinfo_endpoint"]
    header = {"Authorization": f"Bearer {access_token}"}
    if how == "get":
        return requests.get(url, headers=header, timeout=10)
    if how == "post-header":
        return requests.post(url, headers=header, timeout=10)
    if how == "post-body":
        return requests.post(url, data={"access_token": access_token}, timeout=10)
    raise ValueError(how)


def check_userinfo(response: requests.Response, sub: str) -> dict[str, Any]:
    """EnsureUserInfoContainsSub, VerifyUserInfoAndIdTokenInTokenEndpointSameSub,
    ValidateUserInfoStandardClaims, EnsureUserInfoUpdatedAtValid, EnsureUserInfoBirthDateValid;
    a JSON (unsigned) response."""
    assert response.status_code == 200, f"{response.status_code} {response.text[:300]}"
    assert response.headers["Content-Type"].split(";")[0].strip() == "application/json"
    claims = response.json()
    assert claims.get("sub") == sub, (claims.get("sub"), sub)
    check_standard_claims(claims)
    return claims


STRING_CLAIMS = ("sub", "name", "given_name", "family_name", "middle_name", "nickname",
                 "preferred_username", "profile", "picture", "website", "email", "gender",
                 "zoneinfo", "locale", "phone_number")
BOOLEAN_CLAIMS = ("email_verified", "phone_number_verified")
ADDRESS_MEMBERS = ("formatted", "street_address", "locality", "region", "postal_code", "country")


def check_standard_claims(claims: dict[str, Any]) -> None:
    """ValidateUserInfoStandardClaims (OIDC Core §5.1 types and formats)."""
    for name in STRING_CLAIMS:
        if name in claims:
            assert isinstance(claims[name], str), f"{name} is not a string"
    for name in BOOLEAN_CLAIMS:
        if name in claims:
            assert isinstance(claims[name], bool), f"{name} is not a boolean"
    if "email" in claims:
        assert re.fullmatch(r"[^@\s]+@[^@\s]+", claims["email"]), claims["email"]
    if "phone_number" in claims:
        assert re.fullmatch(r"\+?[0-9 ()./-]+(;ext=[0-9]+)?", claims["phone_number"]), \
            claims["phone_number"]
    if "updated_at" in claims:
        updated_at = claims["updated_at"]
        assert isinstance(updated_at, int | float) and not isinstance(updated_at, bool)
        assert updated_at <= time.time() + SKEW
    if "birthdate" in claims:
        assert re.fullmatch(r"\d{4}(-\d{2}-\d{2})?", claims["birthdate"]), claims["birthdate"]
    if "address" in claims:
        address = claims["address"]
        assert isinstance(address, dict) and address
        assert set(address) <= set(ADDRESS_MEMBERS), address
        assert all(isinstance(v, str) for v in address.values())
    for url_claim in ("profile", "picture", "website"):
        if url_claim in claims:
            assert urlsplit(claims[url_claim]).scheme in ("http", "https")


# -- whole flows -----------------------------------------------------------------------------

@dataclass
class Flow:
    request: AuthRequest
    outcome: Outcome
    callback: Callback
    code: str
    token: dict[str, Any]
    id_token: IdToken

    @property
    def claims(self) -> dict[str, Any]:
        return self.id_token.claims


def code_flow(browser: Browser, rp: RelyingParty, *, username: str = "alice",
              method: str = "GET", **params: Any) -> Flow:
    """The suite's happy path (AbstractOIDCCServerTest): authorization request, callback
    checks, token request, ID token validation."""
    request = auth_request(rp, **params)
    outcome = authorize(browser, rp, request, method=method, username=username)
    callback = outcome.callback(request.redirect_uri or rp.redirect_uri)
    code = check_authorization_success(rp, callback, request)
    token = check_token_success(redeem(rp, code, request))
    id_token = check_id_token(rp, token.get("id_token", ""), nonce=request.nonce,
                              access_token=token["access_token"])
    return Flow(request, outcome, callback, code, token, id_token)
