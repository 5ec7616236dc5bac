"""oidcc-basic-certification-test-plan ("Basic OP", CONFORMANCE.md §1.1), module by module, plus
the form_post plan's pass of oidcc-server (§1.3).

Variant: response_type=code, client_secret_basic, static client, default response mode. This OP
requires PKCE S256 from every client, so every authorization request carries it (the suite's
"PKCE not supported" variants do not apply), and redirect_uri is always sent.
"""

from __future__ import annotations

import re
import secrets
import time
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from tests.conformance.support import (
    SKEW,
    USER_INTERFACE_ERRORS,
    VSCHAR,
    assert_error_page,
    auth_request,
    authorize,
    check_authorization_error,
    check_authorization_success,
    check_id_token,
    check_token_error,
    check_token_success,
    check_userinfo,
    code_flow,
    discovery,
    drive,
    fetch_jwks,
    form_post,
    long_state,
    redeem,
    token_request,
    unsigned_jwt,
    userinfo,
)
from tests.helpers.rp import CALLBACK


def _query_keys(url: str) -> set[str]:
    return set(parse_qs(urlsplit(url).query, keep_blank_values=True))


# -- oidcc-server and its form_post twin --------------------------------------------------------

@pytest.mark.parametrize("response_mode", [None, "form_post"], ids=["default", "form_post"])
def test_oidcc_server(alice, rp, browser, response_mode):
    """oidcc-server [OP-Response-code]: the happy code flow — state and iss echoed, token
    endpoint 200 JSON, ID token valid (iss, aud, exp/iat, auth_time, acr, nonce, sub, signature
    by a kid of the jwks), UserInfo reachable with the access token.

    The form_post pass is oidcc-formpost-basic-certification-test-plan's oidcc-server: the
    response arrives as an auto-submitting HTML form POSTed (form-urlencoded) to redirect_uri
    with code/state/iss as hidden inputs, and never in any URL query
    (CheckCallbackHttpMethodIsPost, CheckCallbackContentTypeIsFormUrlEncoded,
    RejectAuthCodeInUrlQuery, RejectErrorInUrlQuery)."""
    flow = code_flow(browser, rp, response_mode=response_mode)

    assert flow.outcome.pages == ["login"]
    assert flow.claims["sub"] == alice
    check_userinfo(userinfo(rp, flow.token["access_token"]), alice)

    if response_mode is None:
        assert flow.callback.mode == "query"
        return
    assert flow.callback.mode == "form_post"
    page = flow.outcome.response
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    form = form_post(page)
    assert form.method == "post"
    assert form.enctype in (None, "application/x-www-form-urlencoded")
    assert form.action == CALLBACK
    assert set(form.fields) == {"code", "state", "iss"}
    assert form.fields["state"] == flow.request.state
    # Auto-submitting: a script allowed by the page's CSP nonce submits that very form.
    scripts = re.findall(r'<script nonce="([^"]+)">(.*?)</script>', page.text, re.S)
    assert len(scripts) == 1, scripts
    nonce, script = scripts[0]
    csp = page.headers["Content-Security-Policy"]
    assert f"'nonce-{nonce}'" in csp
    assert form.form_id and f'getElementById("{form.form_id}").submit()' in script
    form_action = re.search(r"form-action ([^;]+)", csp)
    assert form_action is None or "https://rp.example.test" in form_action.group(1).split()
    # No code or error in any URL the browser saw (the callback is the POST above).
    for url in flow.outcome.urls:
        assert not {"code", "error"} & _query_keys(url), url


def test_oidcc_response_type_missing(rp, browser):
    """oidcc-response-type-missing [OP-Response-Missing]: no response_type. This OP redirects
    back with error=invalid_request in the query (the suite also accepts
    unsupported_response_type, or an error page), with state and iss, and no code."""
    request = auth_request(rp, response_type=None)
    outcome = authorize(browser, rp, request)

    assert outcome.pages == []
    callback = outcome.callback(CALLBACK)
    assert callback.mode == "query"  # no response_type: the error can only go in the query
    assert check_authorization_error(rp, callback, errors={"invalid_request"},
                                     state=request.state) == "invalid_request"


