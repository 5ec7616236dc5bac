"""A request's memo of ``MfaService.credentials`` results (benchmarks/README.md, session 2).

One authorization request asks for a user's credentials several times (reachability with and
without enrolling, policy, options: ~4 identical SELECTs per request). The memo lives in
``flask.g`` (one request or CLI command) and is dropped by session hooks whenever a credential
may have changed: a flush touching one, a bulk UPDATE/DELETE of the table, and the end of every
transaction (commit, rollback, close: another request may have changed rows since).
"""

from __future__ import annotations

from typing import Any

from flask import g, has_app_context
from sqlalchemy.orm import ORMExecuteState, Session

from idp.database import bulk_changes, listen_on_every_session, pending_of
from idp.models import Credential

#: ``flask.g`` attribute holding this request's credential lists.
_MEMO = "idp_credentials_memo"

Memo = dict[tuple[str, bool, int], list[Credential]]


def memo() -> Memo | None:
    """This request's memo, or None outside an app context."""
    if not has_app_context():
        return None
    found = g.get(_MEMO)
    if found is None:
        found = {}
        setattr(g, _MEMO, found)
    return found


def pending(session: Session) -> bool:
    """Whether the session holds credential changes not yet flushed (a query would flush them
    and so answer differently from the memo)."""
    return bool(pending_of(session, Credential))


def _forget(*_: Any) -> None:
    if has_app_context():
        g.pop(_MEMO, None)


def _forget_if_flushed(session: Session, *_: Any) -> None:
    if pending(session):
        _forget()


def _forget_if_bulk_changed(state: ORMExecuteState) -> None:
    if bulk_changes(state, Credential):
        _forget()


_HOOKS = (("before_flush", _forget_if_flushed), ("do_orm_execute", _forget_if_bulk_changed),
          # Commit, rollback and close (the objects are expired or detached afterwards).
          ("after_transaction_end", _forget))


def install() -> None:
    """Hook the memo's invalidation into every SQLAlchemy session (once per process; called
    from ``create_app``)."""
    listen_on_every_session(_HOOKS)
