"""Column helpers shared by the models."""

from __future__ import annotations

import time
import uuid

from sqlalchemy import JSON
from sqlalchemy.dialects.postgresql import JSONB

#: JSON on SQLite, JSONB on PostgreSQL.
JSONType = JSON().with_variant(JSONB(), "postgresql")


def now_ts() -> int:
    return int(time.time())


def new_id() -> str:
    return uuid.uuid4().hex
