"""Relying parties (OAuth clients) and the consents users gave them."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from idp.extensions import db
from idp.models._types import JSONType, new_id, now_ts


class Client(db.Model):
    """A registered client. The secret is stored only as a hash (``idp/oidc/clients.py``)."""

    __tablename__ = "clients"

    client_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    secret_hash: Mapped[str | None] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(200))
    redirect_uris: Mapped[list] = mapped_column(JSONType, default=list)
    post_logout_redirect_uris: Mapped[list] = mapped_column(JSONType, default=list)
    grant_types: Mapped[list] = mapped_column(JSONType, default=list)
    scope: Mapped[str] = mapped_column(Text, default="openid")
    token_endpoint_auth_method: Mapped[str] = mapped_column(String(40))
    first_party: Mapped[bool] = mapped_column(Boolean, default=False)
    # Step-up settings (DESIGN §4); used by the authorization pipeline.
    minimum_acr: Mapped[str | None] = mapped_column(String(200))
    default_acr_values: Mapped[list] = mapped_column(JSONType, default=list)
    default_max_age: Mapped[int | None] = mapped_column(Integer)
    require_acr_values: Mapped[bool] = mapped_column(Boolean, default=False)
    id_token_signed_response_alg: Mapped[str] = mapped_column(String(10), default="RS256")
    logo_uri: Mapped[str | None] = mapped_column(String(500))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[int] = mapped_column(BigInteger, default=now_ts)

    @property
    def is_public(self) -> bool:
        return self.token_endpoint_auth_method == "none"

    def __repr__(self) -> str:
        return f"<Client {self.client_id}>"


class Consent(db.Model):
    """Scopes a user approved for a client (skipped for first-party clients), and the claims
    asked for by name (OIDC Core §5.5) beyond those scopes that the user released
    (``claims``) or declined (``rejected_claims``; remembered so they are not asked again)."""

    __tablename__ = "consents"
    __table_args__ = (UniqueConstraint("user_id", "client_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.client_id", ondelete="CASCADE"))
    scope: Mapped[str] = mapped_column(Text)
    claims: Mapped[list | None] = mapped_column(JSONType, default=list)
    rejected_claims: Mapped[list | None] = mapped_column(JSONType, default=list)
    granted_at: Mapped[int] = mapped_column(BigInteger, default=now_ts)