def test_oidcc_idtoken_signature(alice, rp, browser):
    """oidcc-idtoken-signature [OP-IDToken-Signature/kid]: the ID token is signed with the
    default algorithm, RS256, by a key (kid) published in jwks_uri. (The suite runs this for
    dynamic clients only; for a static client the same check is cheap.)"""
    metadata = discovery(rp.issuer)
    assert "RS256" in metadata["id_token_signing_alg_values_supported"]

    flow = code_flow(browser, rp)

    assert flow.id_token.header["alg"] == "RS256"
    jwks = fetch_jwks(rp.issuer)
    key = next(k for k in jwks["keys"] if k["kid"] == flow.id_token.header["kid"])
    assert key["kty"] == "RSA" and key.get("alg", "RS256") == "RS256"


def test_oidcc_idtoken_unsigned(alice, rp, browser):
    """oidcc-idtoken-unsigned [OP-IDToken-none]: an unsigned (alg none) ID token for a client
    registered for it. The suite skips the module unless ``none`` is in
    id_token_signing_alg_values_supported; this OP does not offer it, so the check is that it
    neither advertises nor issues unsigned ID tokens."""
    metadata = discovery(rp.issuer)
    assert "none" not in metadata["id_token_signing_alg_values_supported"]

    flow = code_flow(browser, rp)

    assert flow.id_token.header["alg"] != "none"
    assert flow.id_token.raw.split(".")[2], "ID token without a signature"


# -- UserInfo ----------------------------------------------------------------------------------

def _userinfo_module(browser: Any, rp: Any, alice: str, how: str) -> dict[str, Any]:
    flow = code_flow(browser, rp)
    claims = check_userinfo(userinfo(rp, flow.token["access_token"], how), flow.claims["sub"])
    assert claims["sub"] == alice
    assert claims["email"] == "alice@example.test"
    assert claims["name"] == "Alice Example"
    return claims


def test_oidcc_userinfo_get(alice, rp, browser):
    """oidcc-userinfo-get [OP-UserInfo-Endpoint]: GET UserInfo with a bearer header: 200 JSON,
    sub equal to the ID token's, standard claims well-formed."""
    _userinfo_module(browser, rp, alice, "get")


def test_oidcc_userinfo_post_header(alice, rp, browser):
    """oidcc-userinfo-post-header [OP-UserInfo-Header]: the same, POST with the token in the
    Authorization header."""
    _userinfo_module(browser, rp, alice, "post-header")


def test_oidcc_userinfo_post_body(alice, rp, browser):
    """oidcc-userinfo-post-body [OP-UserInfo-Body]: the same, POST with access_token in a
    form-encoded body (RFC 6750 §2.2)."""
    _userinfo_module(browser, rp, alice, "post-body")


def test_oidcc_ensure_request_without_nonce_succeeds_for_code_flow(alice, rp, browser):
    """oidcc-ensure-request-without-nonce-succeeds-for-code-flow [OP-nonce-NoReq-code]: a code
    flow request without nonce still gets a code, and the ID token carries no nonce."""
    flow = code_flow(browser, rp, nonce=None)

    assert "nonce" not in flow.request.params
    assert "nonce" not in flow.claims


# -- scopes (claims from UserInfo in the code flow) --------------------------------------------

def _give_phone(app: Any, user_id: str) -> None:
    from idp.extensions import db
    from idp.models import User

    with app.app_context():
        user = db.session.get(User, user_id)
        user.phone_number = "+44 20 7946 0958"
        user.phone_number_verified = True
        db.session.commit()


