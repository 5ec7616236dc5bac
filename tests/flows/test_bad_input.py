"""Malformed input at every endpoint: a protocol-shaped error, never a 500, never a redirect
to an unregistered URI, and nothing written.

Until the client and its exact redirect URI are established, /authorize shows our error page
(RFC 6749 §4.1.2.1); after that, errors go back to the client with ``state`` and ``iss``
(RFC 9207). Machine endpoints answer JSON (RFC 6749 §5.2, RFC 6750 §3.1, RFC 7662, RFC 7009).
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from sqlalchemy import func, select

from idp.extensions import db
from idp.models import AuthorizationCode, Consent, Token, User
from idp.oidc.clients import register_client
from idp.users import create_user
from tests.conftest import build_app, free_port
from tests.helpers.rp import CALLBACK, DEFAULT_PASSWORD, page_name

CHALLENGE = create_s256_code_challenge("v" * 64)
GOOD_AUTHORIZE = (
    ("response_type", "code"), ("client_id", "rp1"), ("redirect_uri", CALLBACK),
    ("scope", "openid profile"), ("state", "s1"), ("nonce", "n1"),
    ("code_challenge", CHALLENGE), ("code_challenge_method", "S256"),
)
WRITTEN_TABLES = (Token, AuthorizationCode, User, Consent)
#: Basic credentials whose decoded bytes are not UTF-8 (RFC 7617 §2.1 charset is UTF-8).
NON_UTF8_BASIC = "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode()


def authorize(*, drop: tuple[str, ...] = (), add: tuple[tuple[str, str], ...] = (),
              raw: str = "", **replace: str) -> str:
    """/authorize with the good parameters, some dropped, replaced or repeated."""
    pairs = [(k, replace.pop(k, v)) for k, v in GOOD_AUTHORIZE if k not in drop]
    pairs += [*replace.items(), *add]
    return "/authorize?" + urlencode(pairs) + raw


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    status: int
    #: "json", "html" (our error page), "redirect" (to the client), "empty" (no body)
    kind: str
    error: str | None
    #: "basic" (rp1's secret), "wrong_secret", "bad_basic", "bearer_garbage", or a raw header
    auth: str | None = None
    form: dict[str, str] | None = None
    data: bytes | str | None = None
    content_type: str | None = None
    json_body: dict[str, Any] | None = None
    #: the full JSON body expected on a success answer
    body: dict[str, Any] | None = None
    #: for a redirect: the state expected back
    state: str | None = "s1"
    headers: dict[str, str] = field(default_factory=dict)


def redirect(error: str, path: str, **kw: Any) -> Case:
    return Case("GET", path, 302, "redirect", error, **kw)


def page(error: str, path: str, method: str = "GET", **kw: Any) -> Case:
    return Case(method, path, 400, "html", error, **kw)


def token(status: int, error: str, **kw: Any) -> Case:
    kw.setdefault("auth", "basic")
    return Case("POST", "/token", status, "json", error, **kw)


CASES = [
    # -- /authorize: nothing known good yet, so our page, no redirect ------------------------
    pytest.param(page("invalid_client", "/authorize"), id="authorize-no-params"),
    pytest.param(page("invalid_client", authorize(client_id="nobody")),
                 id="authorize-unknown-client"),
    pytest.param(page("invalid_request", authorize(drop=("redirect_uri",))),
                 id="authorize-no-redirect-uri"),
    pytest.param(page("invalid_request", authorize(redirect_uri="https://evil.example/cb")),
                 id="authorize-unregistered-redirect-uri"),
    pytest.param(page("invalid_request", authorize(redirect_uri=CALLBACK + "/extra")),
                 id="authorize-redirect-uri-extra-path"),
    pytest.param(page("invalid_request", authorize(redirect_uri=CALLBACK + "?x=1")),
                 id="authorize-redirect-uri-extra-query"),
    pytest.param(page("invalid_request", authorize(add=(("client_id", "rp1"),))),
                 id="authorize-duplicate-client-id"),
    pytest.param(page("invalid_request", authorize(add=(("redirect_uri", CALLBACK),))),
                 id="authorize-duplicate-redirect-uri"),
    pytest.param(page("invalid_request", authorize(raw="&login_hint=%ff")),
                 id="authorize-non-utf8"),
    pytest.param(page("invalid_request", authorize(raw="&login_hint=al%00ice")),
                 id="authorize-nul"),
    pytest.param(page("invalid_request", "/authorize", method="POST",
                      data=urlencode(GOOD_AUTHORIZE) + "&login_hint=%ff",
                      content_type="application/x-www-form-urlencoded"),
                 id="authorize-post-non-utf8"),
    # -- /authorize: client and redirect URI good, so the error goes back to the client ------
    pytest.param(redirect("invalid_request", authorize(add=(("state", "s1"),))),
                 id="authorize-duplicate-state"),
    pytest.param(redirect("invalid_request", authorize(drop=("response_type",))),
                 id="authorize-no-response-type"),
    pytest.param(redirect("unsupported_response_type", authorize(response_type="token")),
                 id="authorize-response-type-token"),
    pytest.param(redirect("invalid_scope", authorize(scope="profile")),
                 id="authorize-no-openid-scope"),
    pytest.param(redirect("invalid_request",
                          authorize(drop=("code_challenge", "code_challenge_method"))),
                 id="authorize-no-pkce"),
    pytest.param(redirect("invalid_request",
                          authorize(code_challenge="v" * 64, code_challenge_method="plain")),
                 id="authorize-plain-pkce"),
    pytest.param(redirect("invalid_request", authorize(code_challenge="short")),
                 id="authorize-code-challenge-too-short"),
    pytest.param(redirect("invalid_request", authorize(code_challenge="!" * 43)),
                 id="authorize-code-challenge-bad-characters"),
    pytest.param(redirect("invalid_request", authorize(max_age="-1")),
                 id="authorize-max-age-negative"),
    pytest.param(redirect("invalid_request", authorize(max_age="abc")),
                 id="authorize-max-age-text"),
    pytest.param(redirect("invalid_request", authorize(claims="{not json")),
                 id="authorize-claims-not-json"),
    pytest.param(redirect("invalid_request", authorize(claims="[]")),
                 id="authorize-claims-array"),
    pytest.param(redirect("invalid_request", authorize(claims='{"id_token": ["acr"]}')),
                 id="authorize-claims-member-not-object"),
    pytest.param(redirect("invalid_request", authorize(prompt="none login")),
                 id="authorize-prompt-none-and-login"),
    pytest.param(redirect("invalid_request", authorize(prompt="bogus")),
                 id="authorize-prompt-unknown"),
    pytest.param(redirect("invalid_request", authorize(response_mode="fragment")),
                 id="authorize-response-mode-fragment"),
    pytest.param(redirect("invalid_request", authorize(nonce="n" * 5000)),
                 id="authorize-oversized-parameter"),
    pytest.param(redirect("request_not_supported", authorize(request="e30.e30.")),
                 id="authorize-request-object"),
    # -- /token ----------------------------------------------------------------------------
    pytest.param(token(400, "invalid_request", json_body={"grant_type": "client_credentials"}),
                 id="token-json-body"),
    pytest.param(token(400, "invalid_request", data="grant_type=client_credentials",
                       content_type="text/plain"),
                 id="token-wrong-content-type"),
    pytest.param(token(400, "invalid_request",
                       data="grant_type=authorization_code&grant_type=authorization_code"
                            "&code=x&code_verifier=" + "v" * 64,
                       content_type="application/x-www-form-urlencoded"),
                 id="token-duplicate-parameter"),
    pytest.param(token(400, "invalid_request", form={"code": "x"}), id="token-no-grant-type"),
    pytest.param(token(400, "unsupported_grant_type", form={"grant_type": "password"}),
                 id="token-unknown-grant-type"),
    pytest.param(token(400, "invalid_grant", form={
        "grant_type": "authorization_code", "code": "garbage", "redirect_uri": CALLBACK,
        "code_verifier": "v" * 64}), id="token-garbage-code"),
    pytest.param(token(413, "request_too_large",
                       form={"grant_type": "authorization_code", "code": "z" * 70_000}),
                 id="token-huge-body"),
    pytest.param(token(400, "invalid_request", data=b"grant_type=%ff",
                       content_type="application/x-www-form-urlencoded"),
                 id="token-non-utf8"),
    pytest.param(token(400, "invalid_request", data=b"grant_type=client_%00credentials",
                       content_type="application/x-www-form-urlencoded"),
                 id="token-nul"),
    pytest.param(token(401, "invalid_client", auth="bad_basic",
                       form={"grant_type": "client_credentials"}), id="token-bad-basic-header"),
    pytest.param(token(401, "invalid_client", auth="Basic " + base64.b64encode(b"rp1").decode(),
                       form={"grant_type": "client_credentials"}), id="token-basic-no-colon"),
    pytest.param(token(401, "invalid_client", auth=NON_UTF8_BASIC,
                       form={"grant_type": "client_credentials"}),
                 id="token-basic-not-utf8"),
    pytest.param(token(401, "invalid_client", auth="wrong_secret",
                       form={"grant_type": "client_credentials"}), id="token-wrong-secret"),
    pytest.param(token(401, "invalid_client", auth=None,
                       form={"grant_type": "client_credentials", "client_id": "spa"}),
                 id="token-public-client-credentials"),
    pytest.param(token(400, "unauthorized_client", form={"grant_type": "client_credentials"}),
                 id="token-grant-not-registered"),
    pytest.param(Case("GET", "/token", 405, "json", "method_not_allowed"), id="token-get"),
    # -- /userinfo (RFC 6750) ---------------------------------------------------------------
    pytest.param(Case("GET", "/userinfo", 401, "empty", None), id="userinfo-no-token"),
    pytest.param(Case("GET", "/userinfo", 401, "json", "invalid_token", auth="bearer_garbage"),
                 id="userinfo-garbage-token"),
    pytest.param(Case("GET", "/userinfo", 400, "json", "invalid_request", auth="basic"),
                 id="userinfo-basic-scheme"),
    pytest.param(Case("GET", "/userinfo?access_token=abc", 400, "json", "invalid_request"),
                 id="userinfo-token-in-query"),
    pytest.param(Case("POST", "/userinfo", 400, "json", "invalid_request",
                      auth="bearer_garbage", form={"access_token": "abc"}),
                 id="userinfo-header-and-body"),
    # -- /introspect (RFC 7662) and /revoke (RFC 7009) --------------------------------------
    pytest.param(Case("POST", "/introspect", 401, "json", "invalid_client",
                      form={"token": "abc"}), id="introspect-no-client-auth"),
    pytest.param(Case("POST", "/introspect", 401, "json", "invalid_client", auth=NON_UTF8_BASIC,
                      form={"token": "abc"}),
                 id="introspect-basic-not-utf8"),
    pytest.param(Case("POST", "/introspect", 400, "json", "invalid_request", auth="basic",
                      form={"token_type_hint": "access_token"}), id="introspect-no-token"),
    pytest.param(Case("POST", "/introspect", 200, "json", None, auth="basic",
                      form={"token": "garbage"}, body={"active": False}),
                 id="introspect-garbage-token"),
    pytest.param(Case("POST", "/revoke", 401, "json", "invalid_client",
                      form={"token": "abc"}), id="revoke-no-client-auth"),
    pytest.param(Case("POST", "/revoke", 401, "json", "invalid_client", auth=NON_UTF8_BASIC,
                      form={"token": "abc"}),
                 id="revoke-basic-not-utf8"),
    pytest.param(Case("POST", "/revoke", 400, "json", "invalid_request", auth="basic",
                      form={"token_type_hint": "access_token"}), id="revoke-no-token"),
    pytest.param(Case("POST", "/revoke", 200, "json", None, auth="basic",
                      form={"token": "garbage"}, body={}), id="revoke-garbage-token"),
    # -- /logout and the hosted pages -------------------------------------------------------
    pytest.param(page("invalid_request", "/logout?id_token_hint=a.b.c"),
                 id="logout-bad-id-token-hint"),
    pytest.param(page("invalid_request", "/logout?" + urlencode({
        "client_id": "rp1", "post_logout_redirect_uri": "https://evil.example/bye"})),
                 id="logout-unregistered-post-logout-uri"),
    pytest.param(page("invalid_request", "/logout?" + urlencode({
        "post_logout_redirect_uri": "https://rp.example.test/logged-out"})),
                 id="logout-post-logout-uri-without-client"),
    pytest.param(page("interaction_expired", "/interaction/" + secrets.token_urlsafe(32)),
                 id="interaction-unknown"),
    pytest.param(page("interaction_expired", "/authorize/resume/" + secrets.token_urlsafe(32)),
                 id="resume-unknown"),
]


@dataclass
class Server:
    app: Any
    client: Any
    secret: str


@pytest.fixture(scope="module")
def server(tmp_path_factory: Any) -> Iterator[Server]:
    """One app for the whole table: every row leaves the database unchanged (asserted), so
    sharing it costs no isolation and saves building an app (and its keys) per row."""
    app = build_app(tmp_path_factory.mktemp("bad-input"), free_port())
    with app.app_context():
        rp1 = register_client(name="RP", client_id="rp1", redirect_uris=[CALLBACK],
                              post_logout_redirect_uris=["https://rp.example.test/logged-out"],
                              first_party=True)
        register_client(name="SPA", client_id="spa", redirect_uris=[CALLBACK],
                        auth_method="none")
        create_user(username="alice", password=DEFAULT_PASSWORD)
    yield Server(app, app.test_client(), rp1.secret or "")
    store = app.extensions["idp.store"]
    if hasattr(store, "flush_namespace"):
        store.flush_namespace()
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def row_counts(app: Any) -> dict[str, int]:
    with app.app_context():
        return {model.__tablename__: db.session.scalar(select(func.count()).select_from(model))
                for model in WRITTEN_TABLES}


def authorization_header(auth: str, secret: str) -> str:
    def basic(user: str, password: str) -> str:
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    return {
        "basic": basic("rp1", secret),
        "wrong_secret": basic("rp1", "not-the-secret"),
        "bad_basic": "Basic !!!not-base64!!!",
        "bearer_garbage": "Bearer abc.def.ghi",
    }.get(auth, auth)


def request_kwargs(case: Case, secret: str) -> dict[str, Any]:
    headers = dict(case.headers)
    if case.auth:
        headers["Authorization"] = authorization_header(case.auth, secret)
    kwargs: dict[str, Any] = {"method": case.method, "headers": headers}
    if case.form is not None:
        kwargs["data"] = case.form
    elif case.data is not None:
        kwargs["data"] = case.data
        kwargs["content_type"] = case.content_type
    elif case.json_body is not None:
        kwargs["json"] = case.json_body
    return kwargs


@pytest.mark.parametrize("case", CASES)
def test_malformed_input_gets_a_protocol_error(server, case):
    app = server.app
    before = row_counts(app)

    response = server.client.open(case.path, **request_kwargs(case, server.secret))

    assert response.status_code == case.status, response.get_data(as_text=True)[:500]
    location = response.headers.get("Location")
    if case.kind == "redirect":
        assert location is not None and location.startswith(CALLBACK + "?"), location
        params = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
        assert params["error"] == case.error
        assert params.get("state") == case.state
        assert params["iss"] == app.extensions["idp.settings"].issuer
        assert "code" not in params
    else:
        assert location is None
    if case.kind == "json":
        assert response.mimetype == "application/json"
        body = json.loads(response.get_data(as_text=True))
        if case.error is None:
            assert body == case.body
        else:
            assert body["error"] == case.error
    elif case.kind == "html":
        html = response.get_data(as_text=True)
        assert response.mimetype == "text/html"
        assert page_name(html) == "error"
        assert re.search(r'data-error="([^"]*)"', html).group(1) == case.error  # type: ignore[union-attr]
    elif case.kind == "empty":
        assert response.get_data() == b""
    if case.path.startswith("/userinfo"):
        # RFC 6750 §3: every error names the scheme; an error code only when there is one.
        challenge = response.headers["WWW-Authenticate"]
        assert challenge.startswith("Bearer ")
        assert (f'error="{case.error}"' in challenge) if case.error else ("error=" not in challenge)
    assert row_counts(app) == before


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("GET", "/token", {"POST"}),
    ("GET", "/introspect", {"POST"}),
    ("PUT", "/userinfo", {"GET", "POST"}),
])
def test_method_not_allowed_names_the_allowed_methods(server, method, path, allowed):
    response = server.client.open(path, method=method)

    assert response.status_code == 405
    assert allowed <= {m.strip() for m in response.headers.get("Allow", "").split(",")}
