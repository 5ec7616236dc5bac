"""Admin API, ``/api/v1/admin/…`` — for operators, with a client-credentials token holding
``idp:admin`` (``idp.api.auth``).

Users (create, get, list, disable/enable, delete), their factors (list, remove, reset all),
their remembered devices (list, forget), clients (create, get, list, update, rotate secret,
delete) and the audit trail (query). Every call is audited as ``admin.api_call`` with the
calling client as actor (``client:<client_id>``), whatever its outcome; changes are audited
under their own event type as well (``mfa.factor_removed``, ``mfa.factor_admin_reset``, …).

Lists are newest first with stable cursor pagination: users by ``(created_at, id)``, audit
events by ``(at, id)``; the cursor is opaque (it encodes the last row's key), so rows written
while a client pages never shift a page.
"""

from idp.api.admin import audit_trail, clients, factors, users  # noqa: F401  (routes register on import)
from idp.api.admin.common import bp

__all__ = ["bp"]