def _scope_module(browser: Any, rp: Any, scope: str) -> dict[str, Any]:
    """AbstractOIDCCReturnedClaimsServerTest: the scope is advertised
    (OIDCCCheckScopesSupportedContainScopeTest), the flow succeeds, UserInfo is well-formed and
    carries the same sub; returns the UserInfo claims."""
    supported = discovery(rp.issuer)["scopes_supported"]
    assert set(scope.split()) <= set(supported), (scope, supported)
    flow = code_flow(browser, rp, scope=scope)
    if "scope" in flow.token:
        assert set(scope.split()) <= set(flow.token["scope"].split()), flow.token["scope"]
    return check_userinfo(userinfo(rp, flow.token["access_token"]), flow.claims["sub"])


def test_oidcc_scope_profile(alice, rp, browser):
    """oidcc-scope-profile: scope=openid profile returns the profile claims the user has
    (name, preferred_username, updated_at) from UserInfo."""
    claims = _scope_module(browser, rp, "openid profile")

    assert claims["name"] == "Alice Example"
    assert claims["preferred_username"] == "alice"
    assert isinstance(claims["updated_at"], int)
    assert "email" not in claims and "phone_number" not in claims


def test_oidcc_scope_email(alice, rp, browser):
    """oidcc-scope-email: scope=openid email returns email and email_verified from UserInfo
    (a missing email is a WARNING in the suite, required here)."""
    claims = _scope_module(browser, rp, "openid email")

    assert claims["email"] == "alice@example.test"
    assert claims["email_verified"] is False
    assert "name" not in claims


def test_oidcc_scope_address(alice, rp, browser):
    """oidcc-scope-address: scope=openid address succeeds; this user has no address on file,
    so none is returned (OIDC Core §5.3.2 omits unavailable claims), and UserInfo stays valid."""
    claims = _scope_module(browser, rp, "openid address")

    assert claims.get("address") is None or isinstance(claims["address"], dict)
    assert set(claims) <= {"sub", "address"}, claims


def test_oidcc_scope_phone(app, alice, rp, browser):
    """oidcc-scope-phone: scope=openid phone returns phone_number and phone_number_verified
    (the account is given a phone number first; accounts have none by default)."""
    _give_phone(app, alice)

    claims = _scope_module(browser, rp, "openid phone")

    assert claims["phone_number"] == "+44 20 7946 0958"
    assert claims["phone_number_verified"] is True
    assert set(claims) <= {"sub", "phone_number", "phone_number_verified"}, claims


def test_oidcc_scope_all(app, alice, rp, browser):
    """oidcc-scope-all: scope=openid profile email address phone returns every claim the
    user has, all well-formed."""
    _give_phone(app, alice)

    claims = _scope_module(browser, rp, "openid profile email address phone")

    for name in ("name", "preferred_username", "updated_at", "email", "email_verified",
                 "phone_number", "phone_number_verified"):
        assert name in claims, name


# -- request variations that must not break the flow -------------------------------------------

def test_oidcc_alternate_happy_flow(alice, rp, browser):
    """oidcc-alternate-happy-flow: scopes in reverse order and the query parameters in a
    different order must work (RFC 6749 §3.3)."""
    request = auth_request(rp, scope="email profile openid")
    request.params = dict(reversed(list(request.params.items())))
    assert next(iter(request.params)) != "response_type"
    outcome = authorize(browser, rp, request)

    code = check_authorization_success(rp, outcome.callback(CALLBACK), request)
    token = check_token_success(redeem(rp, code, request))
    claims = check_id_token(rp, token["id_token"], nonce=request.nonce,
                            access_token=token["access_token"]).claims
    assert claims["sub"] == alice
    check_userinfo(userinfo(rp, token["access_token"]), alice)


def test_oidcc_display_page(alice, rp, browser):
    """oidcc-display-page: display=page must not cause an error (OIDC Core §15.1)."""
    flow = code_flow(browser, rp, display="page")
    assert flow.claims["sub"] == alice


