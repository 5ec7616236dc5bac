"""One JSON log line per request on the ``idp.request`` logger (DESIGN §8).

Fields: ``event`` (``http.request``), ``method``, ``path``, ``endpoint``, ``status``,
``duration_ms``, ``request_id``, ``client_id`` and ``user_id`` where known, ``ip``. Never bodies,
query strings, headers, cookies, codes or tokens: the line is built from an allow-list.

``path`` is the route's pattern when the request matched one (``/interaction/<uid>/mfa``): the
values in a path can be handles worth keeping out of logs (an interaction id is also its
browser-binding cookie), and patterns group well. Unmatched requests log their raw path (no
query string), cut to ``MAX_PATH_LENGTH``. The client id comes from what the request is about
(an interaction, a token), its parameters, or the user name of HTTP Basic credentials (the
client id, RFC 6749 §2.3.1) — never the password.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any
from urllib.parse import unquote

from flask import Flask, Response, g, has_request_context, request, session

from idp.store import StoreUnavailable

logger = logging.getLogger("idp.request")

MAX_ID_LENGTH = 128
MAX_PATH_LENGTH = 256
FORM_MIMETYPE = "application/x-www-form-urlencoded"


def elapsed() -> float:
    """Seconds since this request started (0 when unknown)."""
    started = g.get("_request_started")
    return time.perf_counter() - started if started is not None else 0.0


def note_identity(user_id: str | None = None, client_id: str | None = None) -> None:
    """Remember who the request is about (audit events call this) for its log line."""
    if not has_request_context():
        return
    if user_id:
        g._log_user_id = user_id
    if client_id:
        g._log_client_id = client_id


def _short(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(value)[:MAX_ID_LENGTH]


def _client_id() -> str | None:
    noted = g.get("_log_client_id")
    if noted:
        return _short(noted)
    if request.args.get("client_id"):
        return _short(request.args["client_id"])
    # Only a form this request already parsed (a log line must not consume the body).
    form = request.__dict__.get("form")
    if form is not None and form.get("client_id"):
        return _short(form["client_id"])
    auth = request.authorization
    if auth is not None and auth.type == "basic" and auth.username:
        return _short(unquote(auth.username))
    return None


def _user_id() -> str | None:
    noted = g.get("_log_user_id")
    if noted:
        return _short(noted)
    try:
        return _short(session.get("user_id"))
    except StoreUnavailable:
        return None


def request_line(response: Response) -> dict[str, Any]:
    """The fields logged for ``response`` to the current request."""
    return {
        "event": "http.request",
        "at": int(time.time()),
        "method": request.method,
        "path": request.url_rule.rule if request.url_rule is not None
        else request.path[:MAX_PATH_LENGTH],
        "endpoint": request.endpoint,
        "status": response.status_code,
        "duration_ms": round(elapsed() * 1000, 1),
        "request_id": g.get("request_id"),
        "client_id": _client_id(),
        "user_id": _user_id(),
        "ip": request.remote_addr,
    }


def register(app: Flask) -> None:
    """Time every request and log it once answered (register before other hooks)."""

    @app.before_request
    def start_timer() -> None:
        g._request_started = time.perf_counter()

    @app.after_request
    def log_request(response: Response) -> Response:
        try:
            line = request_line(response)
        except Exception:  # a log line must never turn an answer into an error
            logging.getLogger("idp.errors").exception("request log line failed")
            return response
        logger.info(json.dumps(line, default=str, sort_keys=True))
        return response
