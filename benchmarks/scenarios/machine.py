"""Scenarios without a browser: ``client-credentials``, ``introspection``, ``discovery``."""

from __future__ import annotations

from typing import ClassVar

from benchmarks.scenarios.base import Scenario, VirtualUser
from benchmarks.target import basic_auth, exchange_code, require, sign_in, token_request


class ClientCredentials(Scenario):
    """A resource server's client_credentials grant (RFC 6749 §4.4)."""

    name = "client-credentials"
    summary = "client_credentials grant by a confidential machine client (Basic auth)"
    unit = "grants"

    def auth(self) -> str:
        """The resource server's client_secret_basic ``Authorization`` value."""
        rs = self.target.resource_server
        if not rs:
            raise ValueError("the manifest has no resource server client")
        return basic_auth(rs["client_id"], rs["client_secret"])

    async def flow(self, vu: VirtualUser) -> None:
        async with self.recorder.step("token"):
            tokens = await token_request(vu.browser, self.target,
                                         {"grant_type": "client_credentials"},
                                         authorization=self.auth())
        require(bool(tokens.get("access_token")) and
                str(tokens.get("token_type", "")).lower() == "bearer", "token",
                f"unexpected response {sorted(tokens)}")


class Introspection(ClientCredentials):
    """RFC 7662 introspection of a user's access token by a resource server."""

    name = "introspection"
    summary = "resource server introspects a user's access token (RFC 7662); acr/amr present"
    unit = "requests"

    async def setup(self, vu: VirtualUser) -> None:
        vu.browser.clear_cookies()
        code, request = await sign_in(vu.browser, self.target, self.username(vu),
                                      self.recorder, step="setup-sign-in")
        tokens = await exchange_code(vu.browser, self.target, code, request)
        vu.state["access_token"] = tokens["access_token"]

    async def flow(self, vu: VirtualUser) -> None:
        async with self.recorder.step("introspect"):
            reply = await vu.browser.post(
                self.target.endpoint("introspection"),
                {"token": vu.state["access_token"], "token_type_hint": "access_token"},
                headers={"Authorization": self.auth()}, backchannel=True)
            require(reply.status == 200, "introspect", f"status {reply.status}")
            body = reply.json()
        require(body.get("active") is True and bool(body.get("sub")) and "acr" in body,
                "introspect", f"unexpected introspection {sorted(body)}")


class Discovery(Scenario):
    """What every relying party fetches: the provider metadata and the JWKS."""

    name = "discovery"
    summary = "GET /.well-known/openid-configuration, then the JWKS (one flow = both)"
    unit = "flows"
    kinds: ClassVar[frozenset[str]] = frozenset({"stepup-idp", "oidc-provider"})

    async def flow(self, vu: VirtualUser) -> None:
        target, rec = self.target, self.recorder
        async with rec.step("discovery"):
            reply = await vu.browser.get(target.base_url + "/.well-known/openid-configuration",
                                         backchannel=True)
            require(reply.status == 200 and reply.json().get("issuer") == target.issuer,
                    "discovery", f"status {reply.status}")
        async with rec.step("jwks"):
            reply = await vu.browser.get(target.metadata["jwks_uri"], backchannel=True)
            require(reply.status == 200 and bool(reply.json().get("keys")), "jwks",
                    f"status {reply.status}")