def test_oidcc_display_popup(alice, rp, browser):
    """oidcc-display-popup: display=popup must not cause an error (OIDC Core §15.1)."""
    flow = code_flow(browser, rp, display="popup")
    assert flow.claims["sub"] == alice


def test_oidcc_ensure_request_with_unknown_parameter_succeeds(alice, rp, browser):
    """oidcc-ensure-request-with-unknown-parameter-succeeds [OP-Req-NotUnderstood]: an unknown
    parameter (extra=foobar) is ignored (RFC 6749 §3.1)."""
    flow = code_flow(browser, rp, extra="foobar")
    assert flow.claims["sub"] == alice


def test_oidcc_login_hint(alice, rp, browser):
    """oidcc-login-hint [OP-Req-login_hint]: login_hint must not cause an error."""
    flow = code_flow(browser, rp, login_hint="alice")
    assert flow.outcome.pages == ["login"]
    assert flow.claims["sub"] == alice


def test_oidcc_ui_locales(alice, rp, browser):
    """oidcc-ui-locales [OP-Req-ui_locales]: ui_locales must not cause an error."""
    flow = code_flow(browser, rp, ui_locales="se")
    assert flow.claims["sub"] == alice


def test_oidcc_claims_locales(alice, rp, browser):
    """oidcc-claims-locales [OP-Req-claims_locales]: claims_locales=se must not cause an error."""
    flow = code_flow(browser, rp, claims_locales="se")
    assert flow.claims["sub"] == alice
    check_userinfo(userinfo(rp, flow.token["access_token"]), alice)


def test_oidcc_ensure_request_with_acr_values_succeeds(alice, rp, browser):
    """oidcc-ensure-request-with-acr-values-succeeds [OP-Req-acr_values]: all advertised
    acr_values_supported (or "1 2") are sent; the flow must succeed and the ID token's acr
    be one of them (a WARNING in the suite, required here)."""
    values = discovery(rp.issuer).get("acr_values_supported") or ["1", "2"]

    flow = code_flow(browser, rp, acr_values=" ".join(values))

    assert flow.claims.get("acr") in values, (flow.claims.get("acr"), values)


def test_oidcc_ensure_request_with_valid_pkce_succeeds(alice, rp, browser):
    """oidcc-ensure-request-with-valid-pkce-succeeds: a valid S256 PKCE request succeeds
    (RFC 7636; this OP requires it anyway)."""
    assert "S256" in discovery(rp.issuer)["code_challenge_methods_supported"]

    flow = code_flow(browser, rp)

    assert flow.request.params["code_challenge_method"] == "S256"
    assert flow.claims["sub"] == alice


def test_oidcc_ensure_post_request_succeeds(alice, rp, browser):
    """oidcc-ensure-post-request-succeeds: the authorization request sent as a form POST
    (OIDC Core §3.1.2.1) completes with a code."""
    flow = code_flow(browser, rp, method="POST")
    assert flow.outcome.urls[0] == f"{rp.issuer}/authorize"
    assert flow.claims["sub"] == alice


def test_oidcc_server_client_secret_post(flows, alice, browser):
    """oidcc-server-client-secret-post: the happy flow with client_secret_post at the token
    endpoint."""
    assert "client_secret_post" in discovery(flows.base_url)[
        "token_endpoint_auth_methods_supported"]
    rp = flows.client("rp-post", auth_method="client_secret_post")

    flow = code_flow(browser, rp)

    assert rp.auth_method == "client_secret_post"
    assert flow.claims["sub"] == alice
    check_userinfo(userinfo(rp, flow.token["access_token"]), alice)


def test_oidcc_claims_essential(alice, rp, browser):
    """oidcc-claims-essential [OP-claims-essential]: name requested as an essential UserInfo
    claim with the claims parameter (scope=openid, so only the claims parameter asks for it).
    The flow must succeed; UserInfo should return name and the ID token should not (both
    WARNINGs in the suite, required here)."""
    assert discovery(rp.issuer).get("claims_parameter_supported") is True
    claims = '{"userinfo":{"name":{"essential":true}}}'

    flow = code_flow(browser, rp, scope="openid", claims=claims)

    info = check_userinfo(userinfo(rp, flow.token["access_token"]), alice)
    assert "name" not in flow.claims, "name in the ID token though only UserInfo asked for it"
    assert info.get("name") == "Alice Example", f"essential name missing from UserInfo: {info}"


