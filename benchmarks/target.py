"""The server under test as the driver sees it (endpoints from discovery, the client, users,
the TOTP pool) and the OIDC building blocks every scenario composes: authorize, sign in,
exchange a code with PKCE, verify an ID token against the JWKS, refresh, userinfo."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus, urlencode

import aiohttp
from joserfc import jwt
from joserfc.jwk import KeySet

from benchmarks.browser import Browser, Reply, find_form, query_params
from benchmarks.stats import FlowError, Recorder, RunOver

TOTP_INTERVAL = 30
SCOPE = "openid profile email"


@dataclass
class TotpUser:
    username: str
    secret: str
    last_step: int


class TotpPool:
    """Users with TOTP, handed out so that no code is offered twice to the same credential
    (the server accepts each time step once: RFC 6238 §5.2 replay guard). A user can answer
    with the code of the current or the next step, then waits for the clock."""

    def __init__(self, users: list[dict[str, Any]]) -> None:
        self.users = deque(TotpUser(u["username"], u["secret"], int(u["last_step"]))
                           for u in users)

    def __len__(self) -> int:
        return len(self.users)

    async def acquire(self, recorder: Recorder) -> tuple[TotpUser, int]:
        """A user and the time step reserved for their next code; waits while every user has
        answered for the current and next step, and raises RunOver once the run is over."""
        while True:
            now_step = int(time.time()) // TOTP_INTERVAL
            for _ in range(len(self.users)):
                user = self.users.popleft()
                self.users.append(user)
                step = max(user.last_step + 1, now_step)
                if step <= now_step + 1:
                    user.last_step = step
                    return user, step
            recorder.count("totp_pool_waits")
            if time.perf_counter() >= recorder.window_end:
                raise RunOver
            await asyncio.sleep(0.25)

    def state(self) -> list[dict[str, Any]]:
        return [{"username": u.username, "secret": u.secret, "last_step": u.last_step}
                for u in self.users]


def totp_code(secret: str, step: int) -> str:
    """The RFC 6238 code for ``step`` (SHA-1, 6 digits), as an authenticator app shows it."""
    import pyotp

    return str(pyotp.TOTP(secret).at(step * TOTP_INTERVAL))


@dataclass
class Target:
    """One server under test."""

    kind: str                       # "stepup-idp" or "oidc-provider"
    base_url: str
    issuer: str
    client_id: str
    client_secret: str
    redirect_uri: str
    password: str
    users: list[str]
    metadata: dict[str, Any] = field(default_factory=dict)
    keys: KeySet | None = None
    totp: TotpPool | None = None
    resource_server: dict[str, str] | None = None
    pid: int | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any], pid: int | None = None) -> Target:
        return cls(
            kind=manifest.get("kind", "stepup-idp"),
            base_url=manifest.get("base_url", manifest["issuer"]),
            issuer=manifest["issuer"], client_id=manifest["client"]["client_id"],
            client_secret=manifest["client"]["client_secret"],
            redirect_uri=manifest["redirect_uri"], password=manifest["password"],
            users=list(manifest["users"]),
            totp=TotpPool(manifest["totp_users"]) if manifest.get("totp_users") else None,
            resource_server=manifest.get("resource_server"), pid=pid,
            info={k: manifest[k] for k in ("backend", "workers", "threads", "password_params",
                                           "database") if k in manifest})

    @classmethod
    def load(cls, path: Path, pid: int | None = None) -> Target:
        return cls.from_manifest(json.loads(path.read_text("utf-8")), pid)

    async def discover(self, session: aiohttp.ClientSession) -> None:
        """Endpoints from discovery, keys from the JWKS (once; not part of any sample)."""
        url = self.base_url + "/.well-known/openid-configuration"
        async with session.get(url) as response:
            response.raise_for_status()
            self.metadata = json.loads(await response.text())
        await self.refresh_keys(session)

    async def refresh_keys(self, session: aiohttp.ClientSession) -> None:
        async with session.get(self.metadata["jwks_uri"]) as response:
            response.raise_for_status()
            self.keys = KeySet.import_key_set(json.loads(await response.text()))

    def endpoint(self, name: str) -> str:
        return str(self.metadata[f"{name}_endpoint"])

    @property
    def basic_auth(self) -> str:
        return basic_auth(self.client_id, self.client_secret)


def basic_auth(client_id: str, client_secret: str) -> str:
    """``Authorization`` value for client_secret_basic: both parts form-urlencoded first
    (RFC 6749 §2.3.1), then base64 (RFC 7617)."""
    pair = f"{quote_plus(client_id)}:{quote_plus(client_secret)}".encode()
    return "Basic " + base64.b64encode(pair).decode()


# -- building blocks ---------------------------------------------------------------------------

@dataclass
class AuthRequest:
    url: str
    state: str
    nonce: str
    verifier: str


def authorization_request(target: Target, **extra: str) -> AuthRequest:
    """A fresh code request with state, nonce and a PKCE S256 challenge."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()) \
        .rstrip(b"=").decode()
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    params = {"response_type": "code", "client_id": target.client_id,
              "redirect_uri": target.redirect_uri, "scope": SCOPE, "state": state,
              "nonce": nonce, "code_challenge": challenge, "code_challenge_method": "S256",
              **extra}
    return AuthRequest(target.endpoint("authorization") + "?" + urlencode(params), state, nonce,
                       verifier)


