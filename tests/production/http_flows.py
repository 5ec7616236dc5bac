"""Browser-less flows against ``idp serve`` processes: plain HTTP with requests, pages read by
their ``<main data-page=…>`` contract (tests/helpers/rp.py), and an in-process "admin" app on
the same database that creates users, factors and clients through the real services.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pyotp
import requests
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.helpers.rp import (
    CALLBACK,
    DEFAULT_PASSWORD,
    Browser,
    RelyingParty,
    callback_params,
    choose_factor,
    form_action,
    hidden_inputs,
    page_name,
)
from tests.production.services import SECRET_KEY

HTTP_TIMEOUT = 15


@contextmanager
def admin_app(env: dict[str, str]) -> Iterator[Any]:
    """An app on the deployment's database and Redis (same secret key, same namespace)."""
    from idp import create_app
    from idp.extensions import db

    app = create_app({
        "issuer": env["IDP_ISSUER"], "secret_key": SECRET_KEY,
        "database_url": env["IDP_DATABASE_URL"], "redis_url": env.get("IDP_REDIS_URL"),
        "store_namespace": env.get("IDP_STORE_NAMESPACE", "idp"),
        "instance_path": env["IDP_INSTANCE_PATH"],
        "password": {"time_cost": 1, "memory_cost": 8192, "parallelism": 1},
    }, environ={})
    try:
        yield app
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def create_user(app: Any, username: str) -> str:
    from idp.users import create_user as make

    with app.app_context():
        return make(username=username, password=DEFAULT_PASSWORD,
                    email=f"{username}@example.test", name=username.title()).id


def create_client(app: Any, issuer: str, client_id: str = "rp1") -> RelyingParty:
    from idp.oidc.clients import register_client

    with app.app_context():
        registered = register_client(name=f"Client {client_id}", client_id=client_id,
                                     redirect_uris=[CALLBACK], first_party=True)
    return RelyingParty(issuer, client_id, registered.secret)


def browsers(*base_urls: str) -> list[Browser]:
    """One user agent (one cookie jar) talking to several servers, as behind a balancer."""
    session = requests.Session()
    return [Browser(url, session) for url in base_urls]


def on(browser: Browser, response: requests.Response) -> requests.Response:
    """Follow ``response``'s redirects within the IdP on ``browser``'s server."""
    return browser.follow(response)


def start(browser: Browser, rp: RelyingParty, **params: Any) -> tuple[requests.Response,
                                                                       dict[str, str]]:
    """GET /authorize on ``browser``'s server; the first page and the flow's secrets."""
    url, flow_secrets = rp.authorize_url(**params)
    local = browser.base_url + url[len(rp.issuer):]
    return browser.follow(browser.get(local)), flow_secrets


def answer_totp(browser: Browser, page: requests.Response, secret: str,
                at: float | None = None) -> requests.Response:
    if page_name(page.text) == "mfa-picker":
        page = choose_factor(browser, page, "totp")
    assert page_name(page.text) == "mfa-totp", page.text[:500]
    code = pyotp.TOTP(secret).at(at if at is not None else time.time())
    return browser.post(form_action(page.text, "/mfa/verify"),
                        {**hidden_inputs(page.text), "code": code})


def recovery_page(browser: Browser, page: requests.Response) -> requests.Response:
    """From the factor picker (or a challenge), the recovery-code challenge page."""
    if page_name(page.text) != "mfa-recovery_code":
        if page_name(page.text) != "mfa-picker":
            page = browser.get(form_action(page.text, "/mfa/verify").replace(
                "/mfa/verify", "/mfa") + "?choose=1")
        page = choose_factor(browser, page, "recovery_code")
    assert page_name(page.text) == "mfa-recovery_code", page.text[:500]
    return page


def answer_recovery(browser: Browser, page: requests.Response, code: str) -> requests.Response:
    page = recovery_page(browser, page)
    return browser.post(form_action(page.text, "/mfa/verify"),
                        {**hidden_inputs(page.text), "code": code})


def token_request(base_url: str, rp: RelyingParty, data: dict[str, str],
                  timeout: float = HTTP_TIMEOUT) -> requests.Response:
    return requests.post(base_url + "/token", data=data,
                         auth=(rp.client_id, rp.client_secret or ""), timeout=timeout)


def exchange(base_url: str, rp: RelyingParty, code: str, verifier: str) -> dict[str, Any]:
    response = token_request(base_url, rp, {"grant_type": "authorization_code", "code": code,
                                            "redirect_uri": rp.redirect_uri,
                                            "code_verifier": verifier})
    assert response.status_code == 200, response.text
    return response.json()


def refresh(base_url: str, rp: RelyingParty, refresh_token: str) -> requests.Response:
    return token_request(base_url, rp, {"grant_type": "refresh_token",
                                        "refresh_token": refresh_token})


def jwks(base_url: str) -> dict[str, Any]:
    response = requests.get(base_url + "/jwks", timeout=HTTP_TIMEOUT)
    assert response.status_code == 200, response.text
    return response.json()


def verify_id_token(id_token: str, key_set: dict[str, Any], issuer: str,
                    client_id: str) -> tuple[dict[str, Any], str]:
    """Claims and kid of an ID token verified against ``key_set``."""
    decoded = jwt.decode(id_token, KeySet.import_key_set(key_set), algorithms=["RS256"])
    assert decoded.claims["iss"] == issuer
    assert client_id in (decoded.claims["aud"] if isinstance(decoded.claims["aud"], list)
                         else [decoded.claims["aud"]])
    return decoded.claims, str(decoded.header["kid"])


@dataclass
class SignedIn:
    callback_code: str
    secrets: dict[str, str]


def password_sign_in(browser: Browser, rp: RelyingParty, username: str,
                     **params: Any) -> requests.Response:
    """Authorize and sign in with the password on ``browser``'s server; the next answer."""
    page, flow_secrets = start(browser, rp, **params)
    assert page_name(page.text) == "login", f"{page.status_code} {page.text[:300]}"
    answer = browser.follow(browser.submit_login(page, username))
    answer.flow_secrets = flow_secrets  # type: ignore[attr-defined]
    return answer


def code_from(response: requests.Response) -> str:
    return callback_params(response).code
