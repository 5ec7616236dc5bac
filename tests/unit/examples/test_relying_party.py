"""The demo relying party (examples/relying_party), without a running IdP.

Discovery is replaced by explicit provider metadata (the app's ``SERVER_METADATA`` setting) whose
``jwks`` holds a test key. Where a code is redeemed, a small local HTTP server plays the IdP's
token and UserInfo endpoints, so Authlib's real HTTP client and ID token validation run.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from examples.relying_party import create_app

ISSUER = "https://idp.test"
CLIENT_ID = "demo-rp"
CLIENT_SECRET = "s3cret-for-tests"
RP_BASE = "http://localhost:5001"
SUB = "user-123"


class FakeOP:
    """Token and UserInfo endpoints of a pretend IdP, on an ephemeral localhost port."""

    def __init__(self) -> None:
        self.key = ECKey.generate_key("P-256", parameters={"kid": "test-key"}, private=True)
        self.id_token_claims: dict[str, Any] = {}
        self.userinfo: dict[str, Any] = {"sub": SUB, "email": "ada@example.test"}
        self.token_requests: list[dict[str, Any]] = []
        self._server = make_server("127.0.0.1", 0, self._wsgi, threaded=True)
        self.base_url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.01}, daemon=True)

    def __enter__(self) -> FakeOP:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def metadata(self) -> dict[str, Any]:
        return {
            "issuer": ISSUER,
            "authorization_endpoint": f"{ISSUER}/authorize",
            "token_endpoint": f"{self.base_url}/token",
            "userinfo_endpoint": f"{self.base_url}/userinfo",
            "end_session_endpoint": f"{ISSUER}/logout",
            "jwks": KeySet([self.key]).as_dict(private=False),
            "id_token_signing_alg_values_supported": ["ES256"],
            "code_challenge_methods_supported": ["S256"],
            "authorization_response_iss_parameter_supported": True,
        }

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        if request.path == "/token":
            self.token_requests.append(
                {"form": request.form.to_dict(), "authorization": request.authorization})
            id_token = jwt.encode({"alg": "ES256", "kid": "test-key"},
                                  self.id_token_claims, self.key)
            response = Response(
                json.dumps({"access_token": "access-1", "token_type": "Bearer", "expires_in": 900,
                       "scope": "openid profile email", "id_token": id_token}),
                content_type="application/json")
        elif request.path == "/userinfo":
            response = Response(json.dumps(self.userinfo), content_type="application/json")
        else:
            response = Response("not found", status=404)
        return response(environ, start_response)


@pytest.fixture
def op() -> Iterator[FakeOP]:
    with FakeOP() as fake:
        yield fake


@pytest.fixture
def rp_app(op: FakeOP) -> Flask:
    return create_app({
        "TESTING": True,
        "ISSUER": ISSUER,
        "CLIENT_ID": CLIENT_ID,
        "CLIENT_SECRET": CLIENT_SECRET,
        "SECRET_KEY": "test-secret-key",
        "SERVER_METADATA": op.metadata(),
    })


@pytest.fixture
def client(rp_app: Flask) -> FlaskClient:
    return rp_app.test_client()


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def start_login(client: FlaskClient, params: str = "") -> dict[str, str]:
    """GET /login and return the authorization request's parameters."""
    response = client.get(f"/login{params}", base_url=RP_BASE)
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith(f"{ISSUER}/authorize?")
    return query(location)


def valid_claims(nonce: str, /, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"iss": ISSUER, "sub": SUB, "aud": CLIENT_ID, "iat": now, "exp": now + 300,
              "auth_time": now - 30, "nonce": nonce, "acr": "aal2", "amr": ["pwd", "otp"],
              "sid": "session-1"}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def sign_in(client: FlaskClient, op: FakeOP, params: str = "",
            **claim_overrides: Any) -> Any:
    """Run /login then /callback against the fake OP; returns the callback response."""
    request = start_login(client, params)
    op.id_token_claims = valid_claims(request["nonce"], **claim_overrides)
    return client.get(
        f"/callback?code=code-1&state={request['state']}&iss={ISSUER}", base_url=RP_BASE)


# --- app factory and configuration ----------------------------------------------------------

def test_factory_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ISSUER", "CLIENT_ID", "CLIENT_SECRET", "REDIRECT_URI",
                 "POST_LOGOUT_REDIRECT_URI", "SECRET_KEY"):
        monkeypatch.delenv(f"DEMO_RP_{name}", raising=False)
    app = create_app()
    assert app.config["ISSUER"] == "http://localhost:5000"
    assert app.config["CLIENT_ID"] == "demo-rp"
    assert app.config["CLIENT_SECRET"] is None
    assert app.config["REDIRECT_URI"] == "http://localhost:5001/callback"
    assert app.config["POST_LOGOUT_REDIRECT_URI"] == "http://localhost:5001/"
    assert len(app.config["SECRET_KEY"]) >= 32
    assert create_app().config["SECRET_KEY"] != app.config["SECRET_KEY"]


