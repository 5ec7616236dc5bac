"""oidcc-rp-initiated-logout-certification-test-plan (CONFORMANCE.md §1.5), module by module.

Every module first runs a normal code flow (AbstractOIDCCRpInitiatedLogout), then sends the
browser to end_session_endpoint with id_token_hint, post_logout_redirect_uri and state
(CreateEndSessionEndpointRequest), varied per module. Where the OP logs the user out, a second
authorization with prompt=none (and a 128-character state) must fail with an error that
requires a user interface. The suite fails a module outright whenever the OP calls the
post_logout_redirect_uri where it must not.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import RSAKey

from tests.conformance.support import (
    USER_INTERFACE_ERRORS,
    Flow,
    assert_error_page,
    auth_request,
    authorize,
    b64url_json,
    check_authorization_error,
    code_flow,
    discovery,
    long_state,
    unverified_part,
)
from tests.helpers.rp import CALLBACK, Browser, RelyingParty, form_action, hidden_inputs, page_name

POST_LOGOUT = "https://rp.example.test/logged-out"  # registered by tests.helpers.rp.Flows.client


@dataclass
class SignedIn:
    browser: Browser
    rp: RelyingParty
    flow: Flow

    @property
    def id_token(self) -> str:
        return self.flow.token["id_token"]


@pytest.fixture
def signed_in(alice: str, rp: RelyingParty, browser: Browser) -> SignedIn:
    """The first, normal authorization of every logout module."""
    flow = code_flow(browser, rp)
    assert flow.claims.get("sid"), "ID token without sid"
    return SignedIn(browser, rp, flow)


def end_session(s: SignedIn, **params: str | None) -> requests.Response:
    """BuildRedirectToEndSessionEndpoint: GET end_session_endpoint with the given parameters
    (default: id_token_hint, post_logout_redirect_uri and a fresh state; None drops one)."""
    endpoint = discovery(s.rp.issuer)["end_session_endpoint"]
    query = {"id_token_hint": s.id_token, "post_logout_redirect_uri": POST_LOGOUT,
             "state": secrets.token_urlsafe(16)}
    query.update(params)
    query = {k: v for k, v in query.items() if v is not None}
    return s.browser.get(f"{endpoint}?{urlencode(query)}" if query else endpoint)


def confirm_logout(browser: Browser, page: requests.Response) -> requests.Response:
    """The user answers the OP's "Sign out?" question with yes."""
    assert page_name(page.text) == "logout", page.text[:500]
    fields = hidden_inputs(page.text)
    return browser.post(form_action(page.text, "/logout/confirm"), {**fields, "decision": "logout"})


def is_post_logout_redirect(response: requests.Response) -> bool:
    location = response.headers.get("Location", "")
    return response.status_code in (301, 302, 303, 307, 308) and \
        location.startswith("https://rp.example.test/")


def finish_logout(s: SignedIn, response: requests.Response) -> tuple[requests.Response, bool]:
    """Follow the OP until it redirects away or shows a page; confirm if it asks. Returns the
    final response and whether the OP asked for confirmation."""
    asked = False
    for _ in range(5):
        if is_post_logout_redirect(response):
            return response, asked
        if page_name(response.text) == "logout" and not asked:
            asked = True
            response = confirm_logout(s.browser, response)
            continue
        return response, asked
    raise AssertionError("logout did not finish")


def assert_logged_out(s: SignedIn) -> None:
    """The second authorization: prompt=none must now fail with an error that requires a user
    interface (CheckErrorFromAuthorizationEndpointIsOneThatRequiredAUserInterface), with the
    128-character state intact and no code."""
    state = long_state()
    request = auth_request(s.rp, prompt="none", state=state)
    outcome = authorize(s.browser, s.rp, request)
    assert outcome.pages == []
    check_authorization_error(s.rp, outcome.callback(CALLBACK), errors=USER_INTERFACE_ERRORS,
                              state=state)