# -- prompt, max_age, id_token_hint ------------------------------------------------------------

def test_oidcc_prompt_login(alice, rp, browser):
    """oidcc-prompt-login [OP-prompt-login]: a second authorization with prompt=login shows
    the login page again although the user is signed in; auth_time then differs (is later)."""
    first = code_flow(browser, rp)
    time.sleep(1)  # auth_time has one-second resolution; the re-login must fall in a later second

    second = code_flow(browser, rp, prompt="login")

    assert second.outcome.pages == ["login"]  # ExpectSecondLoginPage
    assert second.claims["sub"] == first.claims["sub"]
    if "auth_time" in first.claims and "auth_time" in second.claims:
        assert second.claims["auth_time"] > first.claims["auth_time"]


def test_oidcc_prompt_none_not_logged_in(rp, browser):
    """oidcc-prompt-none-not-logged-in [OP-prompt-none-NotLoggedIn]: no session and
    prompt=none: an error redirect (login_required, interaction_required, consent_required or
    account_selection_required), the 128-character state returned intact, no code."""
    state = long_state()
    request = auth_request(rp, prompt="none", state=state)

    outcome = authorize(browser, rp, request)

    assert outcome.pages == []
    check_authorization_error(rp, outcome.callback(CALLBACK), errors=USER_INTERFACE_ERRORS,
                              state=state)


def test_oidcc_prompt_none_logged_in(flows, alice, browser):
    """oidcc-prompt-none-logged-in [OP-prompt-none-LoggedIn]: with a session (and the consent
    given in the first flow), prompt=none issues a code without any UI; same sub, same
    auth_time. Uses a third-party client so the first flow includes consent."""
    rp = flows.client("rp-third", first_party=False)
    first = code_flow(browser, rp)
    assert first.outcome.pages == ["login", "consent"]

    second = code_flow(browser, rp, prompt="none")

    assert second.outcome.pages == []
    assert second.claims["sub"] == first.claims["sub"] == alice
    assert second.claims.get("auth_time") == first.claims.get("auth_time")


def test_oidcc_max_age_1(alice, rp, browser):
    """oidcc-max-age-1 [OP-Req-max_age=1]: after waiting 2 s, max_age=1 makes the OP ask the
    user to sign in again; the second ID token has auth_time, later than the first and recent."""
    first = code_flow(browser, rp)
    time.sleep(2)  # WaitFor2Seconds: the first authentication is now older than max_age=1

    second = code_flow(browser, rp, max_age="1")

    assert second.outcome.pages == ["login"]  # ExpectSecondLoginPage
    assert "auth_time" in second.claims  # CheckIdTokenAuthTimeClaimPresentDueToMaxAge
    assert second.claims["auth_time"] > first.claims["auth_time"]
    assert abs(second.claims["auth_time"] - time.time()) <= SKEW


def test_oidcc_max_age_10000(alice, rp, browser):
    """oidcc-max-age-10000 [OP-Req-max_age=10000]: max_age=15000 then max_age=10000: the second
    needs no UI; both ID tokens carry auth_time (requested by max_age), equal; same sub."""
    first = code_flow(browser, rp, max_age="15000")
    assert first.outcome.pages == ["login"]

    second = code_flow(browser, rp, max_age="10000")

    assert second.outcome.pages == []
    assert "auth_time" in first.claims and "auth_time" in second.claims
    assert second.claims["auth_time"] == first.claims["auth_time"]
    assert second.claims["sub"] == first.claims["sub"] == alice


