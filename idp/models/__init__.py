"""SQLAlchemy 2.0 models. Import from here: ``from idp.models import User, Client``."""

from idp.models.audit import AuditEvent
from idp.models.client import Client, Consent
from idp.models.credential import Credential, RecoveryCode
from idp.models.device import Device
from idp.models.grant import AuthorizationCode, Token
from idp.models.key import SigningKey
from idp.models.user import User

__all__ = ["AuditEvent", "AuthorizationCode", "Client", "Consent", "Credential", "Device",
           "RecoveryCode",
           "SigningKey", "Token", "User"]
