"""The SSO browser session: a random id in a cookie, the state in the store.

Flask's ``session`` is this server-side session (a :class:`flask.sessions.SessionInterface`),
so Flask-WTF's CSRF token lives in it too. It holds the signed-in user, the authentication
events (``idp.assurance.AuthEvent`` dicts) and a stable OIDC ``sid``. Every change of
authentication state calls :func:`rotate`, which issues a fresh id and deletes the old one
(session fixation, OWASP ASVS 3.2.1; DESIGN §4.8).
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from flask import Flask, Request, Response
from flask.sessions import SessionInterface, SessionMixin
from werkzeug.datastructures import CallbackDict

from idp.assurance import AuthEvent
from idp.cookies import host_cookie_name
from idp.store import Store, StoreUnavailable

SESSION_KEY_PREFIX = "session:"
#: Per user: sessions signed in at or before this time (epoch seconds) are no longer valid
#: (an administrator's MFA reset or disable, :func:`revoke_user_sessions`).
NOT_BEFORE_PREFIX = "sessions-not-before:"
#: Refresh the stored copy (idle timer) at most this often when nothing else changed.
TOUCH_INTERVAL_SECONDS = 60
SESSION_ID_BYTES = 32


class ServerSession(CallbackDict, SessionMixin):
    """Session data plus bookkeeping: the id it was loaded under and whether to rotate it."""

    def __init__(self, initial: dict[str, Any] | None = None, sid: str | None = None) -> None:
        def on_update(_: Any) -> None:
            self.modified = True

        super().__init__(initial or {}, on_update)
        self.sid = sid
        #: ``_touched`` as stored before this request (set by open_session).
        self.previous_activity: int | None = None
        self.modified = False
        self.rotate_requested = False
        self.destroy_requested = False


class UnavailableSession(ServerSession):
    """Stands in when the store is down: reading it fails closed with StoreUnavailable."""

    def _fail(self, *args: Any, **kwargs: Any) -> Any:
        raise StoreUnavailable("session store unavailable")

    __getitem__ = get = __contains__ = __setitem__ = setdefault = pop = _fail  # type: ignore[assignment]


class StoreSessionInterface(SessionInterface):
    def __init__(self, store: Store, cookie_name: str, absolute_timeout: int,
                 idle_timeout: int, secure: bool) -> None:
        self.store = store
        # __Host-idp_session on an https issuer (idp.cookies).
        self.cookie_name = host_cookie_name(cookie_name, secure)
        self.absolute_timeout = absolute_timeout
        self.idle_timeout = idle_timeout
        self.secure = secure

    def open_session(self, app: Flask, request: Request) -> ServerSession:
        sid = request.cookies.get(self.cookie_name)
        if not sid or len(sid) > 100:
            return ServerSession()
        try:
            data = self.store.get(SESSION_KEY_PREFIX + sid)
        except StoreUnavailable:
            return UnavailableSession(sid=sid)
        now = int(time.time())
        if not data or now - int(data.get("_created", now)) > self.absolute_timeout:
            return ServerSession()
        if data.get("user_id"):
            try:
                cutoff = self.store.get(NOT_BEFORE_PREFIX + str(data["user_id"]))
                if cutoff is not None and int(data.get("_created", 0)) <= int(cutoff):
                    self.store.delete(SESSION_KEY_PREFIX + sid)
                    return ServerSession()
            except StoreUnavailable:
                return UnavailableSession(sid=sid)
        session = ServerSession(data, sid=sid)
        # Refresh the idle timer on use; at most every TOUCH_INTERVAL_SECONDS (or half the idle
        # timeout when that is shorter) to spare the store a write per request.
        interval = min(TOUCH_INTERVAL_SECONDS, max(1, self.idle_timeout // 2))
        # The levels' idle timeouts measure the gap before *this* request (DESIGN §3).
        session.previous_activity = int(data.get("_touched", now))
        if now - int(data.get("_touched", 0)) >= interval:
            session["_touched"] = now
        return session

    def save_session(self, app: Flask, session: ServerSession, response: Response) -> None:  # type: ignore[override]
        if isinstance(session, UnavailableSession):
            return
        cookie_kwargs = {"path": "/", "httponly": True, "secure": self.secure, "samesite": "Lax"}
        if session.destroy_requested:
            if session.sid:
                self.store.delete(SESSION_KEY_PREFIX + session.sid)
            response.delete_cookie(self.cookie_name, **cookie_kwargs)
            return
        if not session.modified and not session.rotate_requested:
            return
        if not dict(session):
            return
        now = int(time.time())
        session.setdefault("_created", now)
        session["_touched"] = now
        if session.rotate_requested or not session.sid:
            if session.sid:
                self.store.delete(SESSION_KEY_PREFIX + session.sid)
            session.sid = secrets.token_urlsafe(SESSION_ID_BYTES)
        remaining = self.absolute_timeout - (now - int(session["_created"]))
        ttl = max(1, min(self.idle_timeout, remaining))
        self.store.put(SESSION_KEY_PREFIX + session.sid, dict(session), ttl)
        response.set_cookie(self.cookie_name, session.sid, **cookie_kwargs)
        response.vary.add("Cookie")


# -- the authentication state held in the session --------------------------------------------

def current_events(session: SessionMixin) -> list[AuthEvent]:
    return [AuthEvent.from_dict(e) for e in session.get("events", [])]


def signed_in_user_id(session: SessionMixin) -> str | None:
    return session.get("user_id")


def last_active(session: SessionMixin) -> int | None:
    """When the session was last used before this request (to within the touch interval)."""
    previous = getattr(session, "previous_activity", None)
    if previous is not None:
        return int(previous)
    touched = session.get("_touched")
    return int(touched) if touched is not None else None


def record_login(session: ServerSession, user_id: str, event: AuthEvent) -> None:
    """A primary authentication: replaces any previous user and events; rotates the id."""
    keep_csrf = session.get("csrf_token")
    session.clear()
    if keep_csrf:
        session["csrf_token"] = keep_csrf
    session["user_id"] = user_id
    session["events"] = [event.to_dict()]
    session["oidc_sid"] = secrets.token_urlsafe(16)
    session["_created"] = event.at
    session.rotate_requested = True


def record_event(session: ServerSession, event: AuthEvent) -> None:
    """An additional proof for the signed-in user (step-up); rotates the id."""
    events = [e for e in session.get("events", []) if e.get("method") != event.method]
    events.append(event.to_dict())
    session["events"] = events
    session.rotate_requested = True


def rotate(session: ServerSession) -> None:
    """The authentication state changed in another way (a factor removed): new id."""
    session.rotate_requested = True


def revoke_user_sessions(store: Store, user_id: str, keep_for: int,
                         now: int | None = None) -> None:
    """End every session ``user_id`` has, in every browser: sessions are stored under random
    ids with no index by user, so a per-user "not before" time is recorded instead and
    checked when a session is opened (a session signed in during the same second is ended
    too). ``keep_for`` is the longest a session can live (``session.absolute_timeout``)."""
    now = int(time.time()) if now is None else now
    store.put(NOT_BEFORE_PREFIX + user_id, now, max(1, keep_for))


def end(session: ServerSession) -> None:
    """Sign out: the stored session and the cookie are removed."""
    session.clear()
    session.destroy_requested = True
