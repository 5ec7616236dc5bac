"""The relying party as an API client: ``POST /transfers`` at the demo resource server, and
reading its RFC 9470 step-up challenges.

Nothing here touches Flask: the views (``views.py``) keep the pending transfer in the session,
send the browser through the IdP and call :func:`send_transfer` again afterwards.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import requests

HTTP_TIMEOUT = 10
MAX_RECIPIENT_LENGTH = 64
#: Whole units up to 9 digits, optionally 1-2 decimals (the resource server enforces its cap).
AMOUNT_PATTERN = re.compile(r"[0-9]{1,9}(?:\.[0-9]{1,2})?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
#: A pending transfer is resumed after the step-up only if the user returns within this time.
PENDING_TTL = 600

#: How this RP ranks the IdP's acr values (weakest first, as in the IdP's DESIGN §3 ladder).
#: Values it does not know rank 0 and are never taken for "stronger".
ACR_STRENGTH: dict[str, int] = {"aal1": 1, "aal2": 2, "phr": 3, "phrh": 4}

#: Errors of a Bearer challenge after which signing in again can help (RFC 9470 §3,
#: RFC 6750 §3.1: an expired or revoked token).
STEP_UP_ERRORS = frozenset({"insufficient_user_authentication", "invalid_token"})

# RFC 9110 §11.2 challenge syntax: tokens, quoted strings, token68.
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_QUOTED = r'"(?:[^"\\]|\\.)*"'
_PARAM = re.compile(rf"\s*({_TOKEN})\s*=\s*({_TOKEN}|{_QUOTED})\s*(?:,|$)")
_SCHEME = re.compile(rf"\s*({_TOKEN})(?:\s+|\s*,|\s*$)")
_TOKEN68 = re.compile(r"\s*([A-Za-z0-9._~+/-]+=*)\s*(?:,|$)")
_SEPARATOR = re.compile(r"\s*,")


class InvalidTransfer(ValueError):
    """The transfer form is malformed; the message says why."""


@dataclass(frozen=True)
class Transfer:
    """What the user asked to transfer."""

    amount: Decimal
    to: str

    @classmethod
    def from_form(cls, form: Mapping[str, str]) -> Transfer:
        """Parse the home page's transfer form; raises :class:`InvalidTransfer`."""
        amount = form.get("amount", "").strip()
        if not AMOUNT_PATTERN.fullmatch(amount) or Decimal(amount) <= 0:
            raise InvalidTransfer("Enter a positive amount with at most 2 decimals.")
        to = " ".join(form.get("to", "").split())
        if not to or len(to) > MAX_RECIPIENT_LENGTH or _CONTROL.search(to):
            raise InvalidTransfer(
                f"Enter a recipient of 1 to {MAX_RECIPIENT_LENGTH} characters.")
        return cls(Decimal(amount), to)

    def body(self) -> dict[str, Any]:
        """The JSON request body (``amount`` as a JSON number)."""
        amount = self.amount
        number: int | float = int(amount) if amount == amount.to_integral_value() \
            else float(amount)
        return {"amount": number, "to": self.to}

    # -- kept in the session while the user steps up ------------------------------------------

    def to_pending(self) -> dict[str, Any]:
        """A session record of this transfer, with a random id that the sign-in carries."""
        return {"id": secrets.token_urlsafe(16), "amount": str(self.amount), "to": self.to,
                "at": int(time.time())}

    @classmethod
    def from_pending(cls, record: Any, resume_id: str | None,
                     now: float | None = None) -> Transfer | None:
        """The transfer of a session record, if it is the one ``resume_id`` names and still
        fresh; ``None`` otherwise."""
        now = time.time() if now is None else now
        if not isinstance(record, dict) or not resume_id or record.get("id") != resume_id:
            return None
        if not isinstance(record.get("at"), int) or now - record["at"] > PENDING_TTL:
            return None
        try:
            return cls.from_form({"amount": str(record.get("amount", "")),
                                  "to": str(record.get("to", ""))})
        except InvalidTransfer:
            return None


