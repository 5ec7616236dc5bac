"""Demo resource server for stepup-idp: one API that needs a recent two-factor sign-in.

Run it with ``python -m examples.resource_server`` (see ``__main__.py``); it serves
http://localhost:5002 and trusts access tokens from the IdP on http://localhost:5000.

``POST /transfers`` takes ``{"amount": 12.5, "to": "Bob"}`` with an RFC 9068 access token as
``Authorization: Bearer …``. :func:`idp.resource.require_acr` guards it: the token must come from
the configured issuer (signature checked against its JWKS), name this server in ``aud`` (the
configured audience: mandatory) and carry ``acr`` aal2 or stronger with
an ``auth_time`` at most 300 seconds old. Otherwise the answer is the RFC 9470 challenge::

    HTTP/1.1 401 UNAUTHORIZED
    WWW-Authenticate: Bearer realm="api", error="insufficient_user_authentication",
        error_description="…", acr_values="aal2", max_age=300

and the client (the demo relying party) sends its user back through the IdP's ``/authorize``
with those ``acr_values`` / ``max_age``, then retries. A token that passes gets a receipt::

    {"status": "done", "id": "…", "amount": 12.5, "to": "Bob",
     "by": "<sub>", "acr": "aal2", "auth_time": 1700000000}

Nothing is stored or moved: it is a demo. Every error, including a malformed body, is JSON with
``error`` / ``error_description``; no input makes it answer 500.
"""

from __future__ import annotations

import math
import os
import re
import secrets
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from flask import Flask, Response, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException

from idp import resource
from idp.resource import ResourceServer, require_acr

__all__ = ["create_app"]

DEFAULT_ISSUER = "http://localhost:5000"
#: The step-up requirement of ``POST /transfers`` (RFC 9470 §3 ``acr_values`` / ``max_age``).
REQUIRED_ACR = "aal2"
MAX_AGE = 300
#: Largest amount one transfer may move; ``MAX_AMOUNT`` in the config overrides it.
DEFAULT_MAX_AMOUNT = 10_000
MAX_RECIPIENT_LENGTH = 64
MAX_BODY_BYTES = 16 * 1024
#: Where :func:`idp.resource.require_acr` keeps the app's ResourceServer (made by
#: :func:`idp.resource.init_app` from ``IDP_ISSUER`` / ``IDP_AUDIENCE``, or here with a pinned
#: JWKS).
RESOURCE_SERVER_EXTENSION = resource.EXTENSION
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class InvalidTransfer(ValueError):
    """The request body does not describe a transfer; the message says why."""


def create_app(config: Mapping[str, Any] | None = None,
               environ: Mapping[str, str] | None = None) -> Flask:
    """Build the resource server.

    ``config`` keys: ``ISSUER`` (else ``DEMO_RS_ISSUER``, else http://localhost:5000),
    ``AUDIENCE`` (else ``DEMO_RS_AUDIENCE``; required: the ``aud`` the IdP's access tokens
    carry — its ``tokens.access_token_audience``, else the client id), ``MAX_AMOUNT`` and
    ``JWKS`` — a fixed key set (dict) to verify tokens with instead of the issuer's published
    one (tests, offline use). Other keys go to ``app.config`` unchanged.

    Raises :class:`idp.resource.ResourceServerConfigError` without an audience.
    """
    config = dict(config or {})
    environ = os.environ if environ is None else environ
    issuer = config.pop("ISSUER", None) or environ.get("DEMO_RS_ISSUER") or DEFAULT_ISSUER
    audience = config.pop("AUDIENCE", None) or environ.get("DEMO_RS_AUDIENCE") or None
    jwks = config.pop("JWKS", None)

    app = Flask(__name__)
    app.config.update(MAX_CONTENT_LENGTH=MAX_BODY_BYTES, MAX_AMOUNT=DEFAULT_MAX_AMOUNT)
    app.config.update(config)
    app.config.update(IDP_ISSUER=issuer, IDP_AUDIENCE=audience)
    if jwks is not None:
        app.extensions[RESOURCE_SERVER_EXTENSION] = ResourceServer(issuer, audience, jwks=jwks)
    resource.init_app(app)  # no audience: stop here, not at the first request

    app.add_url_rule("/", "index", index, methods=["GET"])
    app.add_url_rule("/transfers", "transfers", transfer, methods=["POST"])
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)
    app.after_request(_security_headers)
    return app


