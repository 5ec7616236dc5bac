"""A local HTTP server that plays an SMS gateway (idp.delivery.http_sms), failures included."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    authorization: str | None
    content_type: str | None
    body: Any


@dataclass
class FakeGateway:
    """Accepts POSTs on 127.0.0.1:<free port>; ``status`` and ``delay`` change how it answers."""

    token: str = "gateway-token"
    status: int = 200
    delay: float = 0.0
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw
                gateway.received.append(Received(self.path, self.headers.get("Authorization"),
                                                 self.headers.get("Content-Type"), body))
                if gateway.delay:
                    time.sleep(gateway.delay)
                status = gateway.status
                if self.headers.get("Authorization") != f"Bearer {gateway.token}":
                    status = 401
                payload = json.dumps({"ok": 200 <= status < 300}).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:  # the client gave up (timeout test)
                    pass

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.handle_error = lambda *_: None  # type: ignore[method-assign]
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1/messages"
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)

    def start(self) -> FakeGateway:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop answering and close the port (later connections are refused)."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def messages_to(self, recipient: str) -> list[str]:
        return [r.body["message"] for r in self.received
                if isinstance(r.body, dict) and r.body.get("to") == recipient]