@dataclass(frozen=True)
class Challenge:
    """A Bearer challenge from ``WWW-Authenticate`` (RFC 6750 §3, RFC 9470 §3)."""

    error: str | None
    description: str | None = None
    acr_values: str | None = None
    max_age: int | None = None

    @classmethod
    def from_header(cls, header: str) -> Challenge | None:
        """The first Bearer challenge of a ``WWW-Authenticate`` value, or ``None``."""
        for scheme, params in parse_www_authenticate(header):
            if scheme != "bearer":
                continue
            max_age = params.get("max_age", "")
            acr_values = " ".join(params.get("acr_values", "").split())
            return cls(error=params.get("error"), description=params.get("error_description"),
                       acr_values=acr_values or None,
                       max_age=int(max_age) if re.fullmatch(r"[0-9]{1,9}", max_age) else None)
        return None

    def authorize_params(self, preferred_acr_values: str = "") -> dict[str, str]:
        """The authorize parameters that answer this challenge.

        ``acr_values`` are the challenge's, preceded by those of the user's own preference
        (``preferred_acr_values``, from the sign-in form) that rank above all of them — any
        value in the list then satisfies the resource server, and the IdP still tries the
        stronger one first. Without ``acr_values`` in the challenge (an expired token) the
        preference is sent as it is. ``max_age`` is the challenge's.
        """
        params: dict[str, str] = {}
        wanted = (self.acr_values or "").split()
        preferred = preferred_acr_values.split()
        if wanted:
            known = all(value in ACR_STRENGTH for value in wanted)
            floor = max(ACR_STRENGTH.get(value, 0) for value in wanted)
            stronger = [value for value in preferred
                        if known and ACR_STRENGTH.get(value, 0) > floor and value not in wanted]
            params["acr_values"] = " ".join(stronger + wanted)
        elif preferred:
            params["acr_values"] = " ".join(preferred)
        if self.max_age is not None:
            params["max_age"] = str(self.max_age)
        return params


def parse_www_authenticate(header: str) -> list[tuple[str, dict[str, str]]]:
    """``[(scheme, params)]`` of a ``WWW-Authenticate`` value (RFC 9110 §11.2, §11.6.1).

    Schemes and parameter names are lower-cased; quoted values are unescaped. Parsing stops at
    the first thing that is neither a parameter nor a new challenge.
    """
    challenges: list[tuple[str, dict[str, str]]] = []
    position = 0
    while position < len(header):
        separator = _SEPARATOR.match(header, position)
        if separator:
            position = separator.end()
            continue
        param = _PARAM.match(header, position) if challenges else None
        if param:
            name, value = param.group(1).lower(), param.group(2)
            if value.startswith('"'):
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            challenges[-1][1].setdefault(name, value)
            position = param.end()
            continue
        scheme = _SCHEME.match(header, position)
        if not scheme:
            break
        challenges.append((scheme.group(1).lower(), {}))
        position = scheme.end()
        token68 = _TOKEN68.match(header, position)
        if token68 and not _PARAM.match(header, position):
            position = token68.end()
    return challenges


@dataclass(frozen=True)
class Outcome:
    """What became of one ``POST /transfers``: a receipt, a challenge to answer by signing in
    again, or an error to show (with the HTTP status this RP should answer)."""

    receipt: dict[str, Any] | None = None
    challenge: Challenge | None = None
    error: str | None = None
    status: int = 200


def send_transfer(resource_url: str, access_token: str, transfer: Transfer,
                  http: Any = requests) -> Outcome:
    """Call the resource server with the user's access token."""
    try:
        response = http.post(f"{resource_url}/transfers", json=transfer.body(),
                             headers={"Authorization": f"Bearer {access_token}"},
                             timeout=HTTP_TIMEOUT)
    except requests.RequestException as exc:
        return Outcome(error=f"The resource server at {resource_url} is unreachable: {exc}",
                       status=502)
    body = _json(response)
    if response.status_code == 200 and body.get("status") == "done":
        return Outcome(receipt=body)
    if response.status_code == 401:
        challenge = Challenge.from_header(response.headers.get("WWW-Authenticate", ""))
        if challenge is not None and challenge.error in STEP_UP_ERRORS:
            return Outcome(challenge=challenge)
    description = body.get("error_description") or body.get("error")
    if response.status_code == 400:
        return Outcome(error=f"The resource server refused the transfer: {description}",
                       status=400)
    return Outcome(error=f"The resource server answered HTTP {response.status_code}"
                         + (f": {description}" if description else "."), status=502)


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
