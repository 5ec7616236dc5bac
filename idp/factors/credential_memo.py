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
from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session

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
    return any(isinstance(o, Credential) for o in (*session.new, *session.dirty, *session.deleted))


def _forget(*_: Any) -> None:
    if has_app_context():
        g.pop(_MEMO, None)


def _forget_if_flushed(session: Session, *_: Any) -> None:
    if pending(session):
        _forget()


def _forget_if_bulk_changed(state: ORMExecuteState) -> None:
    if (state.is_update or state.is_delete) and any(
            m.class_ is Credential for m in state.all_mappers):
        _forget()


_HOOKS = (("before_flush", _forget_if_flushed), ("do_orm_execute", _forget_if_bulk_changed),
          # Commit, rollback and close (the objects are expired or detached afterwards).
          ("after_transaction_end", _forget))


def install() -> None:
    """Hook the memo's invalidation into every SQLAlchemy session (once per process; called
    from ``create_app``)."""
    for name, hook in _HOOKS:
        if not event.contains(Session, name, hook):
            event.listen(Session, name, hook)
