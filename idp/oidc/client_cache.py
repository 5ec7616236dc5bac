"""A per-process cache of client registrations (benchmarks/README.md, session 3).

Every token, introspection and revocation request authenticates its client, and every
authorization request loads one: one ``SELECT … FROM clients`` each. Registrations change
rarely, so each process keeps an immutable snapshot (:class:`ClientRecord`) of the rows it read
for ``oidc.client_cache_ttl`` seconds (0 disables the cache).

Staleness is bounded two ways:

- **In the process that changes a client** (admin API, CLI, tests), session hooks drop the
  client's entry when a flush touches a ``Client`` or a bulk UPDATE/DELETE names the table,
  and again when that transaction ends — so a disabled, deleted or re-keyed client is refused
  by that process at once. A load that started before an invalidation never stores what it
  read (the cache's generation moved), so a concurrent reader cannot put the old row back.
- **In every other process** (other workers, replicas, a CLI run against a live server) by the
  TTL: they see the change at most ``client_cache_ttl`` seconds later.

Only rows that exist are cached (an unknown id is looked up each time), at most
:data:`MAX_ENTRIES` of them, so presenting random client ids cannot grow the cache.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from typing import Any

from flask import current_app, has_app_context
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction

from idp.database import bulk_changes, listen_on_every_session, pending_of
from idp.models import Client

#: Entries kept per process (least recently stored dropped first).
MAX_ENTRIES = 1024
#: ``Session.info`` key of the client ids a transaction changed.
_CHANGED = "idp.changed_clients"
#: Stands for "every client" in the changed set (a bulk statement).
_ALL = "*"


@dataclass(frozen=True)
class ClientRecord:
    """An immutable snapshot of one ``clients`` row: what the OAuth code reads, shared safely
    between threads and requests (never an ORM object, which belongs to one session)."""

    client_id: str
    secret_hash: str | None
    name: str
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...]
    grant_types: tuple[str, ...]
    scope: str
    token_endpoint_auth_method: str
    first_party: bool
    minimum_acr: str | None
    default_acr_values: tuple[str, ...]
    default_max_age: int | None
    require_acr_values: bool
    id_token_signed_response_alg: str | None
    logo_uri: str | None
    disabled: bool
    created_at: int

    @property
    def is_public(self) -> bool:
        return self.token_endpoint_auth_method == "none"

    @classmethod
    def of(cls, model: Client) -> ClientRecord:
        values: dict[str, Any] = {}
        for field in fields(cls):
            value = getattr(model, field.name)
            values[field.name] = tuple(value or ()) if isinstance(value, list) else value
        return cls(**values)


class ClientCache:
    """Client records by id, each valid for ``ttl`` seconds of ``clock`` (thread-safe)."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic,
                 max_entries: int = MAX_ENTRIES) -> None:
        self.ttl = ttl
        self._clock = clock
        self._max = max_entries
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[float, ClientRecord]] = OrderedDict()
        self._generation = 0

    @property
    def enabled(self) -> bool:
        return self.ttl > 0

    def generation(self) -> int:
        """Read before loading a row; pass to :meth:`put` so that a load overtaken by an
        invalidation does not store what it read."""
        return self._generation

    def get(self, client_id: str) -> ClientRecord | None:
        """The cached record, or None when absent or expired."""
        with self._lock:
            entry = self._entries.get(client_id)
            if entry is None:
                return None
            if self._clock() >= entry[0]:
                del self._entries[client_id]
                return None
            return entry[1]

    def put(self, record: ClientRecord, generation: int) -> None:
        if not self.enabled:
            return
        with self._lock:
            if generation != self._generation:
                return
            self._entries[record.client_id] = (self._clock() + self.ttl, record)
            self._entries.move_to_end(record.client_id)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def invalidate(self, client_ids: Iterable[str] = (_ALL,)) -> None:
        """Drop these clients' entries (``"*"``: all of them)."""
        with self._lock:
            self._generation += 1
            ids = set(client_ids)
            if _ALL in ids:
                self._entries.clear()
            for client_id in ids:
                self._entries.pop(client_id, None)


def current() -> ClientCache | None:
    """The current app's cache (None outside an app, or before ``init_app``)."""
    return current_app.extensions.get("idp.client_cache") if has_app_context() else None


def changed_in(session: Session) -> bool:
    """Whether ``session`` has changed a client in its open transaction (flushed or not):
    what it reads then is not committed, so it must not be cached."""
    return bool(session.info.get(_CHANGED)) or bool(pending_of(session, Client))


# -- invalidation hooks ---------------------------------------------------------------------

def _drop(session: Session, client_ids: set[str]) -> None:
    if not client_ids:
        return
    session.info.setdefault(_CHANGED, set()).update(client_ids)
    cache = current()
    if cache is not None:
        cache.invalidate(client_ids)


def _flushed(session: Session, *_: Any) -> None:
    _drop(session, {o.client_id for o in pending_of(session, Client)})


def _bulk(state: ORMExecuteState) -> None:
    if bulk_changes(state, Client):
        _drop(state.session, {_ALL})


def _ended(session: Session, transaction: SessionTransaction) -> None:
    # Again at the end (commit or rollback): a reader that loaded the old row between the
    # flush and the commit may have stored it, and other sessions only see the change now.
    if transaction.parent is None:
        changed = session.info.pop(_CHANGED, None)
        cache = current()
        if changed and cache is not None:
            cache.invalidate(changed)


_HOOKS = (("before_flush", _flushed), ("do_orm_execute", _bulk),
          ("after_transaction_end", _ended))


def install() -> None:
    """Hook invalidation into every SQLAlchemy session (once per process; from ``init_app``)."""
    listen_on_every_session(_HOOKS)


__all__ = ["ClientCache", "ClientRecord", "changed_in", "current", "install"]
