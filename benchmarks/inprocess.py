"""Server CPU per flow without HTTP: the app called through Werkzeug's test client in this
process, one flow after another, timed with the process CPU clock (optionally profiled).

No sockets, no server, no driver beside it: what is measured is the WSGI application itself
(Flask, our hooks, authlib, SQLAlchemy, the store, the signatures), so the figure shows what a
change to the request path is worth before a full ``make bench``. CPU time still moves with
the machine (±20 % between repeats here); ``--instructions`` counts instead, and that count
does not. The HTTP server's own share (gunicorn ≈ 0.4 ms per request) is not in it.

    python -m benchmarks.inprocess --scenario sso-flow --flows 2000 [--backend postgres]
    python -m benchmarks.inprocess --scenario refresh --profile 25   # top 25 by own time
    python -m benchmarks.inprocess --scenario sso-flow --instructions 40   # valgrind count
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import hashlib
import io
import logging
import pstats
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from benchmarks.browser import find_form
from benchmarks.server import prepare
from benchmarks.target import SCOPE, TOTP_INTERVAL, basic_auth, totp_code


class InProcessClient:
    """The relying party and one signed-in browser, both through the test client."""

    def __init__(self, app: Any, manifest: dict[str, Any]) -> None:
        self.app = app
        self.browser = app.test_client()
        self.backchannel = app.test_client(use_cookies=False)
        self.manifest = manifest
        client = manifest["client"]
        self.authorization = basic_auth(client["client_id"], client["client_secret"])
        self.redirect_uri = manifest["redirect_uri"]
        self.client_id = client["client_id"]

    def follow(self, browser: Any, response: Any, stop_at: str) -> Any:
        """Follow redirects on the IdP until one leads to a URL containing ``stop_at`` (the
        RP's callback is returned, not requested) or a page is shown."""
        for _ in range(12):
            location = response.headers.get("Location", "")
            if response.status_code not in (301, 302, 303) or location.startswith(
                    self.redirect_uri):
                return response
            response = browser.get(location)
            if stop_at in location:
                return response
        raise RuntimeError("too many redirects")

    def code_from(self, response: Any, state: str | None = None) -> str:
        location = response.headers.get("Location", "")
        if not location.startswith(self.redirect_uri):
            raise RuntimeError(f"no code: {response.status_code} {response.text[:200]!r}")
        params = parse_qs(urlsplit(location).query)
        if state is not None and params["state"][0] != state:
            raise RuntimeError("state mismatch")
        return params["code"][0]

    def authorization_request(self, **extra: str) -> tuple[str, str, str]:
        """(URL, state, PKCE verifier) of a fresh code request."""
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(
            hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        state = secrets.token_urlsafe(16)
        query = urlencode({"response_type": "code", "client_id": self.client_id,
                           "redirect_uri": self.redirect_uri, "scope": SCOPE, "state": state,
                           "nonce": secrets.token_urlsafe(16), "code_challenge": challenge,
                           "code_challenge_method": "S256", **extra})
        return "/authorize?" + query, state, verifier

    def authorize(self) -> tuple[str, str]:
        """A code for the signed-in session (no page shown): (code, PKCE verifier)."""
        url, state, verifier = self.authorization_request()
        response = self.follow(self.browser, self.browser.get(url), self.redirect_uri)
        return self.code_from(response, state), verifier

    def sign_in(self, username: str, password: str) -> None:
        """Authorize → login form → password: leaves the browser with an aal1 session."""
        url, _, _ = self.authorization_request()
        response = self.follow(self.browser, self.browser.get(url), "/login")
        action, fields = find_form(response.text, "/login")
        response = self.browser.post(action, data={**fields, "username": username,
                                                   "password": password})
        if response.status_code not in (302, 303):
            raise RuntimeError(f"sign-in refused: {response.status_code}")

    def token(self, form: dict[str, str]) -> dict[str, Any]:
        response = self.backchannel.post("/token", data=form,
                                         headers={"Authorization": self.authorization})
        if response.status_code != 200:
            raise RuntimeError(f"token: {response.status_code} {response.text[:200]!r}")
        return dict(response.get_json())

    def userinfo(self, access_token: str) -> None:
        response = self.backchannel.get("/userinfo",
                                        headers={"Authorization": f"Bearer {access_token}"})
        if response.status_code != 200:
            raise RuntimeError(f"userinfo: {response.status_code}")


def sso_flow(rp: InProcessClient) -> Callable[[], None]:
    def flow() -> None:
        code, verifier = rp.authorize()
        tokens = rp.token({"grant_type": "authorization_code", "code": code,
                           "redirect_uri": rp.redirect_uri, "code_verifier": verifier})
        rp.userinfo(tokens["access_token"])
    return flow


def refresh(rp: InProcessClient) -> Callable[[], None]:
    code, verifier = rp.authorize()
    state = {"refresh_token": rp.token({"grant_type": "authorization_code", "code": code,
                                        "redirect_uri": rp.redirect_uri,
                                        "code_verifier": verifier})["refresh_token"]}

    def flow() -> None:
        tokens = rp.token({"grant_type": "refresh_token",
                           "refresh_token": state["refresh_token"]})
        state["refresh_token"] = tokens["refresh_token"]
    return flow


def discovery(rp: InProcessClient) -> Callable[[], None]:
    def flow() -> None:
        for path in ("/.well-known/openid-configuration", "/jwks"):
            if rp.backchannel.get(path).status_code != 200:
                raise RuntimeError(path)
    return flow


def login(rp: InProcessClient) -> Callable[[], None]:
    """A new browser signs in for aal2 (password, then TOTP) and the code is exchanged; each
    TOTP user answers each time step once (the server refuses a replayed step)."""
    users = [dict(u) for u in rp.manifest["totp_users"]]
    turn = {"next": 0}

    def flow() -> None:
        now_step = int(time.time()) // TOTP_INTERVAL
        for _ in range(len(users)):
            user = users[turn["next"] % len(users)]
            turn["next"] += 1
            step = max(int(user["last_step"]) + 1, now_step)
            if step <= now_step + 1:
                break
        else:
            raise RuntimeError("every TOTP user has answered this step and the next")
        user["last_step"] = step
        browser = rp.app.test_client()
        url, state, verifier = rp.authorization_request(acr_values="aal2")
        page = rp.follow(browser, browser.get(url), "/login")
        action, fields = find_form(page.text, "/login")
        response = browser.post(action, data={**fields, "username": user["username"],
                                              "password": rp.manifest["password"]})
        page = rp.follow(browser, response, "/mfa/verify")
        action, fields = find_form(page.text, "/mfa/verify")
        response = browser.post(action, data={**fields,
                                              "code": totp_code(user["secret"], step)})
        code = rp.code_from(rp.follow(browser, response, rp.redirect_uri), state)
        tokens = rp.token({"grant_type": "authorization_code", "code": code,
                           "redirect_uri": rp.redirect_uri, "code_verifier": verifier})
        if "id_token" not in tokens:
            raise RuntimeError("no ID token")
    return flow


SCENARIOS: dict[str, Callable[[InProcessClient], Callable[[], None]]] = {
    "sso-flow": sso_flow, "refresh": refresh, "discovery": discovery, "login": login}


def measure(flow: Callable[[], None], flows: int, warmup: int = 50) -> float:
    """Process CPU milliseconds per flow over ``flows`` flows (after ``warmup`` flows)."""
    for _ in range(warmup):
        flow()
    started = time.process_time()
    for _ in range(flows):
        flow()
    return (time.process_time() - started) * 1000 / max(flows, 1)


def instructions(argv: list[str], flows: int) -> float:
    """Instructions per flow, counted by valgrind (callgrind): this command run twice, with 0
    and with ``flows`` measured flows after the same warm-up; the difference divided by
    ``flows``. Unlike CPU time, the count does not move with what else the machine is doing
    (PostgreSQL's and Redis's own work is not in it: they run in their own processes)."""
    counts = []
    for measured in (0, flows):
        command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                   sys.executable, "-m", "benchmarks.inprocess", *argv, "--flows",
                   str(measured), "--repeat", "1", "--warmup", "20"]
        done = subprocess.run(command, capture_output=True, text=True,  # noqa: S603
                              check=True)
        found = re.search(r"Collected : (\d+)", done.stderr)
        if found is None:
            raise RuntimeError(f"no callgrind summary: {done.stderr[-500:]}")
        counts.append(int(found.group(1)))
    return (counts[1] - counts[0]) / flows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="sso-flow", choices=list(SCENARIOS))
    parser.add_argument("--backend", default="sqlite", choices=["sqlite", "postgres"])
    parser.add_argument("--flows", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5, help="measurements (median printed)")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="also profile one measurement and print the top N by own time")
    parser.add_argument("--warmup", type=int, default=50, help="flows before each measurement")
    parser.add_argument("--instructions", type=int, default=0, metavar="N",
                        help="instructions per flow over N flows, counted by valgrind "
                             "(slow: ~1 s per flow; steady on a busy machine)")
    parser.add_argument("--tree", action="store_true",
                        help="also profile one measurement with pyinstrument (call tree)")
    args = parser.parse_args(argv)
    if args.instructions:
        per_flow = instructions(["--scenario", args.scenario, "--backend", args.backend],
                                args.instructions)
        print(f"{args.scenario} ({args.backend}): {per_flow / 1e6:.2f} M instructions per flow "
              f"(valgrind, {args.instructions} flows)")
        return 0

    from idp import create_app

    _, config, manifest = prepare(args.backend, workers=1, session_users=2,
                                 totp_users=2000 if args.scenario == "login" else 8)
    app = create_app(environ={"IDP_CONFIG": str(config)})
    logging.getLogger("idp").setLevel(logging.WARNING)
    rp = InProcessClient(app, manifest)
    rp.sign_in(manifest["users"][0], manifest["password"])
    flow = SCENARIOS[args.scenario](rp)
    figures = sorted(measure(flow, args.flows, args.warmup) for _ in range(args.repeat))
    print(f"{args.scenario} ({args.backend}): {figures[len(figures) // 2]:.3f} ms CPU per "
          f"flow, median of {args.repeat} x {args.flows}, min {figures[0]:.3f} "
          f"(all: {', '.join(f'{f:.3f}' for f in figures)})")
    if args.profile:
        profiler = cProfile.Profile(time.process_time)
        profiler.runcall(measure, flow, args.flows)
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("tottime").print_stats(args.profile)
        stats.sort_stats("cumulative").print_stats(args.profile)
        print(out.getvalue())
    if args.tree:
        from pyinstrument import Profiler

        tree = Profiler(interval=0.0005)
        tree.start()
        measure(flow, args.flows)
        tree.stop()
        print(tree.output_text(unicode=True, show_all=False, short_mode=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
