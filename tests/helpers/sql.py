"""Watching the SQL an app runs (round-trip tests: a hot path that must not read a table)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from idp.extensions import db


@contextmanager
def selects_from(app: Any, table: str) -> Iterator[list[str]]:
    """The ``SELECT … FROM <table>`` statements ``app``'s engine runs inside the block."""
    seen: list[str] = []
    with app.app_context():
        engine = db.engine

    def on_execute(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and f"FROM {table}" in statement:
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)


@contextmanager
def statements_run(app: Any) -> Iterator[list[str]]:
    """Every statement ``app``'s engine runs inside the block, as sent."""
    seen: list[str] = []
    with app.app_context():
        engine = db.engine

    def on_execute(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