def assert_not_redirected(s: SignedIn, response: requests.Response) -> str:
    """The OP must not redirect back: it shows an error page or asks the user; if it asks and
    the user agrees, it still must not call the post_logout_redirect_uri. Returns the page the
    OP first showed ("error" or "logout")."""
    assert not is_post_logout_redirect(response), response.headers.get("Location")
    page = page_name(response.text)
    if page == "error":
        assert_error_page(response)
        return page
    assert page == "logout", f"neither an error nor a confirmation: {response.text[:500]}"
    after = confirm_logout(s.browser, response)
    assert not is_post_logout_redirect(after), \
        f"post_logout_redirect_uri called after confirmation: {after.headers.get('Location')}"
    return page


def assert_logged_out_page(response: requests.Response) -> None:
    """ExpectSuccessfulLogoutPage: the OP's own "you are signed out" page, no redirect."""
    assert response.status_code == 200, response.status_code
    assert "Location" not in response.headers
    assert page_name(response.text) == "logged-out", response.text[:500]
    assert "still signed in" not in response.text


# -- modules -----------------------------------------------------------------------------------

def test_oidcc_rp_initiated_logout(signed_in):
    """oidcc-rp-initiated-logout: with id_token_hint, post_logout_redirect_uri and state the OP
    redirects to the post_logout_redirect_uri with the state (CheckPostLogoutState) and nothing
    else (CheckForUnexpectedParametersInPostLogoutRedirect); a following prompt=none fails."""
    state = secrets.token_urlsafe(32)

    response, _ = finish_logout(signed_in, end_session(signed_in, state=state))

    assert is_post_logout_redirect(response), f"{response.status_code} {response.text[:300]}"
    location = response.headers["Location"]
    assert location.startswith(POST_LOGOUT)
    assert urlsplit(location)._replace(query="").geturl() == POST_LOGOUT
    assert parse_qs(urlsplit(location).query) == {"state": [state]}
    assert_logged_out(signed_in)


def test_oidcc_rp_initiated_logout_bad_id_token_hint(signed_in):
    """oidcc-rp-initiated-logout-bad-id-token-hint: an id_token_hint signed by someone else's
    key (GenerateFakeIdTokenClaims + SignFakeIdToken): the OP shows an error page and does not
    call the post_logout_redirect_uri."""
    genuine = signed_in.flow.claims
    now = int(time.time())
    fake_claims = {"iss": genuine["iss"], "sub": genuine["sub"], "aud": genuine["aud"],
                   "iat": now, "exp": now + 300, "sid": genuine.get("sid")}
    key = RSAKey.generate_key(2048, parameters={"kid": "conformance-suite"})
    fake = jwt.encode({"alg": "RS256", "kid": "conformance-suite"}, fake_claims, key)

    response = end_session(signed_in, id_token_hint=fake)

    assert not is_post_logout_redirect(response), response.headers.get("Location")
    assert_error_page(response)  # ExpectInvalidIdTokenHintErrorPage


def test_oidcc_rp_initiated_logout_modified_id_token_hint(signed_in):
    """oidcc-rp-initiated-logout-modified-id-token-hint: the real ID token changed to alg:none
    (ChangeIdTokenToAlgNone): the OP must not redirect back; it shows an error or asks the
    user."""
    claims = unverified_part(signed_in.id_token, 1)
    header = {**unverified_part(signed_in.id_token, 0), "alg": "none"}
    modified = f"{b64url_json(header)}.{b64url_json(claims)}."

    response = end_session(signed_in, id_token_hint=modified)

    assert_not_redirected(signed_in, response)


def test_oidcc_rp_initiated_logout_bad_post_logout_redirect_uri(signed_in):
    """oidcc-rp-initiated-logout-bad-post-logout-redirect-uri: a post_logout_redirect_uri that
    is not registered: the OP must not redirect; it shows an error or asks the user."""
    response = end_session(signed_in,
                           post_logout_redirect_uri="https://rp.example.test/not-registered")

    assert_not_redirected(signed_in, response)


