"""``login`` and ``step-up``: the hosted pages with CSRF, a password (argon2id) and a TOTP
challenge, as a browser without JavaScript goes through them."""

from __future__ import annotations

import os
import time
from typing import Any

from benchmarks.browser import find_form
from benchmarks.scenarios.base import Scenario, VirtualUser
from benchmarks.target import (
    authorization_request,
    code_from,
    exchange_code,
    require,
    sign_in,
    submit_password,
    submit_totp,
    totp_code,
    verify_id_token,
)

AAL2 = "aal2"


def argon2_floor(params: dict[str, int] | None, rounds: int = 12) -> dict[str, Any]:
    """The cryptographic floor of a password sign-in, measured here and now: seconds per
    argon2id verification with the server's parameters, and the logins/s that floor allows
    on this machine's cores (one verification per login)."""
    from argon2 import PasswordHasher

    params = params or {"time_cost": 2, "memory_cost": 19456, "parallelism": 1}
    hasher = PasswordHasher(time_cost=params["time_cost"], memory_cost=params["memory_cost"],
                            parallelism=params["parallelism"])
    digest = hasher.hash("floor-measurement")
    hasher.verify(digest, "floor-measurement")  # warm the allocator
    timings = []
    for _ in range(rounds):
        started = time.perf_counter()
        hasher.verify(digest, "floor-measurement")
        timings.append(time.perf_counter() - started)
    timings.sort()
    seconds = timings[len(timings) // 2]
    cores = os.cpu_count() or 1
    return {"argon2_params": params, "argon2_verify_ms": round(1000 * seconds, 2),
            "cores": cores, "argon2_floor_logins_per_s": round(cores / seconds, 1)}


class Login(Scenario):
    """A new browser signs in for aal2: authorize → login page → password → TOTP challenge →
    code → token; the ID token must say acr=aal2 with pwd and otp in amr."""

    name = "login"
    summary = ("new browser, acr_values=aal2: authorize → login page (CSRF) → password "
               "(argon2id) → TOTP → code → token; ID token acr/amr checked")
    unit = "logins"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.floor = argon2_floor(self.target.info.get("password_params"))

    async def setup(self, vu: VirtualUser) -> None:
        if self.target.totp is None or not len(self.target.totp):
            raise ValueError("the manifest has no TOTP users")

    async def recover(self, vu: VirtualUser) -> None:
        vu.browser.clear_cookies()

    async def flow(self, vu: VirtualUser) -> None:
        target, browser, rec = self.target, vu.browser, self.recorder
        assert target.totp is not None
        browser.clear_cookies()
        user, step = await target.totp.acquire(rec)
        request = authorization_request(target, acr_values=AAL2)
        async with rec.step("authorize"):
            page = await browser.follow(await browser.get(request.url), target.redirect_uri)
            find_form(page.text, "/login")
        async with rec.step("password"):
            challenge = await submit_password(browser, page, user.username, target.password,
                                              target.redirect_uri)
            find_form(challenge.text, "/mfa/verify")
        async with rec.step("totp"):
            reply = await submit_totp(browser, challenge, totp_code(user.secret, step),
                                      target.redirect_uri)
            code = code_from(reply, target, request)
        async with rec.step("token"):
            tokens = await exchange_code(browser, target, code, request)
        async with rec.step("verify-id-token"):
            claims = verify_id_token(target, tokens["id_token"], request.nonce)
            check_aal2(claims, "verify-id-token")

    def extra(self) -> dict[str, Any]:
        return self.floor


def check_aal2(claims: dict[str, Any], step: str) -> None:
    require(claims.get("acr") == AAL2, step, f"acr {claims.get('acr')!r}")
    amr = claims.get("amr") or []
    require("pwd" in amr and "otp" in amr, step, f"amr {amr!r}")


class StepUp(Scenario):
    """An aal1 session asks for aal2: one TOTP challenge (not the password again), then a code.
    Each flow first makes the aal1 session (``prep-login``: a password sign-in, argon2id
    included) because a stepped-up session stays aal2; the step-up itself is
    ``authorize-aal2`` + ``totp`` + ``token``."""

    name = "step-up"
    summary = ("aal1 session (prep-login: password) → authorize acr_values=aal2 → TOTP "
               "challenge → code → token; ID token acr=aal2")
    unit = "step-ups"

    async def setup(self, vu: VirtualUser) -> None:
        if self.target.totp is None or not len(self.target.totp):
            raise ValueError("the manifest has no TOTP users")

    async def recover(self, vu: VirtualUser) -> None:
        vu.browser.clear_cookies()

    async def flow(self, vu: VirtualUser) -> None:
        target, browser, rec = self.target, vu.browser, self.recorder
        assert target.totp is not None
        browser.clear_cookies()
        user, step = await target.totp.acquire(rec)
        await sign_in(browser, target, user.username, rec, step="prep-login")
        request = authorization_request(target, acr_values=AAL2)
        async with rec.step("authorize-aal2"):
            page = await browser.follow(await browser.get(request.url), target.redirect_uri)
            find_form(page.text, "/mfa/verify")
        async with rec.step("totp"):
            reply = await submit_totp(browser, page, totp_code(user.secret, step),
                                      target.redirect_uri)
            code = code_from(reply, target, request)
        async with rec.step("token"):
            tokens = await exchange_code(browser, target, code, request)
        async with rec.step("verify-id-token"):
            claims = verify_id_token(target, tokens["id_token"], request.nonce)
            check_aal2(claims, "verify-id-token")
