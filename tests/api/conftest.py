"""Fixtures for the JSON API tests: an ``ApiActions`` helper (the Flask tutorial's
``AuthActions``, for bearer tokens) over the app's test client.

Admin tokens come from the real ``/token`` (client_credentials). User tokens are minted the
way ``/token`` mints them — the authorization server's token generator, the ladder's
evaluation of the proofs, ``persist_token`` — without driving a browser, so each test states
exactly which proofs the token carries and when; ``tests/api/test_api_step_up.py`` covers the
real sign-in flow end to end.
"""

from __future__ import annotations

import base64
import time
from typing import Any

import pyotp
import pytest
from sqlalchemy import select

from idp.assurance import AuthEvent
from idp.extensions import db
from idp.factors.password import password_event
from idp.models import Credential, User
from idp.oidc.clients import load_client, register_client
from idp.oidc.principal import AuthContext, Principal
from idp.oidc.tokens import persist_token
from idp.users import create_user

PASSWORD = "correct horse battery staple"
APP_CLIENT = "app"
ADMIN_CLIENT = "ops"


class ApiActions:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.http = app.test_client()
        self.secrets: dict[str, str] = {}

    # -- setup ------------------------------------------------------------------------------

    def user(self, username: str = "alice", **kw: Any) -> str:
        with self.app.app_context():
            kw.setdefault("email", f"{username}@example.test")
            return create_user(username=username, password=PASSWORD, **kw).id

    def client(self, client_id: str = APP_CLIENT, scope: str = "openid profile email mfa",
               grant_types: list[str] | None = None, **kw: Any) -> str:
        with self.app.app_context():
            registered = register_client(
                name=f"Client {client_id}", client_id=client_id, scope=scope,
                redirect_uris=["https://rp.example.test/callback"],
                grant_types=grant_types or ["authorization_code", "refresh_token"],
                first_party=True, **kw)
            self.secrets[client_id] = registered.secret or ""
            return client_id

    def admin_client(self, client_id: str = ADMIN_CLIENT, scope: str = "idp:admin") -> str:
        return self.client(client_id, scope=scope, grant_types=["client_credentials"])

    def user_id(self, username: str) -> str:
        with self.app.app_context():
            return db.session.scalar(select(User.id).where(User.username == username))

    # -- tokens -----------------------------------------------------------------------------

    def basic(self, client_id: str) -> dict[str, str]:
        raw = f"{client_id}:{self.secrets[client_id]}".encode()
        return {"Authorization": "Basic " + base64.b64encode(raw).decode()}

    def admin_token(self, client_id: str = ADMIN_CLIENT, scope: str = "idp:admin") -> str:
        response = self.http.post("/token", data={"grant_type": "client_credentials",
                                                  "scope": scope},
                                  headers=self.basic(client_id))
        assert response.status_code == 200, response.get_json()
        return response.get_json()["access_token"]

    def user_token(self, username: str = "alice", *, client_id: str = APP_CLIENT,
                   scope: str = "openid mfa", methods: tuple[str, ...] = ("password",),
                   at: int | None = None) -> dict[str, Any]:
        """A token set as ``/token`` would issue it after ``username`` proved ``methods``
        (``password``, or the method of an enrolled factor) at ``at``."""
        now = int(time.time())
        at = now if at is None else at
        with self.app.test_request_context():
            user = db.session.scalar(select(User).where(User.username == username))
            events = [password_event(user.id, at)]
            for method in methods:
                if method != "password":
                    credential = db.session.scalar(select(Credential).where(
                        Credential.user_id == user.id, Credential.method == method))
                    events.append(AuthEvent(method, credential.id, _AMR[method], at,
                                            _PROPERTIES.get(method, {})))
            ladder = self.app.extensions["idp.ladder"]
            result = ladder.evaluate(events, now)
            principal = Principal(user, AuthContext(result.acr, result.amr, result.auth_time,
                                                    "test-sid", dict(result.expires)))
            server = self.app.extensions["idp.oauth_server"]
            token = server.generate_token("authorization_code", load_client(client_id),
                                          user=principal, scope=scope,
                                          include_refresh_token=True)
            persist_token(token, client_id=client_id, principal=principal, refresh_ttl=86400)
            db.session.commit()
            return dict(token)

    # -- calls ------------------------------------------------------------------------------

    @staticmethod
    def bearer(token: str | dict[str, Any]) -> dict[str, str]:
        value = token["access_token"] if isinstance(token, dict) else token
        return {"Authorization": f"Bearer {value}"}

    def get(self, path: str, token: Any, **kw: Any) -> Any:
        return self.http.get("/api/v1" + path, headers=self.bearer(token), **kw)

    def post(self, path: str, token: Any, json: Any = None, **kw: Any) -> Any:
        if json is not None:
            kw["json"] = json
        return self.http.post("/api/v1" + path, headers=self.bearer(token), **kw)

    def patch(self, path: str, token: Any, json: Any = None) -> Any:
        return self.http.patch("/api/v1" + path, headers=self.bearer(token), json=json)

    def delete(self, path: str, token: Any) -> Any:
        return self.http.delete("/api/v1" + path, headers=self.bearer(token))

    def audit(self, event_type: str) -> list[Any]:
        from idp.models import AuditEvent

        with self.app.app_context():
            return list(db.session.scalars(select(AuditEvent).where(
                AuditEvent.type == event_type).order_by(AuditEvent.id)))


_AMR = {"totp": ("otp",), "sms": ("sms",), "email": ("email",), "recovery_code": ("lookup",),
        "passkey": ("pop", "user", "swk")}
_PROPERTIES = {"passkey": {"user_verified": True, "phishing_resistant": True}}


def totp_now(secret: str, offset: int = 0) -> str:
    return pyotp.TOTP(secret).at(time.time() + offset)


@pytest.fixture
def api(app: Any) -> ApiActions:
    actions = ApiActions(app)
    actions.client()
    actions.admin_client()
    return actions
