"""Signals the adaptive rules look at, observed at primary sign-in and kept in the session.

- ``new_device``: the browser's signed ``idp_device`` cookie (a random id) has not signed in
  as this user before (``devices`` table).
- ``country`` / ``previous_country``: from a header set by a trusted proxy (e.g.
  ``CF-IPCountry``), honoured only when the request comes through one of the ``trusted_proxies``
  (:mod:`idp.proxy`); failing that, the client address in the MaxMind database
  ``policy.geoip_database`` (:mod:`idp.policy.geoip`).
- ``recent_failures``: failed password attempts on the account just before this sign-in.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import asdict
from typing import Any

from flask import Request, current_app

from idp.cookies import host_cookie_name
from idp.crypto import derive_key
from idp.extensions import db, settings
from idp.models import Device, User
from idp.policy import devices
from idp.policy.rules import Signals
from idp.proxy import TRUSTED_KEY

DEVICE_COOKIE = "idp_device"
DEVICE_COOKIE_DAYS = 400  # the longest lifetime browsers honour (RFC 6265bis §5.5)
COOKIE_PURPOSE = "device-cookie"
COUNTRY_PATTERN = re.compile(r"^[A-Z]{2}$")


def _mac(device_id: str) -> str:
    key = derive_key(current_app.config["SECRET_KEY"], COOKIE_PURPOSE)
    return hmac.new(key, device_id.encode(), hashlib.sha256).hexdigest()[:32]


def device_cookie_name() -> str:
    """``idp_device``, as ``__Host-idp_device`` on an https issuer (:mod:`idp.cookies`)."""
    return host_cookie_name(DEVICE_COOKIE, settings().secure_cookies)


def _signed_device_id(raw: str) -> str | None:
    device_id, _, mac = raw.partition(".")
    if not device_id or len(device_id) > 64 or not hmac.compare_digest(mac, _mac(device_id)):
        return None
    return device_id


def device_id_from(request: Request) -> str | None:
    """The device id of a correctly signed cookie, else None.

    Under the plain name too: browsers remembered before the ``__Host-`` prefix was adopted
    keep their device (the value is signed, so the weaker name cannot be forged into one);
    :func:`observe_login` then moves it to the prefixed name.
    """
    name = device_cookie_name()
    raw = request.cookies.get(name) or (
        request.cookies.get(DEVICE_COOKIE, "") if name != DEVICE_COOKIE else "")
    return _signed_device_id(raw or "")


def new_device_cookie() -> tuple[str, str]:
    device_id = secrets.token_urlsafe(24)
    return device_id, f"{device_id}.{_mac(device_id)}"


def country_of(request: Request) -> str | None:
    """The sign-in's country: the trusted proxy's header first (the CDN saw the real client and
    knows better than an address database), else the MaxMind database, else unknown."""
    header = settings().policy.country_header
    if header and request.environ.get(TRUSTED_KEY):
        value = request.headers.get(header, "").strip().upper()
        if COUNTRY_PATTERN.match(value):
            return value
    geoip = current_app.extensions.get("idp.geoip")
    return geoip.country(request.remote_addr) if geoip is not None else None


def observe_login(user: User, request: Request, recent_failures: int
                  ) -> tuple[dict[str, Any], str | None, Device]:
    """Signals of this sign-in, a device cookie value to set when the browser has none, and
    the browser's device row (for :func:`idp.policy.devices.remembered_event`: one read).

    Records the device and the country for the next sign-in (not committed).
    """
    now = int(time.time())
    device_id = device_id_from(request)
    cookie = None
    if device_id is None:
        device_id, cookie = new_device_cookie()
    elif device_cookie_name() not in request.cookies:
        cookie = f"{device_id}.{_mac(device_id)}"  # from the plain name: set the prefixed one
    device = devices.find(user, device_id)
    new_device = device is None
    if device is None:
        device = Device(user_id=user.id, device_id=device_id, created_at=now,
                        label=(request.user_agent.string or "")[:200] or None)
        db.session.add(device)
    device.last_seen_at = now
    country = country_of(request)
    previous = user.last_country
    if country:
        user.last_country = country
    signals = {"new_device": new_device, "country": country, "previous_country": previous,
               "recent_failures": recent_failures, "device_id": device_id}
    return signals, cookie, device


def signals_for(user: User | None, session_signals: dict[str, Any] | None, client_id: str | None,
                ip: str | None, has_factors: bool) -> Signals:
    data = session_signals or {}
    return Signals(
        client_id=client_id, ip=ip, new_device=bool(data.get("new_device")),
        country=data.get("country"), previous_country=data.get("previous_country"),
        recent_failures=int(data.get("recent_failures", 0)),
        user_created_at=user.created_at if user else None, user_has_factors=has_factors,
        logins_without_mfa=user.logins_without_mfa if user else 0,
    )


def as_dict(signals: Signals) -> dict[str, Any]:
    return asdict(signals)
