"""Audit events: one row in ``audit_events`` and one JSON log line each (DESIGN §7).

``record`` never receives secrets: callers pass identifiers and outcomes only.
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
    """Write an audit row (committed unless ``commit=False``) and log it as one JSON line."""
    event = AuditEvent(
        at=int(time.time()), type=event_type, user_id=user_id, client_id=client_id,
        ip=client_ip(), actor=actor, data=data,
    )
    db.session.add(event)
    if commit:
        db.session.commit()
    line = {"event": event_type, "at": event.at, "user_id": user_id, "client_id": client_id,
            "ip": event.ip, "actor": actor, **data}
    if has_request_context() and "request_id" in g:
        line["request_id"] = g.request_id
    logger.info(json.dumps(line, default=str, sort_keys=True))
    request_log.note_identity(user_id, client_id)
    metrics.observe_audit(event_type, data)
    return event
