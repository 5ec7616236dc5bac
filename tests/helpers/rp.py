"""Action helpers for multi-step flows (the Flask tutorial's ``AuthActions``, grown up).

``Browser`` is a user agent (requests.Session that follows our hosted pages by their page
contract); ``RelyingParty`` is a real OIDC client built on Authlib's ``OAuth2Session`` that
verifies ID tokens against the JWKS.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.jwk import KeySet

DEFAULT_PASSWORD = "correct horse battery staple"
CALLBACK = "https://rp.example.test/callback"


def hidden_inputs(html: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))


def claim_boxes(html: str) -> list[str]:
    """The claims a consent page asks about one by one (checked boxes)."""
    return re.findall(r'<input type="checkbox" name="claim" value="([^"]+)"[^>]*checked', html)


def form_action(html: str, contains: str) -> str:
    for action in re.findall(r'<form method="post" action="([^"]+)"', html):
        if contains in action:
            return action
    raise AssertionError(f"no form posting to *{contains}* in page:\n{html[:2000]}")


def page_name(html: str) -> str | None:
    match = re.search(r'<main data-page="([^"]*)"', html)
    return match.group(1) if match else None


@dataclass
class Browser:
    base_url: str
    session: requests.Session = field(default_factory=requests.Session)

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        return self.session.get(self._abs(url), allow_redirects=False, timeout=30, **kwargs)

    def post(self, url: str, data: dict[str, Any], **kwargs: Any) -> requests.Response:
        return self.session.post(self._abs(url), data=data, allow_redirects=False, timeout=30,
                                 **kwargs)

    def _abs(self, url: str) -> str:
        return url if url.startswith("http") else self.base_url + url

    def follow(self, response: requests.Response, stop_at: str = CALLBACK) -> requests.Response:
        """Follow redirects within the IdP; stop at the client's redirect URI."""
        for _ in range(20):
            location = response.headers.get("Location")
            if response.status_code not in (301, 302, 303, 307) or not location:
                return response
            if location.startswith(stop_at) or not location.startswith(
                    ("/", self.base_url)):
                return response
            response = self.get(location)
        raise AssertionError("redirect loop")

    def submit_login(self, page: requests.Response, username: str,
                     password: str = DEFAULT_PASSWORD) -> requests.Response:
        assert page_name(page.text) == "login", page.text[:500]
        fields = hidden_inputs(page.text)
        action = form_action(page.text, "/login")
        return self.post(action, {**fields, "username": username, "password": password})

    def submit_consent(self, page: requests.Response, decision: str = "allow",
                       claims: list[str] | None = None) -> requests.Response:
        """Submit the consent form; ``claims`` are the claim boxes left ticked (default: as
        the page shows them, all ticked)."""
        assert page_name(page.text) == "consent", page.text[:500]
        fields: dict[str, Any] = dict(hidden_inputs(page.text))
        action = form_action(page.text, "/consent")
        ticked = claims if claims is not None else claim_boxes(page.text)
        return self.post(action, {**fields, "decision": decision, "claim": ticked})


def choose_factor(browser: Browser, picker: requests.Response, method: str) -> requests.Response:
    """On the factor picker, start the challenge of the first option of ``method``."""
    assert page_name(picker.text) == "mfa-picker", picker.text[:300]
    forms = re.findall(r'<form method="post" action="([^"]+)">(.*?)</form>', picker.text, re.S)
    for action, body in forms:
        if f'data-factor="{method}"' in body:
            return browser.post(action, hidden_inputs(body))
    raise AssertionError(f"no {method} option on the picker")


@dataclass
class Callback:
    """What arrived at the client's redirect URI."""

    params: dict[str, str]

    @property
    def code(self) -> str:
        assert "code" in self.params, f"no code: {self.params}"
        return self.params["code"]


def callback_params(response: requests.Response) -> Callback:
    location = response.headers.get("Location", "")
    assert location.startswith(CALLBACK), f"not redirected to client: {response.status_code} " \
                                          f"{location} {response.text[:300]}"
    query = parse_qs(urlsplit(location).query, keep_blank_values=True)
    return Callback({k: v[0] for k, v in query.items()})


