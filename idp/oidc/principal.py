"""The authenticated subject handed to authlib: the user plus the authentication snapshot.

authlib passes "the user" to its token generators and ID-token hooks; giving it a Principal
carries acr/amr/auth_time/sid from the code (or refresh token) into every token without
reading the live session (DESIGN §4.6).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Row

from idp.models import User


@dataclass(frozen=True)
class AuthContext:
    acr: str | None
    amr: tuple[str, ...]
    auth_time: int | None
    sid: str | None
    #: When each satisfied level stops holding (``Assurance.expires``), for refresh.
    acr_expires: dict[str, int] = field(default_factory=dict)


class Principal:
    """``claims_request`` is the authorization request's ``claims`` parameter, if any.

    ``user`` is the ORM object at ``/authorize`` and the read-only ``users`` row at the token
    endpoint (``statements.user_row``); either has the columns as attributes."""

    def __init__(self, user: User | Row[Any], context: AuthContext,
                 claims_request: dict | None = None) -> None:
        self.user = user
        self.context = context
        self.claims_request = claims_request

    def get_user_id(self) -> str:
        return self.user.id