def test_oidcc_id_token_hint(alice, rp, browser):
    """oidcc-id-token-hint [OP-Req-id_token_hint]: prompt=none with the first ID token as
    id_token_hint succeeds silently; same sub, same auth_time."""
    first = code_flow(browser, rp)

    second = code_flow(browser, rp, prompt="none", id_token_hint=first.token["id_token"])

    assert second.outcome.pages == []
    assert second.claims["sub"] == first.claims["sub"]
    assert second.claims.get("auth_time") == first.claims.get("auth_time")


# -- authorization codes -----------------------------------------------------------------------

def test_oidcc_codereuse(alice, rp, browser):
    """oidcc-codereuse [OP-OAuth-2nd]: redeeming a code a second time, immediately, fails with
    HTTP 400, JSON, error=invalid_grant and a valid error_description."""
    flow = code_flow(browser, rp)

    check_token_error(redeem(rp, flow.code, flow.request), "invalid_grant")


def test_oidcc_codereuse_30seconds(alice, rp, browser):
    """oidcc-codereuse-30seconds [OP-OAuth-2nd-30s, -Revokes]: a replayed code fails with 400
    invalid_grant JSON, and the access token issued for the code is then revoked: UserInfo
    answers 4xx (RFC 6749 §4.1.2; a WARNING in the suite, required here). The suite waits 30 s
    before the replay; the outcome must not depend on the wait, so this replays at once."""
    flow = code_flow(browser, rp)
    check_userinfo(userinfo(rp, flow.token["access_token"]), alice)

    check_token_error(redeem(rp, flow.code, flow.request), "invalid_grant")

    after = userinfo(rp, flow.token["access_token"])
    assert 400 <= after.status_code < 500, f"{after.status_code} {after.text[:200]}"
    assert "sub" not in after.text


def test_oidcc_ensure_registered_redirect_uri(rp, browser):
    """oidcc-ensure-registered-redirect-uri [OP-redirect_uri-NotReg]: redirect_uri is the
    registered one plus an extra path segment; the OP shows an error page and does not
    redirect (no prefix matching)."""
    request = auth_request(rp, redirect_uri=f"{CALLBACK}/callback/{secrets.token_hex(4)}")

    response = browser.get(request.url(rp.issuer))

    assert_error_page(response)


# -- request objects ---------------------------------------------------------------------------

def _request_object_query(rp: Any, request: Any, name: str, value: str,
                          redirect_uri: str | None = None) -> str:
    """BuildRequestObject(ByReference)RedirectToAuthorizationEndpoint: the object carries the
    whole request; response_type, client_id, scope and redirect_uri are repeated outside
    (OIDC Core §6.1, RFC 6749 §3.1.2.3); state, nonce and PKCE are only inside."""
    outer = {name: value, "response_type": request.params["response_type"],
             "client_id": rp.client_id, "scope": request.params["scope"],
             "redirect_uri": redirect_uri or request.redirect_uri}
    return f"{rp.issuer}/authorize?{urlencode(sorted(outer.items()))}"


def _request_object(rp: Any, request: Any) -> str:
    """ConvertAuthorizationEndpointRequestToRequestObject + AddAud/AddIss +
    SerializeRequestObjectWithNullAlgorithm."""
    return unsigned_jwt({**request.params, "iss": rp.client_id, "aud": rp.issuer})


def test_oidcc_request_uri_unsigned_supported_correctly_or_rejected_as_unsupported(rp, browser):
    """oidcc-request-uri-unsigned-supported-correctly-or-rejected-as-unsupported: a request_uri
    pointing at an unsigned JWT is processed or rejected with request_uri_not_supported. This
    OP advertises request_uri_parameter_supported=false, so it must send that error back to the
    client (no code; state only existed inside the object, so none comes back)."""
    assert discovery(rp.issuer).get("request_uri_parameter_supported") is False
    request = auth_request(rp)
    url = _request_object_query(rp, request, "request_uri",
                                f"https://rp.example.test/requests/{secrets.token_hex(8)}.jwt")

    outcome = drive(browser, browser.get(url))

    assert outcome.pages == []
    check_authorization_error(rp, outcome.callback(CALLBACK),
                              errors={"request_uri_not_supported"}, state=None)