def test_config_dict_wins_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_RP_CLIENT_SECRET", "from-env")
    monkeypatch.setenv("DEMO_RP_ISSUER", "https://env.example")
    app = create_app({"ISSUER": "https://dict.example"})
    assert app.config["CLIENT_SECRET"] == "from-env"
    assert app.config["ISSUER"] == "https://dict.example"


# --- home page ------------------------------------------------------------------------------

def test_home_signed_out_shows_sign_in_form(client: FlaskClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "You are signed out" in html
    assert 'action="/login"' in html
    assert '<option value="aal2">' in html
    assert '<option value="phr aal2">' in html
    assert 'name="max_age"' in html
    assert ">Sign in</button>" in html
    assert "Sign out" not in html
    assert response.headers["Cache-Control"] == "no-store"


# --- /login ---------------------------------------------------------------------------------

def test_login_sends_pkce_nonce_and_requirements(client: FlaskClient) -> None:
    params = start_login(client, "?acr_values=phr+aal2&max_age=600&prompt=login")
    assert params["client_id"] == CLIENT_ID
    assert params["response_type"] == "code"
    assert params["redirect_uri"] == "http://localhost:5001/callback"
    assert params["scope"] == "openid profile email"
    assert params["code_challenge_method"] == "S256"
    assert params["code_challenge"] and params["state"] and params["nonce"]
    assert params["acr_values"] == "phr aal2"
    assert params["max_age"] == "600"
    assert params["prompt"] == "login"


def test_login_omits_empty_requirements(client: FlaskClient) -> None:
    params = start_login(client, "?acr_values=&max_age=")
    assert "acr_values" not in params
    assert "max_age" not in params


def test_login_rejects_malformed_max_age(client: FlaskClient) -> None:
    response = client.get("/login?max_age=soon", base_url=RP_BASE)
    assert response.status_code == 400
    assert "max_age" in response.get_data(as_text=True)


def test_login_moves_to_the_redirect_uri_host(client: FlaskClient) -> None:
    response = client.get("/login?acr_values=aal2", base_url="http://127.0.0.1:5001")
    assert response.status_code == 302
    assert response.headers["Location"] == "http://localhost:5001/login?acr_values=aal2"


# --- /callback: errors ----------------------------------------------------------------------

def test_callback_error_is_shown_with_400(client: FlaskClient) -> None:
    state = start_login(client, "?acr_values=phr")["state"]
    response = client.get(
        f"/callback?error=unmet_authentication_requirements"
        f"&error_description=No+phishing-resistant+factor&state={state}&iss={ISSUER}",
        base_url=RP_BASE)
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "Sign-in failed" in html
    assert "unmet_authentication_requirements" in html
    assert "No phishing-resistant factor" in html
    # The failed request's state is spent.
    again = client.get(f"/callback?code=x&state={state}&iss={ISSUER}", base_url=RP_BASE)
    assert again.status_code == 400
    assert "Unknown sign-in attempt" in again.get_data(as_text=True)


def test_callback_error_is_escaped(client: FlaskClient) -> None:
    response = client.get(
        f"/callback?error=access_denied&error_description=%3Cscript%3Ex%3C/script%3E"
        f"&state=whatever&iss={ISSUER}", base_url=RP_BASE)
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "<script>" not in html
    assert "&lt;script&gt;" in html


def test_callback_rejects_mismatched_iss(client: FlaskClient, op: FakeOP) -> None:
    state = start_login(client)["state"]
    response = client.get(
        f"/callback?code=code-1&state={state}&iss=https://evil.test", base_url=RP_BASE)
    assert response.status_code == 400
    assert "unexpected issuer" in response.get_data(as_text=True)
    assert op.token_requests == []  # the code was not redeemed


def test_callback_rejects_missing_iss_when_advertised(client: FlaskClient, op: FakeOP) -> None:
    state = start_login(client)["state"]
    response = client.get(f"/callback?code=code-1&state={state}", base_url=RP_BASE)
    assert response.status_code == 400
    assert "RFC 9207" in response.get_data(as_text=True)
    assert op.token_requests == []


def test_callback_rejects_unknown_state(client: FlaskClient, op: FakeOP) -> None:
    start_login(client)
    response = client.get(f"/callback?code=code-1&state=forged&iss={ISSUER}",
                          base_url=RP_BASE)
    assert response.status_code == 400
    assert op.token_requests == []


# --- /callback: the code flow ---------------------------------------------------------------

def test_sign_in_validates_and_shows_claims(client: FlaskClient, op: FakeOP) -> None:
    login = start_login(client, "?acr_values=aal2&max_age=300")
    op.id_token_claims = valid_claims(login["nonce"])
    response = client.get(f"/callback?code=code-1&state={login['state']}&iss={ISSUER}",
                          base_url=RP_BASE)
    assert response.status_code == 302
    assert response.headers["Location"] == "/"

    (token_request,) = op.token_requests
    form = token_request["form"]
    assert form["grant_type"] == "authorization_code"
    assert form["code"] == "code-1"
    assert form["redirect_uri"] == "http://localhost:5001/callback"
    challenge = base64.urlsafe_b64encode(
        hashlib.sha256(form["code_verifier"].encode()).digest()).rstrip(b"=").decode()
    assert challenge == login["code_challenge"]
    assert "client_secret" not in form
    assert token_request["authorization"].type == "basic"
    assert token_request["authorization"].username == CLIENT_ID
    assert token_request["authorization"].password == CLIENT_SECRET

    html = client.get("/", base_url=RP_BASE).get_data(as_text=True)
    assert "You are signed in" in html
    assert SUB in html and "session-1" in html and "pwd otp" in html
    assert "the acr returned is one of those requested" in html
    assert "+00:00" in html  # auth_time and exp as ISO 8601
    assert "ada@example.test" in html  # UserInfo
    assert "access-1" not in html  # tokens stay on the server
    assert ">Sign out</button>" in html


@pytest.mark.parametrize(("overrides", "claim"), [
    ({"aud": "another-client"}, "aud"),
    ({"iss": "https://evil.test"}, "iss"),
    ({"nonce": "replayed"}, "nonce"),
    ({"exp": int(time.time()) - 3600}, "exp"),
])
def test_sign_in_rejects_invalid_id_token(client: FlaskClient, op: FakeOP,
                                          overrides: dict[str, Any], claim: str) -> None:
    response = sign_in(client, op, **overrides)
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "ID token rejected" in html and claim in html
    assert "You are signed out" in client.get("/", base_url=RP_BASE).get_data(as_text=True)


def test_sign_in_rejects_foreign_signature(client: FlaskClient, op: FakeOP) -> None:
    op.key = ECKey.generate_key("P-256", parameters={"kid": "test-key"}, private=True)
    response = sign_in(client, op)
    assert response.status_code == 400
    assert "ID token rejected" in response.get_data(as_text=True)


def test_sign_in_enforces_max_age(client: FlaskClient, op: FakeOP) -> None:
    stale = int(time.time()) - 3600
    assert sign_in(client, op, "?max_age=60", auth_time=stale).status_code == 400
    assert sign_in(client, op, "?max_age=60", auth_time=None).status_code == 400
    assert sign_in(client, op, "?max_age=7200", auth_time=stale).status_code == 302


def test_userinfo_with_other_sub_is_discarded(client: FlaskClient, op: FakeOP) -> None:
    op.userinfo = {"sub": "someone-else", "email": "mallory@example.test"}
    assert sign_in(client, op).status_code == 302
    html = client.get("/", base_url=RP_BASE).get_data(as_text=True)
    assert "You are signed in" in html
    assert "mallory@example.test" not in html
    assert "sub differs" in html


# --- logout ---------------------------------------------------------------------------------

def test_logout_redirects_to_end_session_and_back(client: FlaskClient, op: FakeOP) -> None:
    assert sign_in(client, op).status_code == 302
    response = client.post("/logout", base_url=RP_BASE)
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith(f"{ISSUER}/logout?")
    params = query(location)
    assert params["post_logout_redirect_uri"] == "http://localhost:5001/"
    assert params["client_id"] == CLIENT_ID
    assert params["id_token_hint"].count(".") == 2
    assert params["state"]

    html = client.get(f"/?state={params['state']}", base_url=RP_BASE).get_data(as_text=True)
    assert "You are signed out, here and at the IdP." in html
    assert "You are signed out" in html

    replay = client.get(f"/?state={params['state']}", base_url=RP_BASE)
    assert "Ignored a logout response" in replay.get_data(as_text=True)


def test_logged_out_page_checks_the_logout_state(client: FlaskClient) -> None:
    response = client.get("/logged-out?state=not-issued", base_url=RP_BASE)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Ignored a logout response" in html
    assert "You are signed out" in html


def test_logout_requires_post(client: FlaskClient) -> None:
    assert client.get("/logout").status_code == 405
