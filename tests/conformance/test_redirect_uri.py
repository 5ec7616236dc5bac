"""Redirect-URI modules of oidcc-dynamic-certification-test-plan (CONFORMANCE.md §1.4),
replicated against static clients: oidcc-ensure-redirect-uri-in-authorization-request and
oidcc-redirect-uri-query-OK / -query-mismatch / -query-added."""

from __future__ import annotations

from tests.conformance.support import (
    assert_error_page,
    auth_request,
    check_userinfo,
    code_flow,
    userinfo,
)
from tests.helpers.rp import CALLBACK

WITH_QUERY = f"{CALLBACK}?foo=bar"


def test_oidcc_ensure_redirect_uri_in_authorization_request(flows, browser):
    """oidcc-ensure-redirect-uri-in-authorization-request: the client has two registered
    redirect URIs and the request names none; the OP shows an error page and does not
    redirect (OIDC Core §3.1.2.1: redirect_uri is REQUIRED)."""
    rp = flows.client("rp-two", redirect_uris=[CALLBACK, "https://rp.example.test/other"])
    request = auth_request(rp, redirect_uri=None)
    assert "redirect_uri" not in request.params

    response = browser.get(request.url(rp.issuer))

    assert_error_page(response)


def test_oidcc_redirect_uri_query_ok(flows, alice, browser):
    """oidcc-redirect-uri-query-OK: a registered redirect URI with a query component, used
    exactly: authorization completes, and the response keeps that query (RFC 6749 §3.1.2)."""
    rp = flows.client("rp-query", redirect_uris=[WITH_QUERY])
    rp.redirect_uri = WITH_QUERY

    flow = code_flow(browser, rp)

    assert flow.outcome.location.startswith(WITH_QUERY + "&")
    assert flow.callback.params["foo"] == "bar"
    assert flow.claims["sub"] == alice
    check_userinfo(userinfo(rp, flow.token["access_token"]), alice)


def test_oidcc_redirect_uri_query_mismatch(flows, browser):
    """oidcc-redirect-uri-query-mismatch: the request's redirect_uri has a different query than
    the registered one; the OP shows an error page and does not call the redirect URI."""
    rp = flows.client("rp-query", redirect_uris=[WITH_QUERY])
    request = auth_request(rp, redirect_uri=f"{CALLBACK}?foo=zot")

    response = browser.get(request.url(rp.issuer))

    assert_error_page(response)


def test_oidcc_redirect_uri_query_added(rp, browser):
    """oidcc-redirect-uri-query-added: a query added to a registered redirect URI that has
    none; the OP shows an error page and does not call the redirect URI."""
    request = auth_request(rp, redirect_uri=f"{CALLBACK}?foo=bar")

    response = browser.get(request.url(rp.issuer))

    assert_error_page(response)
