"""Oversized requests and slow clients are bounded (DESIGN §8), against a real ``idp serve``.

- Bodies over ``server.max_request_bytes`` (64 KiB) get 413 at once, announced or chunked,
  without the server reading them to the end; over-long request lines and header floods are
  refused by gunicorn.
- A client that trickles its request (slowloris) or its body is cut off after the request
  deadline (``server.timeout``, the head within at most 10 s), and while such clients hold
  every worker thread the server is back to answering others within that bound.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import requests

from tests.production.services import IdpServer, idp_env, run_idp

pytestmark = pytest.mark.slow

TIMEOUT = 3  # server.timeout for these tests
THREADS = 2
LIMIT = 65536


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IdpServer]:
    home = tmp_path_factory.mktemp("limits")
    env = idp_env(home, "sqlite:///idp.sqlite3", None, "http://127.0.0.1:1",
                  IDP_SERVER__TIMEOUT=str(TIMEOUT), IDP_SERVER__THREADS=str(THREADS))
    run_idp(env, "init")
    served = IdpServer(env, workers=1).start()
    try:
        yield served
    finally:
        served.stop()


def raw(port: int, data: bytes, timeout: float = 10) -> tuple[bytes, float]:
    """Send ``data``, read the answer until the server closes; the answer and seconds taken."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        with contextlib.suppress(ConnectionResetError, TimeoutError):
            while chunk := sock.recv(65536):
                chunks.append(chunk)
                if b"\r\n\r\n" in b"".join(chunks):
                    break
    return b"".join(chunks), time.monotonic() - started


def test_an_announced_oversized_body_gets_413_without_being_read(server):
    head = (f"POST /token HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {100 * 1024 * 1024}\r\n\r\n").encode()
    answer, seconds = raw(server.port, head + b"grant_type=" + b"a" * 1000)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert seconds < 2


def test_a_body_over_the_limit_gets_413_with_json_on_machine_endpoints(server):
    response = requests.post(server.url + "/token", timeout=10,
                             data={"grant_type": "x" * (LIMIT + 1)})
    assert response.status_code == 413
    assert response.json()["error"] == "request_too_large"


def test_a_chunked_body_over_the_limit_gets_413(server):
    def chunks() -> Iterator[bytes]:
        yield b"grant_type=client_credentials&x="
        for _ in range(20):
            yield b"a" * 8192

    response = requests.post(server.url + "/token", data=chunks(), timeout=10,
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 413


def test_overlong_request_lines_and_header_floods_are_refused(server):
    line, _ = raw(server.port, f"GET /{'a' * 10000} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert line.split(b" ", 2)[1] in (b"400", b"414"), line[:100]
    headers = "".join(f"X-H{i}: v\r\n" for i in range(200))
    flood, _ = raw(server.port, f"GET /healthz HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode())
    assert flood.split(b" ", 2)[1] in (b"400", b"431"), flood[:100]


def _trickle(port: int, first: bytes, closed_after: list[float], stop: threading.Event) -> None:
    """Send ``first``, then one more header byte a second until the server hangs up."""
    started = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(first)
            while not stop.is_set() and time.monotonic() - started < 30:
                time.sleep(0.5)
                sock.sendall(b"X")
                sock.settimeout(0.01)
                with contextlib.suppress(TimeoutError):
                    if sock.recv(1) == b"":
                        break
                sock.settimeout(30)
    except OSError:
        pass
    closed_after.append(time.monotonic() - started)


@pytest.mark.parametrize("first", [
    b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ",  # the head never ends
    (b"POST /token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5000\r\n"
     b"Content-Type: application/x-www-form-urlencoded\r\n\r\ngrant_type="),  # nor the body
], ids=["slow-head", "slow-body"])
def test_slow_clients_are_cut_off_and_cannot_starve_the_server(server, first):
    stop = threading.Event()
    closed_after: list[float] = []
    slow = [threading.Thread(target=_trickle, args=(server.port, first, closed_after, stop),
                             daemon=True) for _ in range(THREADS * 3)]
    try:
        for thread in slow:
            thread.start()
        time.sleep(0.5)
        # More slow clients than threads: a normal request still gets its answer in time.
        started = time.monotonic()
        answer = requests.get(server.url + "/healthz", timeout=30)
        waited = time.monotonic() - started
        assert answer.status_code == 200
        assert waited < 3 * TIMEOUT + 5, f"starved for {waited:.1f} s"
        for thread in slow:
            thread.join(30)
    finally:
        stop.set()
    assert len(closed_after) == len(slow)
    # Each slow connection was closed by the server, within the bound (plus queueing).
    assert max(closed_after) < 3 * TIMEOUT + 6, closed_after
    assert requests.get(server.url + "/healthz", timeout=5).status_code == 200
