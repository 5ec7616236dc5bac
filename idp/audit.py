"""Audit events: one row in ``audit_events`` and one JSON log line each (DESIGN §7).

``record`` never receives secrets: callers pass identifiers and outcomes only.

Transactions: a *success* event joins the caller's transaction (``commit=False``, recorded
before the caller's own commit), so it is written exactly when what it reports is — one
commit per request. A *failure* event (``user.login_failed``, ``user.mfa_failed``…) commits
on its own (the default) right after the caller rolled back its work: the request is about to
fail, and nothing after it may lose the row.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from flask import g, has_request_context, request

from idp import metrics, request_log
from idp.extensions import db
from idp.models import AuditEvent

logger = logging.getLogger("idp.audit")


def client_ip() -> str | None:
    return request.remote_addr if has_request_context() else None


def record(event_type: str, *, user_id: str | None = None, client_id: str | None = None,
           actor: str | None = None, commit: bool = True, **data: Any) -> AuditEvent:
    """Write an audit row (committed unless ``commit=False``: then the caller's commit writes
    it) and log it as one JSON line."""
    at, ip = int(time.time()), client_ip()
    event = AuditEvent(at=at, type=event_type, user_id=user_id, client_id=client_id, ip=ip,
                       actor=actor, data=data)
    db.session.add(event)
    if commit:
        db.session.commit()
    # From the locals: the row's attributes may be expired after a commit (a SELECT back).
    line = {"event": event_type, "at": at, "user_id": user_id, "client_id": client_id,
            "ip": ip, "actor": actor, **data}
    if has_request_context() and "request_id" in g:
        line["request_id"] = g.request_id
    logger.info(json.dumps(line, default=str, sort_keys=True))
    request_log.note_identity(user_id, client_id)
    metrics.observe_audit(event_type, data)
    return event
