"""JSON APIs (DESIGN §7): the self-service MFA API (``/api/v1/me``, :mod:`idp.api.mfa`), the
admin API (``/api/v1/admin``, :mod:`idp.api.admin`) and their one OpenAPI 3.1 document,
``/api/v1/openapi.json`` (kept as ``openapi.yaml`` beside this file; the tests hold the
implementation to it).

Every error leaves as ``{"error": "<code>", "error_description": "…"}`` with its status
(:mod:`idp.api.errors`). The APIs take bearer tokens, never cookies, so CSRF protection does not
apply to them (RFC 6750 §5.2: bearer tokens are not sent ambiently by browsers).
"""

from __future__ import annotations

import copy
import functools
from importlib import resources
from typing import Any

import yaml
from flask import Blueprint, Flask, Response, jsonify

from idp.api.errors import install_handlers
from idp.extensions import csrf, settings

bp = Blueprint("api", __name__, url_prefix="/api/v1")
install_handlers(bp)

SPEC_RESOURCE = "api/openapi.yaml"
#: The document may be cached briefly (it changes only with a release).
SPEC_MAX_AGE = 300


@functools.cache
def _packaged_spec() -> dict[str, Any]:
    text = resources.files("idp").joinpath(SPEC_RESOURCE).read_text("utf-8")
    return yaml.safe_load(text)


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document with this server's URL (``servers``)."""
    document = copy.deepcopy(_packaged_spec())
    document["servers"] = [{"url": f"{settings().issuer}/api/v1"}]
    return document


@bp.get("/openapi.json")
def openapi() -> Response:
    response = jsonify(openapi_document())
    response.headers["Cache-Control"] = f"public, max-age={SPEC_MAX_AGE}"
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


def init_app(app: Flask) -> None:
    """Register the API blueprints (exempt from CSRF: bearer tokens only)."""
    from idp.api import admin, mfa

    for blueprint in (bp, mfa.bp, admin.bp):
        csrf.exempt(blueprint)
        app.register_blueprint(blueprint)
