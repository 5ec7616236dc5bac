"""Server-side storage of sign-ins, so that tokens never travel in the browser's cookie.

Flask's cookie session is signed, not encrypted: anything put there can be read by whoever holds
the cookie, and JWT access and ID tokens would push it past the 4 KB cookie limit anyway. The
cookie therefore only carries a random handle; the tokens and the validated claims live here.

This store is in-process memory: good for a single-process demo, lost on restart.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

DEFAULT_TTL = 12 * 3600
DEFAULT_MAX_ENTRIES = 1000


@dataclass(frozen=True)
class SignIn:
    """One completed authorization code flow: the tokens and what was learnt from them."""

    id_token: str
    claims: dict[str, Any]
    access_token: str | None = None
    refresh_token: str | None = None
    expires_at: int | None = None
    scope: str | None = None
    userinfo: dict[str, Any] | None = None
    userinfo_error: str | None = None
    #: The extra authorize parameters sent (acr_values, max_age, prompt).
    requested: dict[str, str] = field(default_factory=dict)


class SignInStore:
    """A bounded, expiring, thread-safe map from random handles to :class:`SignIn` records."""

    def __init__(self, ttl: int = DEFAULT_TTL, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self._ttl = ttl
        self._max_entries = max_entries
        self._entries: OrderedDict[str, tuple[float, SignIn]] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, sign_in: SignIn) -> str:
        """Store ``sign_in`` and return its new handle; the oldest entries go when full."""
        handle = secrets.token_urlsafe(32)
        with self._lock:
            self._entries[handle] = (time.monotonic() + self._ttl, sign_in)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
        return handle

    def get(self, handle: str | None) -> SignIn | None:
        """The record for ``handle``, or ``None`` when unknown or expired."""
        if not handle:
            return None
        with self._lock:
            entry = self._entries.get(handle)
            if entry is None:
                return None
            expires, sign_in = entry
            if expires < time.monotonic():
                del self._entries[handle]
                return None
            return sign_in

    def pop(self, handle: str | None) -> SignIn | None:
        """Remove and return the record for ``handle`` (``None`` when unknown or expired)."""
        sign_in = self.get(handle)
        if handle:
            with self._lock:
                self._entries.pop(handle, None)
        return sign_in