def index() -> Response:
    """What this server is and what it requires (handy with ``curl``)."""
    return jsonify({
        "service": "stepup-idp demo resource server",
        "issuer": current_app.config["IDP_ISSUER"],
        "endpoints": {
            "POST /transfers": {
                "body": {"amount": f"number, > 0, <= {current_app.config['MAX_AMOUNT']}, "
                                   "at most 2 decimals",
                         "to": f"string, 1-{MAX_RECIPIENT_LENGTH} characters"},
                "requires": {"acr": REQUIRED_ACR, "max_age": MAX_AGE},
            },
        },
    })


@require_acr(REQUIRED_ACR, max_age=MAX_AGE)
def transfer() -> Response | tuple[Response, int]:
    """Make a (pretend) transfer; the token's subject is the payer."""
    try:
        amount, recipient = parse_transfer(request.get_json(silent=True),
                                           Decimal(str(current_app.config["MAX_AMOUNT"])))
    except InvalidTransfer as exc:
        return _error("invalid_request", str(exc), 400)
    claims: dict[str, Any] = g.access_token
    return jsonify({
        "status": "done",
        "id": secrets.token_hex(8),
        "amount": _json_number(amount),
        "to": recipient,
        "by": claims.get("sub"),
        "acr": claims.get("acr"),
        "auth_time": claims.get("auth_time"),
    })


def parse_transfer(body: Any, max_amount: Decimal) -> tuple[Decimal, str]:
    """``(amount, to)`` from a JSON body; raises :class:`InvalidTransfer` when malformed."""
    if not isinstance(body, dict):
        raise InvalidTransfer("The body must be a JSON object with 'amount' and 'to'.")
    amount = body.get("amount")
    # bool is an int subclass: true is not an amount.
    if isinstance(amount, bool) or not isinstance(amount, int | float):
        raise InvalidTransfer("'amount' must be a number.")
    if isinstance(amount, float) and not math.isfinite(amount):
        raise InvalidTransfer("'amount' must be a finite number.")
    try:
        value = Decimal(str(amount))
    except InvalidOperation:  # pragma: no cover - str() of a finite number always parses
        raise InvalidTransfer("'amount' must be a number.") from None
    if value <= 0:
        raise InvalidTransfer("'amount' must be positive.")
    if value > max_amount:
        raise InvalidTransfer(f"'amount' may be at most {_json_number(max_amount)}.")
    if value != value.quantize(Decimal("0.01")):
        raise InvalidTransfer("'amount' may have at most 2 decimals.")
    recipient = body.get("to")
    if not isinstance(recipient, str) or not recipient.strip():
        raise InvalidTransfer("'to' must be a non-empty string.")
    recipient = recipient.strip()
    if len(recipient) > MAX_RECIPIENT_LENGTH:
        raise InvalidTransfer(f"'to' may have at most {MAX_RECIPIENT_LENGTH} characters.")
    if _CONTROL.search(recipient):
        raise InvalidTransfer("'to' must not contain control characters.")
    return value, recipient


def _json_number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


def _error(error: str, description: str, status: int) -> tuple[Response, int]:
    return jsonify({"error": error, "error_description": description}), status


def _http_error(exc: HTTPException) -> Response:
    """Werkzeug's errors (404, 405, 413, a bad request…) as JSON, keeping their headers."""
    response = exc.get_response()
    response.set_data(jsonify({"error": (exc.name or "error").lower().replace(" ", "_"),
                               "error_description": exc.description or ""}).get_data())
    response.content_type = "application/json"
    return response


def _unexpected_error(exc: Exception) -> tuple[Response, int]:
    current_app.logger.exception("unexpected error", exc_info=exc)
    return _error("server_error", "The resource server failed unexpectedly.", 500)


def _security_headers(response: Response) -> Response:
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response
