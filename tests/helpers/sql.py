"""Watching the SQL an app runs (round-trip tests: a hot path that must not read a table)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from sqlalchemy import event

from idp.extensions import db


@contextmanager
def _watched(app: Any, keep: Callable[[str], bool]) -> Iterator[list[str]]:
    """The statements ``app``'s engine runs inside the block for which ``keep`` is true."""
    seen: list[str] = []
    with app.app_context():
        engine = db.engine

    def on_execute(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if keep(statement):
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)


def selects_from(app: Any, table: str) -> AbstractContextManager[list[str]]:
    """The ``SELECT … FROM <table>`` statements ``app``'s engine runs inside the block."""
    return _watched(app, lambda statement: statement.lstrip().upper().startswith("SELECT")
                    and f"FROM {table}" in statement)


def statements_run(app: Any) -> AbstractContextManager[list[str]]:
    """Every statement ``app``'s engine runs inside the block, as sent."""
    return _watched(app, lambda _statement: True)