@dataclass
class RelyingParty:
    """A registered confidential client, driving flows through Authlib's OAuth2Session."""

    issuer: str
    client_id: str
    client_secret: str | None
    redirect_uri: str = CALLBACK
    auth_method: str = "client_secret_basic"

    def metadata(self) -> dict[str, Any]:
        return requests.get(self.issuer + "/.well-known/openid-configuration", timeout=10).json()

    def session(self) -> OAuth2Session:
        return OAuth2Session(self.client_id, self.client_secret, scope="openid profile email",
                             redirect_uri=self.redirect_uri,
                             token_endpoint_auth_method=self.auth_method)

    def authorize_url(self, **params: Any) -> tuple[str, dict[str, str]]:
        """A fresh request: returns the URL and the secrets (state, nonce, verifier)."""
        verifier = secrets.token_urlsafe(48)
        secrets_ = {"state": secrets.token_urlsafe(16), "nonce": secrets.token_urlsafe(16),
                    "code_verifier": verifier}
        query = {"response_type": "code", "client_id": self.client_id,
                 "redirect_uri": self.redirect_uri, "scope": "openid profile email",
                 "state": secrets_["state"], "nonce": secrets_["nonce"],
                 "code_challenge": create_s256_code_challenge(verifier),
                 "code_challenge_method": "S256", **params}
        query = {k: v for k, v in query.items() if v is not None}
        request = requests.Request("GET", self.issuer + "/authorize", params=query).prepare()
        return request.url or "", secrets_

    def exchange(self, code: str, verifier: str) -> dict[str, Any]:
        return self.session().fetch_token(self.issuer + "/token", code=code,
                                          code_verifier=verifier,
                                          grant_type="authorization_code")

    def jwks(self) -> KeySet:
        return KeySet.import_key_set(requests.get(self.issuer + "/jwks", timeout=10).json())

    def verify_id_token(self, id_token: str, nonce: str | None = None) -> dict[str, Any]:
        """Signature against the JWKS, iss, aud, exp/iat, nonce (OIDC Core §3.1.3.7)."""
        decoded = jwt.decode(id_token, self.jwks(), algorithms=["RS256", "ES256"])
        claims = decoded.claims
        assert decoded.header.get("kid"), "ID token without kid"
        now = time.time()
        assert claims["iss"] == self.issuer
        aud = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        assert self.client_id in aud
        assert claims["exp"] > now - 300 and claims["iat"] <= now + 300
        if nonce is not None:
            assert claims.get("nonce") == nonce
        return claims


@dataclass
class FlowResult:
    callback: Callback
    secrets: dict[str, str]
    token: dict[str, Any] | None = None
    claims: dict[str, Any] | None = None


class Flows:
    """One object per test: makes users/clients and runs whole flows."""

    def __init__(self, app: Any, base_url: str) -> None:
        self.app = app
        self.base_url = base_url

    def user(self, username: str = "alice", password: str = DEFAULT_PASSWORD, **kw: Any) -> Any:
        from idp.users import create_user

        with self.app.app_context():
            user = create_user(username=username, password=password,
                               email=kw.pop("email", f"{username}@example.test"),
                               name=kw.pop("name", username.title()), **kw)
            return user.id

    def client(self, client_id: str = "rp1", *, first_party: bool = True,
               auth_method: str = "client_secret_basic", **kw: Any) -> RelyingParty:
        from idp.oidc.clients import register_client

        kw.setdefault("redirect_uris", [CALLBACK])
        kw.setdefault("post_logout_redirect_uris", ["https://rp.example.test/logged-out"])
        with self.app.app_context():
            registered = register_client(name=f"Client {client_id}", client_id=client_id,
                                         first_party=first_party, auth_method=auth_method, **kw)
            return RelyingParty(self.base_url, client_id, registered.secret,
                                auth_method=auth_method)

    def browser(self) -> Browser:
        return Browser(self.base_url)

    def sign_in(self, browser: Browser, rp: RelyingParty, username: str = "alice",
                password: str = DEFAULT_PASSWORD, exchange: bool = True,
                **params: Any) -> FlowResult:
        """Authorize → (login if asked) → (consent if asked) → callback → token."""
        url, flow_secrets = rp.authorize_url(**params)
        response = browser.follow(browser.get(url))
        for _ in range(4):
            if response.headers.get("Location", "").startswith(CALLBACK):
                break
            page = page_name(response.text)
            if page == "login":
                response = browser.follow(browser.submit_login(response, username, password))
            elif page == "consent":
                response = browser.follow(browser.submit_consent(response))
            else:
                raise AssertionError(f"unexpected page {page}: {response.status_code} "
                                     f"{response.text[:500]}")
        callback = callback_params(response)
        result = FlowResult(callback, flow_secrets)
        if exchange and "code" in callback.params:
            result.token = rp.exchange(callback.code, flow_secrets["code_verifier"])
            result.claims = rp.verify_id_token(result.token["id_token"], flow_secrets["nonce"])
        return result


@pytest.fixture
def flows(app: Any, live_server: Any) -> Flows:
    return Flows(app, live_server.url)