def code_from(reply: Reply, target: Target, request: AuthRequest) -> str:
    """The code from a redirect to the client, after checking state and iss (RFC 9207)."""
    location = reply.absolute_location or ""
    if reply.status not in (302, 303) or not location.startswith(target.redirect_uri):
        raise ValueError(f"expected a redirect to the client, got {reply.status} "
                         f"{location[:120]} {reply.text[:160]!r}")
    params = query_params(location)
    if "code" not in params:
        raise ValueError(f"no code: {params}")
    if params.get("state") != request.state:
        raise ValueError("state mismatch")
    if "iss" in params and params["iss"] != target.issuer:
        raise ValueError("iss mismatch")
    return params["code"]


async def submit_password(browser: Browser, page: Reply, username: str, password: str,
                          stop_at: str) -> Reply:
    """Fill the login form (CSRF token included) and follow where it leads."""
    action, fields = find_form(page.text, "/login")
    reply = await browser.post(action, {**fields, "username": username, "password": password})
    if reply.status in (400, 401, 403, 429):
        raise ValueError(f"login refused with {reply.status}")
    return await browser.follow(reply, stop_at)


async def submit_totp(browser: Browser, page: Reply, code: str, stop_at: str) -> Reply:
    """Answer the TOTP challenge page and follow where it leads."""
    action, fields = find_form(page.text, "/mfa/verify")
    reply = await browser.post(action, {**fields, "code": code})
    if reply.status >= 400:
        raise ValueError(f"TOTP refused with {reply.status}: {reply.text[:200]!r}")
    return await browser.follow(reply, stop_at)


async def sign_in(browser: Browser, target: Target, username: str, recorder: Recorder,
                  step: str = "sign-in", **extra: str) -> tuple[str, AuthRequest]:
    """Authorize → login form → password → code (an aal1 session); returns code and request."""
    request = authorization_request(target, **extra)
    async with recorder.step(step):
        page = await browser.follow(await browser.get(request.url), target.redirect_uri)
        reply = await submit_password(browser, page, username, target.password,
                                      target.redirect_uri)
        code = code_from(reply, target, request)
    return code, request


async def token_request(browser: Browser, target: Target, form: dict[str, str],
                        authorization: str | None = None) -> dict[str, Any]:
    """A token endpoint call with client_secret_basic (the RP's, unless ``authorization``)."""
    reply = await browser.post(target.endpoint("token"), form, backchannel=True,
                               headers={"Authorization": authorization or target.basic_auth})
    if reply.status != 200:
        raise ValueError(f"token endpoint answered {reply.status}: {reply.text[:200]!r}")
    return dict(reply.json())


async def exchange_code(browser: Browser, target: Target, code: str,
                        request: AuthRequest) -> dict[str, Any]:
    return await token_request(browser, target, {
        "grant_type": "authorization_code", "code": code,
        "redirect_uri": target.redirect_uri, "code_verifier": request.verifier})


def verify_id_token(target: Target, id_token: str, nonce: str | None = None) -> dict[str, Any]:
    """OIDC Core §3.1.3.7: RS256 signature against the JWKS, iss, aud, exp/iat, nonce."""
    assert target.keys is not None
    decoded = jwt.decode(id_token, target.keys, algorithms=["RS256"])
    claims = decoded.claims
    now = time.time()
    if claims.get("iss") != target.issuer:
        raise ValueError(f"iss {claims.get('iss')!r}")
    audience = claims.get("aud")
    if target.client_id not in (audience if isinstance(audience, list) else [audience]):
        raise ValueError(f"aud {audience!r}")
    if not (claims["exp"] > now - 60 and claims["iat"] <= now + 60):
        raise ValueError("expired or issued in the future")
    if nonce is not None and claims.get("nonce") != nonce:
        raise ValueError("nonce mismatch")
    return dict(claims)


async def userinfo(browser: Browser, target: Target, access_token: str) -> dict[str, Any]:
    reply = await browser.get(target.endpoint("userinfo"), backchannel=True,
                              headers={"Authorization": f"Bearer {access_token}"})
    if reply.status != 200:
        raise ValueError(f"userinfo answered {reply.status}: {reply.text[:200]!r}")
    return dict(reply.json())


def require(condition: bool, step: str, reason: str) -> None:
    """A correctness check inside a flow: a failure is a counted error."""
    if not condition:
        raise FlowError(step, reason)
