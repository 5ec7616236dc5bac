"""``sso-flow`` and ``refresh``: the two scenarios that run against both servers (stepup-idp and
node ``oidc-provider``) with nothing but standard OIDC on the wire."""

from __future__ import annotations

from typing import ClassVar

from benchmarks.scenarios.base import Scenario, VirtualUser
from benchmarks.target import (
    authorization_request,
    code_from,
    exchange_code,
    require,
    sign_in,
    token_request,
    userinfo,
    verify_id_token,
)

BOTH = frozenset({"stepup-idp", "oidc-provider"})


class SsoFlow(Scenario):
    """A signed-in browser session: authorize (no page shown) → token (code + PKCE S256) →
    verify the ID token against the JWKS → userinfo."""

    name = "sso-flow"
    summary = ("signed-in session: authorize (no UI) → token (code + PKCE) → verify ID token "
               "(JWKS) → userinfo")
    unit = "flows"
    kinds: ClassVar[frozenset[str]] = BOTH

    async def setup(self, vu: VirtualUser) -> None:
        vu.browser.clear_cookies()
        await sign_in(vu.browser, self.target, self.username(vu), self.recorder,
                      step="setup-sign-in")

    async def flow(self, vu: VirtualUser) -> None:
        target, browser, rec = self.target, vu.browser, self.recorder
        request = authorization_request(target)
        async with rec.step("authorize"):
            reply = await browser.follow(await browser.get(request.url), target.redirect_uri)
            code = code_from(reply, target, request)
        async with rec.step("token"):
            tokens = await exchange_code(browser, target, code, request)
        async with rec.step("verify-id-token"):
            claims = verify_id_token(target, tokens["id_token"], request.nonce)
        async with rec.step("userinfo"):
            info = await userinfo(browser, target, tokens["access_token"])
        require(info.get("sub") == claims["sub"], "userinfo", "sub differs from the ID token's")


class Refresh(Scenario):
    """Refresh-token grants with rotation: every grant returns a new refresh token, which the
    next grant uses (a reused one would revoke the family)."""

    name = "refresh"
    summary = "refresh_token grant with rotation (new refresh token each time; ID token checked)"
    unit = "grants"
    kinds: ClassVar[frozenset[str]] = BOTH

    async def setup(self, vu: VirtualUser) -> None:
        vu.browser.clear_cookies()
        code, request = await sign_in(vu.browser, self.target, self.username(vu),
                                      self.recorder, step="setup-sign-in")
        tokens = await exchange_code(vu.browser, self.target, code, request)
        if "refresh_token" not in tokens:
            raise ValueError("no refresh token issued")
        vu.state["refresh_token"] = tokens["refresh_token"]

    async def flow(self, vu: VirtualUser) -> None:
        target, rec = self.target, self.recorder
        old = vu.state["refresh_token"]
        async with rec.step("refresh"):
            tokens = await token_request(vu.browser, target, {
                "grant_type": "refresh_token", "refresh_token": old})
        new = tokens.get("refresh_token")
        require(bool(new) and new != old, "refresh", "refresh token not rotated")
        vu.state["refresh_token"] = new
        if "id_token" in tokens:
            async with rec.step("verify-id-token"):
                verify_id_token(target, tokens["id_token"])
