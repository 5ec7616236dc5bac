"""idp.resource: the audience is mandatory (RFC 9068 §4) and the JWKS is refetched on an
unknown ``kid`` at most once per minimum interval, against a real JWKS served on localhost."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from flask import Flask
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from idp import resource
from idp.resource import (
    JWKS_MIN_REFETCH_SECONDS,
    ResourceServer,
    ResourceServerConfigError,
    TokenRejected,
    require_acr,
)

AUDIENCE = "https://api.example.test"


def make_key(kid: str) -> ECKey:
    return ECKey.generate_key("P-256", parameters={"kid": kid}, private=True)


class Issuer:
    """Discovery and JWKS of a pretend issuer on an ephemeral port; counts JWKS fetches."""

    def __init__(self) -> None:
        self.keys: list[ECKey] = [make_key("k1")]
        self.jwks_fetches = 0
        self.failing = False
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if issuer.failing:
                    self.send_error(503)
                    return
                if self.path == "/.well-known/openid-configuration":
                    body = {"issuer": issuer.url, "jwks_uri": f"{issuer.url}/jwks"}
                elif self.path == "/jwks":
                    issuer.jwks_fetches += 1
                    body = KeySet(issuer.keys).as_dict(private=False)
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)

    def __enter__(self) -> Issuer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def token(self, key: ECKey, **overrides: Any) -> str:
        now = int(time.time())
        claims = {"iss": self.url, "sub": "user-1", "aud": AUDIENCE, "client_id": "rp1",
                  "iat": now, "exp": now + 300, "jti": "j", "acr": "aal1"}
        claims.update(overrides)
        return jwt.encode({"alg": "ES256", "kid": key.kid, "typ": "at+jwt"},
                          {k: v for k, v in claims.items() if v is not None}, key)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    with Issuer() as served:
        yield served


def server(issuer: Issuer, clock: Clock, **kw: Any) -> ResourceServer:
    return ResourceServer(issuer.url, kw.pop("audience", AUDIENCE), clock=clock, **kw)


# --- JWKS refetch pacing ----------------------------------------------------------------------

def test_unknown_kids_refetch_at_most_once_per_interval(issuer: Issuer) -> None:
    clock = Clock()
    rs = server(issuer, clock)
    assert rs.validate(issuer.token(issuer.keys[0]))["sub"] == "user-1"
    assert issuer.jwks_fetches == 1

    clock.now += JWKS_MIN_REFETCH_SECONDS  # one refetch for an unknown kid...
    forged = [issuer.token(make_key(f"made-up-{n}")) for n in range(5)]
    for token in forged:
        with pytest.raises(TokenRejected):
            rs.validate(token)
    assert issuer.jwks_fetches == 2  # ...not one per forged token
    clock.now += JWKS_MIN_REFETCH_SECONDS - 1
    with pytest.raises(TokenRejected):
        rs.validate(forged[0])
    assert issuer.jwks_fetches == 2
    clock.now += 1
    with pytest.raises(TokenRejected):
        rs.validate(forged[0])
    assert issuer.jwks_fetches == 3
    # Known keys never cause a fetch.
    rs.validate(issuer.token(issuer.keys[0]))
    assert issuer.jwks_fetches == 3


def test_a_rotated_key_is_picked_up_after_the_interval(issuer: Issuer) -> None:
    clock = Clock()
    rs = server(issuer, clock)
    rs.validate(issuer.token(issuer.keys[0]))
    new = make_key("k2")
    issuer.keys.append(new)

    with pytest.raises(TokenRejected):  # fetched once at start: too soon to refetch
        rs.validate(issuer.token(new))
    clock.now += JWKS_MIN_REFETCH_SECONDS

    assert rs.validate(issuer.token(new))["sub"] == "user-1"
    assert issuer.jwks_fetches == 2


def test_failed_fetches_are_paced_too(issuer: Issuer) -> None:
    clock = Clock()
    rs = server(issuer, clock)
    issuer.failing = True
    for _ in range(3):
        with pytest.raises(TokenRejected, match="cannot fetch"):
            rs.validate(issuer.token(issuer.keys[0]))
    issuer.failing = False
    with pytest.raises(TokenRejected, match="cannot fetch"):  # still within the interval
        rs.validate(issuer.token(issuer.keys[0]))
    assert issuer.jwks_fetches == 0
    clock.now += JWKS_MIN_REFETCH_SECONDS
    assert rs.validate(issuer.token(issuer.keys[0]))["sub"] == "user-1"
    assert issuer.jwks_fetches == 1


def test_keys_are_kept_when_a_refetch_fails(issuer: Issuer) -> None:
    clock = Clock()
    rs = server(issuer, clock)
    rs.validate(issuer.token(issuer.keys[0]))
    issuer.failing = True
    clock.now += 10 * JWKS_MIN_REFETCH_SECONDS  # stale: refetch tried, fails, old keys serve
    assert rs.validate(issuer.token(issuer.keys[0]))["sub"] == "user-1"


# --- the audience -----------------------------------------------------------------------------

@pytest.mark.parametrize("audience", [None, "", []])
def test_a_server_without_an_audience_is_a_configuration_error(issuer: Issuer,
                                                               audience: Any) -> None:
    with pytest.raises(ResourceServerConfigError, match="IDP_ACCEPT_ANY_AUDIENCE"):
        ResourceServer(issuer.url, audience)


def test_accepting_any_audience_is_explicit_but_aud_is_still_required(issuer: Issuer) -> None:
    rs = server(issuer, Clock(), audience=None, accept_any_audience=True)
    assert rs.validate(issuer.token(issuer.keys[0], aud="anything"))["sub"] == "user-1"
    with pytest.raises(TokenRejected, match="aud"):
        rs.validate(issuer.token(issuer.keys[0], aud=None))


@pytest.mark.parametrize(("aud", "ok"), [
    (AUDIENCE, True), ([AUDIENCE, "rp1"], True), ("rp1", False), (["rp1", "x"], False),
    (None, False),
])
def test_the_audience_must_name_this_server(issuer: Issuer, aud: Any, ok: bool) -> None:
    rs = server(issuer, Clock())
    token = issuer.token(issuer.keys[0], aud=aud)
    if ok:
        assert rs.validate(token)["sub"] == "user-1"
    else:
        with pytest.raises(TokenRejected):
            rs.validate(token)


def _app(**config: Any) -> Flask:
    app = Flask("api")
    app.config.update(config)

    @app.get("/")
    @require_acr("aal1")
    def index() -> str:
        return "ok"

    return app


def test_init_app_stops_an_app_configured_without_an_audience(issuer: Issuer) -> None:
    with pytest.raises(ResourceServerConfigError):
        resource.init_app(_app(IDP_ISSUER=issuer.url))
    with pytest.raises(ResourceServerConfigError, match="issuer"):
        resource.init_app(_app(IDP_AUDIENCE=AUDIENCE))
    assert resource.init_app(_app(IDP_ISSUER=issuer.url, IDP_ACCEPT_ANY_AUDIENCE=True)) \
        .accept_any_audience
    assert resource.init_app(_app(IDP_ISSUER=issuer.url, IDP_AUDIENCE=[AUDIENCE, "b"])) \
        .audiences == [AUDIENCE, "b"]


def test_without_init_app_the_first_request_fails_closed(issuer: Issuer) -> None:
    app = _app(IDP_ISSUER=issuer.url, TESTING=True)  # exceptions reach the test
    bearer = {"Authorization": f"Bearer {issuer.token(issuer.keys[0])}"}
    with pytest.raises(ResourceServerConfigError):
        app.test_client().get("/", headers=bearer)
    configured = _app(IDP_ISSUER=issuer.url, IDP_AUDIENCE=AUDIENCE)
    assert configured.test_client().get("/", headers=bearer).status_code == 200
