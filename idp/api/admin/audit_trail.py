"""Admin API: the audit trail (query)."""

from __future__ import annotations

import re
from typing import Any

from flask import Response
from sqlalchemy import and_, or_, select

from idp.api.admin.common import (
    bp,
    cursor_key,
    page,
    page_limit,
)
from idp.api.validation import (
    Field,
    check_value,
    query_int,
    query_str,
)
from idp.extensions import db
from idp.models import AuditEvent

# -- audit ----------------------------------------------------------------------------------

def event_json(event: AuditEvent) -> dict[str, Any]:
    return {"id": event.id, "at": event.at, "type": event.type, "user_id": event.user_id,
            "client_id": event.client_id, "ip": event.ip, "actor": event.actor,
            "data": event.data or {}}


@bp.get("/audit-events")
def list_audit_events() -> Response:
    """Newest first by ``(at, id)``; filters: ``type``, ``user_id``, ``client_id``, ``since``
    and ``until`` (epoch seconds, inclusive)."""
    limit = page_limit()
    query = select(AuditEvent)
    for name, column, length in (("type", AuditEvent.type, 64),
                                 ("user_id", AuditEvent.user_id, 100),
                                 ("client_id", AuditEvent.client_id, 100)):
        value = query_str(name, max_length=length)
        if value is not None:
            query = query.where(column == value)
    since = query_int("since", minimum=0, maximum=2 ** 53)
    until = query_int("until", minimum=0, maximum=2 ** 53)
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    if until is not None:
        query = query.where(AuditEvent.at <= until)
    after = cursor_key(lambda text: int(check_value("cursor", Field(
        str, pattern=re.compile(r"[0-9]{1,18}")), text)))
    if after is not None:
        query = query.where(or_(AuditEvent.at < after[0],
                                and_(AuditEvent.at == after[0], AuditEvent.id < after[1])))
    rows = list(db.session.scalars(
        query.order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(limit + 1)))
    return page(rows, limit, lambda e: (e.at, e.id), event_json)
