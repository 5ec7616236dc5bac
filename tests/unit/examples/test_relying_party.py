"""The demo relying party (examples/relying_party), without a running IdP.

Discovery is replaced by explicit provider metadata (the app's ``SERVER_METADATA`` setting) whose
``jwks`` holds a test key. Where a code is redeemed, a small local HTTP server plays the IdP's
token and UserInfo endpoints, so Authlib's real HTTP client and ID token validation run. The
transfer tests call the real demo resource server (examples/resource_server) over HTTP, set up
to trust that test key; its access tokens carry the ID token's acr and auth_time, as the IdP's do.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask, session
from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from examples import resource_server
from examples.relying_party import create_app, transfers
from examples.relying_party.transfers import Challenge, Transfer, parse_www_authenticate

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
        #: Changes to the next access token's claims (e.g. an expired ``exp``).
        self.access_token_overrides: dict[str, Any] = {}
        self.access_tokens: list[str] = []
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
            self.access_tokens.append(self._access_token())
            response = Response(
                json.dumps({"access_token": self.access_tokens[-1], "token_type": "Bearer",
                            "expires_in": 900, "scope": "openid profile email",
                            "id_token": id_token}),
                content_type="application/json")
        elif request.path == "/userinfo":
            response = Response(json.dumps(self.userinfo), content_type="application/json")
        else:
            response = Response("not found", status=404)
        return response(environ, start_response)


    def _access_token(self) -> str:
        """An RFC 9068 access token with the ID token's authentication claims."""
        now = int(time.time())
        id_claims = self.id_token_claims
        claims = {"iss": ISSUER, "sub": id_claims.get("sub"), "aud": CLIENT_ID,
                  "client_id": CLIENT_ID, "iat": now, "exp": now + 900,
                  "jti": secrets.token_hex(8), "scope": "openid profile email",
                  "acr": id_claims.get("acr"), "amr": id_claims.get("amr"),
                  "auth_time": id_claims.get("auth_time"), **self.access_token_overrides}
        return jwt.encode({"alg": "ES256", "kid": "test-key", "typ": "at+jwt"},
                          {k: v for k, v in claims.items() if v is not None}, self.key)


class ServedApp:
    """A WSGI app on an ephemeral localhost port, noting (path, status) of every request."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.calls: list[tuple[str, int]] = []
        self._server = make_server("127.0.0.1", 0, self._wsgi, threaded=True)
        self.base_url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.01}, daemon=True)

    def __enter__(self) -> ServedApp:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        def noting_start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
            self.calls.append((environ["PATH_INFO"], int(status.split()[0])))
            return start_response(status, headers, exc_info)

        return self.app(environ, noting_start_response)


@pytest.fixture
def op() -> Iterator[FakeOP]:
    with FakeOP() as fake:
        yield fake


@pytest.fixture
def rs(op: FakeOP) -> Iterator[ServedApp]:
    """The demo resource server, trusting the fake OP's key."""
    api = resource_server.create_app(
        {"ISSUER": ISSUER, "AUDIENCE": CLIENT_ID, "JWKS": KeySet([op.key]).as_dict(private=False)},
        environ={})
    with ServedApp(api) as served:
        yield served