def test_oidcc_rp_initiated_logout_query_added_to_post_logout_redirect_uri(signed_in):
    """oidcc-rp-initiated-logout-query-added-to-post-logout-redirect-uri: the registered URI
    with '?foo=bar' added: the OP must not redirect; it shows an error or asks the user."""
    response = end_session(signed_in, post_logout_redirect_uri=f"{POST_LOGOUT}?foo=bar")

    assert_not_redirected(signed_in, response)


def test_oidcc_rp_initiated_logout_no_id_token_hint(signed_in):
    """oidcc-rp-initiated-logout-no-id-token-hint: post_logout_redirect_uri and state but no
    id_token_hint: the OP must not redirect back; it shows an error or asks the user."""
    response = end_session(signed_in, id_token_hint=None)

    assert_not_redirected(signed_in, response)


def test_oidcc_rp_initiated_logout_no_params(signed_in):
    """oidcc-rp-initiated-logout-no-params: end_session_endpoint without any parameter: the OP
    logs the user out (after asking, as RP-Initiated Logout §2 requires without a hint) and
    shows its signed-out page; it does not redirect."""
    response = end_session(signed_in, id_token_hint=None, post_logout_redirect_uri=None,
                           state=None)
    assert urlsplit(response.url).query == ""

    final, _ = finish_logout(signed_in, response)

    assert_logged_out_page(final)
    assert_logged_out(signed_in)


def test_oidcc_rp_initiated_logout_no_post_logout_redirect_uri(signed_in):
    """oidcc-rp-initiated-logout-no-post-logout-redirect-uri: id_token_hint and state but no
    post_logout_redirect_uri: the OP logs the user out and shows its signed-out page; it does
    not redirect."""
    response = end_session(signed_in, post_logout_redirect_uri=None)

    final, _ = finish_logout(signed_in, response)

    assert_logged_out_page(final)
    assert_logged_out(signed_in)


def test_oidcc_rp_initiated_logout_only_state(signed_in):
    """oidcc-rp-initiated-logout-only-state: only a state: the OP logs the user out (after
    asking) and shows its signed-out page; it does not redirect."""
    response = end_session(signed_in, id_token_hint=None, post_logout_redirect_uri=None)

    final, _ = finish_logout(signed_in, response)

    assert_logged_out_page(final)
    assert_logged_out(signed_in)


def test_oidcc_rp_initiated_logout_no_state(signed_in):
    """oidcc-rp-initiated-logout-no-state: id_token_hint and post_logout_redirect_uri without
    state: the OP redirects to the post_logout_redirect_uri with no state (CheckNoPostLogoutState)
    and no other parameter; a following prompt=none fails."""
    response, _ = finish_logout(signed_in, end_session(signed_in, state=None))

    assert is_post_logout_redirect(response), f"{response.status_code} {response.text[:300]}"
    assert response.headers["Location"] == POST_LOGOUT
    assert_logged_out(signed_in)


def test_oidcc_rp_initiated_logout_discovery_endpoint_verification(live_server):
    """oidcc-rp-initiated-logout-discovery-endpoint-verification: the discovery document
    names an end_session_endpoint (CheckDiscEndSessionEndpoint), and all endpoints are https
    (CheckDiscEndpointAllEndpointsAreHttps) — asserted as "under the issuer", since the tests
    run on http://localhost."""
    metadata = discovery(live_server.url)

    endpoint = metadata.get("end_session_endpoint")
    assert isinstance(endpoint, str) and endpoint.startswith(metadata["issuer"] + "/")
    assert not urlsplit(endpoint).fragment
    for name, value in metadata.items():
        if name.endswith(("_endpoint", "_uri")):
            assert value.startswith(metadata["issuer"] + "/"), (name, value)
