"""Probes for orchestrators and load balancers (DESIGN §8).

- ``/healthz`` (liveness): the process answers; it touches no dependency, so an outage of the
  database or Redis never gets healthy pods restarted.
- ``/readyz`` (readiness): the database answers ``SELECT 1`` and, when configured, Redis
  answers ``PING``; otherwise 503 naming what failed (``"database": "unavailable"``), so the
  pod leaves the load balancer until it can serve again. Details go to the log, not the answer.
"""

from __future__ import annotations

import logging
import time

from flask import Blueprint, Response, jsonify
from sqlalchemy import text

from idp.extensions import db, settings, store
from idp.store import StoreUnavailable

bp = Blueprint("health", __name__)
logger = logging.getLogger("idp.errors")

OK = "ok"
UNAVAILABLE = "unavailable"
NOT_CONFIGURED = "not configured"


def _answer(payload: dict, status: int) -> Response:
    response = jsonify(payload)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    if status == 503:
        response.headers["Retry-After"] = "5"
    return response


@bp.get("/healthz")
def healthz() -> Response:
    return _answer({"status": "ok"}, 200)


def check_database() -> str:
    try:
        with db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # any failure means "not ready"; the reason goes to the log
        logger.error("readiness: database unavailable: %s", type(exc).__name__)
        return UNAVAILABLE
    return OK


def check_store() -> str:
    if not settings().redis_url:
        return NOT_CONFIGURED
    try:
        store.current.ping()
    except StoreUnavailable as exc:
        logger.error("readiness: redis unavailable: %s", type(exc.__cause__ or exc).__name__)
        return UNAVAILABLE
    return OK


@bp.get("/readyz")
def readyz() -> Response:
    started = time.monotonic()
    checks = {"database": check_database(), "redis": check_store()}
    ready = UNAVAILABLE not in checks.values()
    failed = sorted(name for name, state in checks.items() if state == UNAVAILABLE)
    return _answer({"status": "ready" if ready else "unavailable", "checks": checks,
                    "failed": failed, "duration_ms": round((time.monotonic() - started) * 1000)},
                   200 if ready else 503)