def test_oidcc_unsigned_request_object_supported_correctly_or_rejected_as_unsupported(rp, browser):
    """oidcc-unsigned-request-object-supported-correctly-or-rejected-as-unsupported: an
    unsigned request object by value is processed or rejected with request_not_supported
    (ignoring it is non-compliant). This OP advertises request_parameter_supported=false, so it
    must send request_not_supported back to the client."""
    assert discovery(rp.issuer).get("request_parameter_supported") is False
    request = auth_request(rp)
    url = _request_object_query(rp, request, "request", _request_object(rp, request))

    outcome = drive(browser, browser.get(url))

    assert outcome.pages == []
    check_authorization_error(rp, outcome.callback(CALLBACK), errors={"request_not_supported"},
                              state=None)


def test_oidcc_ensure_request_object_with_redirect_uri(rp, browser):
    """oidcc-ensure-request-object-with-redirect-uri: the request object names the registered
    redirect_uri, the query an unregistered one. The OP must use the object's (OIDC Core §6.1)
    or show an error; it must never redirect to the query's. This OP does not read request
    objects, so the only redirect_uri it could use is the unregistered one: it shows its error
    page (request_not_supported cannot be delivered anywhere safe)."""
    request = auth_request(rp)
    invalid = f"{CALLBACK}/invalid"
    url = _request_object_query(rp, request, "request", _request_object(rp, request),
                                redirect_uri=invalid)

    response = browser.get(url)

    assert not response.headers.get("Location", "").startswith(invalid)
    assert_error_page(response)


# -- refresh tokens ----------------------------------------------------------------------------

def _audiences(aud: Any) -> set[str]:
    return set(aud) if isinstance(aud, list) else {aud}


def test_oidcc_refresh_token(flows, alice, rp, browser):
    """oidcc-refresh-token: a refresh token is issued (and advertised) and works: 200 JSON with
    Cache-Control no-store, Bearer, expires_in, a rotated refresh token, a new access token that
    works at UserInfo, and an ID token whose iss/sub/aud/auth_time/azp equal the original's,
    iat is new and no nonce (OIDC Core §12.2). Client 2's refresh token is rejected for
    client 1 with invalid_grant (refresh tokens are bound to their client)."""
    assert "refresh_token" in discovery(rp.issuer)["grant_types_supported"]
    first = code_flow(browser, rp)
    refresh_token = first.token.get("refresh_token")
    # EnsureRefreshTokenContainsAllowedCharactersOnly (RFC 6749 A.17)
    assert refresh_token and VSCHAR.match(refresh_token)
    time.sleep(1)  # WaitForOneSecond: the new ID token's iat must differ from the first

    response = token_request(rp, {"grant_type": "refresh_token", "refresh_token": refresh_token,
                                  "scope": first.request.params["scope"]})

    body = check_token_success(response)
    assert body["refresh_token"] != refresh_token
    assert body["access_token"] != first.token["access_token"]
    second = check_id_token(rp, body["id_token"], nonce=None,
                            access_token=body["access_token"]).claims
    original = first.claims
    for name in ("iss", "sub", "auth_time", "azp"):
        assert second.get(name) == original.get(name), name
    assert _audiences(second["aud"]) == _audiences(original["aud"])
    assert second["iat"] > original["iat"]
    check_userinfo(userinfo(rp, body["access_token"]), alice)

    # Client 2's refresh token presented by client 1.
    rp2 = flows.client("rp2")
    other = code_flow(browser, rp2)
    stolen = other.token["refresh_token"]
    check_token_error(token_request(rp, {"grant_type": "refresh_token", "refresh_token": stolen}),
                      "invalid_grant")