@pytest.fixture
def rp_app(op: FakeOP, rs: ServedApp) -> Flask:
    return create_app({
        "TESTING": True,
        "ISSUER": ISSUER,
        "CLIENT_ID": CLIENT_ID,
        "CLIENT_SECRET": CLIENT_SECRET,
        "SECRET_KEY": "test-secret-key",
        "SERVER_METADATA": op.metadata(),
        "RESOURCE_URL": rs.base_url,
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
                 "POST_LOGOUT_REDIRECT_URI", "SECRET_KEY", "RESOURCE_URL"):
        monkeypatch.delenv(f"DEMO_RP_{name}", raising=False)
    app = create_app()
    assert app.config["ISSUER"] == "http://localhost:5000"
    assert app.config["CLIENT_ID"] == "demo-rp"
    assert app.config["CLIENT_SECRET"] is None
    assert app.config["REDIRECT_URI"] == "http://localhost:5001/callback"
    assert app.config["POST_LOGOUT_REDIRECT_URI"] == "http://localhost:5001/"
    assert app.config["RESOURCE_URL"] == "http://localhost:5002"
    assert len(app.config["SECRET_KEY"]) >= 32
    assert create_app().config["SECRET_KEY"] != app.config["SECRET_KEY"]


def test_config_dict_wins_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_RP_CLIENT_SECRET", "from-env")
    monkeypatch.setenv("DEMO_RP_ISSUER", "https://env.example")
    monkeypatch.setenv("DEMO_RP_RESOURCE_URL", "https://api.example/")
    app = create_app({"ISSUER": "https://dict.example"})
    assert app.config["CLIENT_SECRET"] == "from-env"
    assert app.config["ISSUER"] == "https://dict.example"
    assert app.config["RESOURCE_URL"] == "https://api.example"


@pytest.mark.parametrize(("redirect_uri", "name", "secure"), [
    ("https://rp.example/callback", "__Host-demo_rp_session", True),
    ("http://localhost:5001/callback", "demo_rp_session", False),
])
def test_session_cookie_is_host_prefixed_over_https(redirect_uri: str, name: str,
                                                   secure: bool) -> None:
    """RFC 6265bis §4.1.3.2: __Host- only with Secure, Path=/ and no Domain."""
    app = create_app({"REDIRECT_URI": redirect_uri, "SECRET_KEY": "k" * 32})

    def touch_session() -> str:
        session["seen"] = True
        return "ok"

    app.add_url_rule("/set", "set", touch_session)
    response = app.test_client().get("/set", base_url=redirect_uri.rsplit("/", 1)[0])
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(f"{name}=")
    assert ("Secure" in cookie) is secure
    assert "Path=/" in cookie and "Domain" not in cookie


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
    assert op.access_tokens[-1] not in html  # tokens stay on the server
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


# --- "Make a transfer": the RFC 9470 step-up round trip ---------------------------------------

def csrf_token(client: FlaskClient) -> str:
    html = client.get("/", base_url=RP_BASE).get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no transfer form on the home page"
    return match.group(1)


def post_transfer(client: FlaskClient, amount: str = "12.50", to: str = "Bob",
                  token: str | None = None) -> Any:
    return client.post("/transfer", base_url=RP_BASE, data={
        "amount": amount, "to": to,
        "csrf_token": csrf_token(client) if token is None else token})


def follow_step_up(client: FlaskClient, op: FakeOP, response: Any,
                   **claim_overrides: Any) -> tuple[Any, dict[str, str], dict[str, str]]:
    """From the RP's redirect to /login through the IdP (played by ``op``) to the callback:
    (callback response, the /login query, the authorization request's parameters)."""
    assert response.status_code == 303
    login_url = response.headers["Location"]
    assert login_url.startswith("/login?")
    login = client.get(login_url, base_url=RP_BASE)
    assert login.status_code == 302
    authorize = query(login.headers["Location"])
    op.id_token_claims = valid_claims(authorize["nonce"], **claim_overrides)
    callback = client.get(f"/callback?code=code-2&state={authorize['state']}&iss={ISSUER}",
                          base_url=RP_BASE)
    return callback, query(login_url), authorize


def transfers_made(rs: ServedApp) -> list[int]:
    return [status for path, status in rs.calls if path == "/transfers"]


def test_signed_in_home_has_the_transfer_form(client: FlaskClient, op: FakeOP,
                                              rs: ServedApp) -> None:
    assert sign_in(client, op).status_code == 302
    html = client.get("/", base_url=RP_BASE).get_data(as_text=True)
    assert '<form method="post" action="/transfer"' in html
    assert re.search(r'<input type="hidden" name="csrf_token" value="[^"]{40,}">', html)
    assert 'name="amount"' in html and 'name="to"' in html
    assert ">Make a transfer</button>" in html
    assert f"POST {rs.base_url}/transfers" in html


def test_signed_out_home_has_no_transfer_form(client: FlaskClient) -> None:
    assert 'action="/transfer"' not in client.get("/").get_data(as_text=True)


def test_a_sufficient_sign_in_transfers_at_once(client: FlaskClient, op: FakeOP,
                                                rs: ServedApp) -> None:
    assert sign_in(client, op, acr="aal2").status_code == 302
    response = post_transfer(client, "12.50", "  Bob   Smith ")
    assert response.status_code == 303
    assert response.headers["Location"] == "/"
    html = client.get("/", base_url=RP_BASE).get_data(as_text=True)
    assert "Transfer done" in html
    assert '<code data-receipt="amount">12.50</code>' in html
    assert '<code data-receipt="to">Bob Smith</code>' in html
    assert f'<code data-receipt="by">{SUB}</code>' in html
    assert '<code data-receipt="acr">aal2</code>' in html
    assert "after you stepped up" not in html
    assert transfers_made(rs) == [200]
    # The receipt is shown once.
    assert "Transfer done" not in client.get("/", base_url=RP_BASE).get_data(as_text=True)


def test_an_aal1_sign_in_steps_up_and_the_transfer_resumes(client: FlaskClient, op: FakeOP,
                                                           rs: ServedApp) -> None:
    assert sign_in(client, op, acr="aal1", amr=["pwd"]).status_code == 302
    response = post_transfer(client, "40", "Carol")
    assert transfers_made(rs) == [401]

    callback, login, authorize = follow_step_up(client, op, response, acr="aal2",
                                                amr=["pwd", "otp"], auth_time=int(time.time()))
    assert login["acr_values"] == "aal2" and login["max_age"] == "300" and login["resume"]
    assert authorize["acr_values"] == "aal2" and authorize["max_age"] == "300"
    assert "resume" not in authorize  # stays at the RP
    assert callback.status_code == 302 and callback.headers["Location"] == "/"
    assert transfers_made(rs) == [401, 200]

    html = client.get("/", base_url=RP_BASE).get_data(as_text=True)
    assert "Transfer done" in html and "after you stepped up at the IdP" in html
    assert '<code data-receipt="amount">40.00</code>' in html
    assert '<code data-receipt="acr">aal2</code>' in html
    assert '<code data-id-token="acr">acr=aal2</code>' in html
    assert '<code data-id-token="amr">amr=pwd otp</code>' in html
    assert "acr_values=aal2" in html and "max_age=300" in html  # the new sign-in's request


def test_a_stale_sign_in_steps_up_with_max_age(client: FlaskClient, op: FakeOP,
                                               rs: ServedApp) -> None:
    assert sign_in(client, op, acr="phr", auth_time=int(time.time()) - 3600).status_code == 302
    _, login, _ = follow_step_up(client, op, post_transfer(client),
                                 acr="phr", auth_time=int(time.time()))
    assert login["max_age"] == "300"
    assert transfers_made(rs) == [401, 200]


def test_a_stronger_preference_is_kept_for_the_step_up(client: FlaskClient, op: FakeOP,
                                                       rs: ServedApp) -> None:
    assert sign_in(client, op, "?acr_values=phr+aal2", acr="aal1").status_code == 302
    _, login, authorize = follow_step_up(client, op, post_transfer(client), acr="phr")
    assert login["acr_values"] == authorize["acr_values"] == "phr aal2"
    assert transfers_made(rs) == [401, 200]
    html = client.get("/", base_url=RP_BASE).get_data(as_text=True)
    assert '<code data-id-token="acr">acr=phr</code>' in html


def test_a_second_refusal_is_reported_without_another_round_trip(
        client: FlaskClient, op: FakeOP, rs: ServedApp) -> None:
    assert sign_in(client, op, acr="aal1").status_code == 302
    callback, _, _ = follow_step_up(client, op, post_transfer(client), acr="aal1")
    assert callback.status_code == 302 and callback.headers["Location"] == "/"
    assert transfers_made(rs) == [401, 401]
    html = client.get("/", base_url=RP_BASE).get_data(as_text=True)
    assert "The transfer was not made: even after signing in again" in html
    assert "insufficient_user_authentication" in html
    assert "Transfer done" not in html


def test_an_expired_access_token_signs_in_again(client: FlaskClient, op: FakeOP,
                                                rs: ServedApp) -> None:
    op.access_token_overrides = {"exp": int(time.time()) - 3600}
    assert sign_in(client, op, "?acr_values=aal2", acr="aal2").status_code == 302
    op.access_token_overrides = {}
    _, login, _ = follow_step_up(client, op, post_transfer(client), acr="aal2")
    assert login["acr_values"] == "aal2"  # the user's own preference; no challenge values
    assert "max_age" not in login
    assert transfers_made(rs) == [401, 200]


def test_another_sign_in_does_not_resume_a_pending_transfer(client: FlaskClient, op: FakeOP,
                                                            rs: ServedApp) -> None:
    assert sign_in(client, op, acr="aal1").status_code == 302
    assert post_transfer(client).status_code == 303
    # The user ignores the step-up and signs in from the home page instead.
    assert sign_in(client, op, "?acr_values=aal2", acr="aal2").status_code == 302
    assert transfers_made(rs) == [401]
    assert "Transfer done" not in client.get("/", base_url=RP_BASE).get_data(as_text=True)


def test_an_expired_pending_transfer_is_not_made(client: FlaskClient, op: FakeOP,
                                                 rs: ServedApp,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    assert sign_in(client, op, acr="aal1").status_code == 302
    response = post_transfer(client)
    monkeypatch.setattr(transfers, "PENDING_TTL", -1)
    follow_step_up(client, op, response, acr="aal2")
    assert transfers_made(rs) == [401]
    html = client.get("/", base_url=RP_BASE).get_data(as_text=True)
    assert "has expired; it was not made" in html


def test_a_refused_step_up_drops_the_pending_transfer(client: FlaskClient, op: FakeOP,
                                                      rs: ServedApp) -> None:
    assert sign_in(client, op, acr="aal1").status_code == 302
    login_url = post_transfer(client).headers["Location"]
    state = query(client.get(login_url, base_url=RP_BASE).headers["Location"])["state"]
    refused = client.get(f"/callback?error=access_denied&state={state}&iss={ISSUER}",
                         base_url=RP_BASE)
    assert refused.status_code == 400
    with client.session_transaction(base_url=RP_BASE) as session:
        assert "pending_transfer" not in session
    assert transfers_made(rs) == [401]


@pytest.mark.parametrize("token", ["", "forged", "ü"])
def test_transfer_needs_the_csrf_token(client: FlaskClient, op: FakeOP, rs: ServedApp,
                                       token: str) -> None:
    assert sign_in(client, op).status_code == 302
    csrf_token(client)  # the session has one
    response = post_transfer(client, token=token)
    assert response.status_code == 400
    assert "CSRF" in response.get_data(as_text=True)
    assert transfers_made(rs) == []


def test_transfer_needs_a_live_sign_in(client: FlaskClient, op: FakeOP, rs: ServedApp,
                                      rp_app: Flask) -> None:
    assert sign_in(client, op).status_code == 302
    token = csrf_token(client)
    with client.session_transaction(base_url=RP_BASE) as session:
        rp_app.extensions["demo_relying_party"].store.pop(session["sign_in"])  # it expired
    response = post_transfer(client, token=token)
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert "Sign in first" in client.get("/", base_url=RP_BASE).get_data(as_text=True)
    assert transfers_made(rs) == []


def test_a_signed_out_transfer_is_refused(client: FlaskClient, rs: ServedApp) -> None:
    response = post_transfer(client, token="")
    assert response.status_code == 400
    assert transfers_made(rs) == []


@pytest.mark.parametrize(("amount", "to"), [
    ("", "Bob"), ("abc", "Bob"), ("0", "Bob"), ("0.00", "Bob"), ("-5", "Bob"), ("1.234", "Bob"),
    ("1e3", "Bob"), ("1" * 10, "Bob"), ("12", ""), ("12", "   "), ("12", "x" * 65),
    ("12", "Bob\x00"),
])
def test_malformed_transfer_forms_get_400(client: FlaskClient, op: FakeOP, rs: ServedApp,
                                          amount: str, to: str) -> None:
    assert sign_in(client, op).status_code == 302
    response = post_transfer(client, amount, to)
    assert response.status_code == 400
    assert "Invalid transfer" in response.get_data(as_text=True)
    assert transfers_made(rs) == []


def test_the_resource_servers_refusal_is_shown(client: FlaskClient, op: FakeOP,
                                               rs: ServedApp) -> None:
    assert sign_in(client, op, acr="aal2").status_code == 302
    response = post_transfer(client, "20000", "Bob")
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "Transfer failed" in html and "at most 10000" in html
    assert transfers_made(rs) == [400]


def test_an_unreachable_resource_server_gives_502(op: FakeOP) -> None:
    with ServedApp(Flask("closed")) as closed:
        url = closed.base_url
    app = create_app({"TESTING": True, "ISSUER": ISSUER, "CLIENT_ID": CLIENT_ID,
                      "CLIENT_SECRET": CLIENT_SECRET, "SECRET_KEY": "k" * 32,
                      "SERVER_METADATA": op.metadata(), "RESOURCE_URL": url})
    client = app.test_client()
    assert sign_in(client, op).status_code == 302
    response = post_transfer(client)
    assert response.status_code == 502
    assert "unreachable" in response.get_data(as_text=True)


def test_login_rejects_a_malformed_resume(client: FlaskClient) -> None:
    response = client.get("/login?resume=%3Cx%3E", base_url=RP_BASE)
    assert response.status_code == 400
    assert "resume" in response.get_data(as_text=True)


# --- transfers.py: challenge parsing, step-up parameters, the transfer form --------------------

def test_parse_www_authenticate_reads_several_challenges() -> None:
    header = ('Newauth realm="apps", type=1, title="Login to \\"apps\\"", '
              'Basic realm="simple", Negotiate abc+/=, '
              'BEARER Realm="api", ERROR="insufficient_user_authentication", '
              'error_description="A stronger, more recent sign-in", acr_values="phr  aal2", '
              'max_age=300')
    assert parse_www_authenticate(header) == [
        ("newauth", {"realm": "apps", "type": "1", "title": 'Login to "apps"'}),
        ("basic", {"realm": "simple"}),
        ("negotiate", {}),
        ("bearer", {"realm": "api", "error": "insufficient_user_authentication",
                    "error_description": "A stronger, more recent sign-in",
                    "acr_values": "phr  aal2", "max_age": "300"}),
    ]


@pytest.mark.parametrize("header", ["", ",,,", "=oops", '"quoted"', "Bearer ,", "Bearer realm"])
def test_parse_www_authenticate_survives_junk(header: str) -> None:
    parse_www_authenticate(header)  # no exception, no endless loop


def test_challenge_from_the_idp_helper() -> None:
    challenge = Challenge.from_header(
        'Bearer realm="api", error="insufficient_user_authentication", '
        'error_description="A stronger or more recent authentication is required '
        '(aal2 within 300 s)", acr_values="aal2", max_age=300')
    assert challenge == Challenge("insufficient_user_authentication",
                                  "A stronger or more recent authentication is required "
                                  "(aal2 within 300 s)", "aal2", 300)


@pytest.mark.parametrize(("header", "expected"), [
    ('Bearer realm="api"', Challenge(None)),
    ('Bearer error="invalid_token", max_age="soon"', Challenge("invalid_token")),
    ('Bearer error="x", max_age="120"', Challenge("x", max_age=120)),
    ('DPoP algs="ES256", Bearer error="x", acr_values=" phr "',
     Challenge("x", acr_values="phr")),
    ('Basic realm="x"', None),
    ("", None),
])
def test_challenge_from_header(header: str, expected: Challenge | None) -> None:
    assert Challenge.from_header(header) == expected


@pytest.mark.parametrize(("acr_values", "max_age", "preferred", "expected"), [
    ("aal2", 300, "", {"acr_values": "aal2", "max_age": "300"}),
    ("aal2", 300, "aal2", {"acr_values": "aal2", "max_age": "300"}),
    ("aal2", 300, "phr aal2", {"acr_values": "phr aal2", "max_age": "300"}),
    ("aal2", None, "phrh phr aal1", {"acr_values": "phrh phr aal2"}),
    ("phr", 60, "aal2", {"acr_values": "phr", "max_age": "60"}),
    ("phr", None, "phr aal2", {"acr_values": "phr"}),
    ("urn:example:gold", None, "phr", {"acr_values": "urn:example:gold"}),
    ("aal2", None, "urn:example:gold phr", {"acr_values": "phr aal2"}),
    (None, None, "phr aal2", {"acr_values": "phr aal2"}),
    (None, 300, "", {"max_age": "300"}),
])
def test_step_up_parameters(acr_values: str | None, max_age: int | None, preferred: str,
                            expected: dict[str, str]) -> None:
    challenge = Challenge("insufficient_user_authentication", None, acr_values, max_age)
    assert challenge.authorize_params(preferred) == expected


def test_transfer_form_and_body() -> None:
    assert Transfer.from_form({"amount": " 12.50 ", "to": " Ada \t Lovelace "}) == Transfer(
        Decimal("12.50"), "Ada Lovelace")
    assert Transfer(Decimal("12.50"), "x").body() == {"amount": 12.5, "to": "x"}
    assert Transfer(Decimal("7.00"), "x").body() == {"amount": 7, "to": "x"}


def test_pending_transfer_round_trip() -> None:
    transfer = Transfer(Decimal("3.25"), "Bob")
    record = transfer.to_pending()
    assert Transfer.from_pending(record, record["id"]) == transfer
    assert Transfer.from_pending(record, "other-id") is None
    assert Transfer.from_pending(record, None) is None
    assert Transfer.from_pending(record, record["id"],
                                 now=record["at"] + transfers.PENDING_TTL + 1) is None
    assert Transfer.from_pending({**record, "amount": "nonsense"}, record["id"]) is None
    assert Transfer.from_pending("not a dict", record["id"]) is None
