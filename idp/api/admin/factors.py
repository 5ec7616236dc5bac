"""Admin API: a user's factors (list, remove, reset all) and remembered devices (list,
forget)."""

from __future__ import annotations

from typing import Any

from flask import Response
from sqlalchemy import delete, select

from idp import audit
from idp.api.aal import api_type
from idp.api.admin.common import (
    EMPTY,
    admin_of_request,
    bp,
    end_user_sessions,
    json_response,
    no_content,
    user_or_404,
)
from idp.api.errors import NotFound
from idp.api.validation import (
    parse_body,
    path_id,
)
from idp.extensions import db
from idp.factors.service import MfaService
from idp.models import Credential, Device, RecoveryCode
from idp.oidc.tokens import revoke_user_tokens
from idp.policy import devices

# -- a user's factors and devices -----------------------------------------------------------

def factor_json(credential: Credential) -> dict[str, Any]:
    return {"id": credential.id, "type": api_type(credential.method),
            "friendly_name": credential.name, "status": credential.status,
            "created_at": credential.created_at, "last_used_at": credential.last_used_at}


@bp.get("/users/<user_id>/factors")
def list_factors(user_id: str) -> Response:
    user = user_or_404(user_id)
    return json_response({"data": [factor_json(c) for c in
                           MfaService().credentials(user, verified_only=False)]})


@bp.delete("/users/<user_id>/factors/<factor_id>")
def remove_factor(user_id: str, factor_id: str) -> Response:
    """Audited as ``mfa.factor_removed`` with the admin client as actor."""
    parse_body(EMPTY)
    user = user_or_404(user_id)
    service = MfaService()
    credential = service.credential(user, path_id(factor_id, what="factor"))
    service.remove(user, credential, actor=admin_of_request().actor)
    return no_content()


@bp.post("/users/<user_id>/mfa/reset")
def reset_mfa(user_id: str) -> Response:
    """Every factor and recovery code removed, remembered devices forgotten (they stand in for
    a second factor), every token revoked (refresh tokens included) and every session ended;
    audited as ``mfa.factor_admin_reset``."""
    parse_body(EMPTY)
    caller = admin_of_request()
    user = user_or_404(user_id)
    factors = list(db.session.scalars(select(Credential).where(Credential.user_id == user.id)))
    codes = db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    db.session.execute(delete(Credential).where(Credential.user_id == user.id))
    tokens_revoked = revoke_user_tokens(user.id)
    db.session.commit()
    forgotten = devices.remembered(user)
    for device in forgotten:
        devices.forget(device, actor=caller.actor)
    end_user_sessions(user)
    result = {"user_id": user.id, "factors_removed": len(factors),
              "recovery_codes_removed": int(codes.rowcount or 0),
              "devices_forgotten": len(forgotten), "tokens_revoked": tokens_revoked,
              "sessions_revoked": True}
    audit.record("mfa.factor_admin_reset", user_id=user.id, client_id=caller.client.client_id,
                 actor=caller.actor, factor_ids=[f.id for f in factors],
                 **{k: v for k, v in result.items() if k != "user_id"})
    return json_response(result)


def device_json(device: Device) -> dict[str, Any]:
    return {"id": device.id, "label": device.label, "created_at": device.created_at,
            "last_seen_at": device.last_seen_at, "remembered_until": device.remembered_until}


@bp.get("/users/<user_id>/devices")
def list_devices(user_id: str) -> Response:
    """The user's remembered devices (those that stand in for a second factor)."""
    remembered = devices.remembered(user_or_404(user_id))
    return json_response({"data": [device_json(d) for d in remembered]})


@bp.delete("/users/<user_id>/devices/<device_id>")
def forget_device(user_id: str, device_id: str) -> Response:
    parse_body(EMPTY)
    user = user_or_404(user_id)
    device = db.session.get(Device, path_id(device_id, what="device"))
    if device is None or device.user_id != user.id or device not in devices.remembered(user):
        raise NotFound("No such remembered device.")
    devices.forget(device, actor=admin_of_request().actor)
    return no_content()
