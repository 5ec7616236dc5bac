"""Email delivery over SMTP (``delivery.email: smtp``; DESIGN §6), with smtplib.

Bounded: every socket operation waits at most ``timeout`` seconds. With ``starttls`` on, a
server that does not offer STARTTLS is a failure, never a silent fall-back to plain text.
Every failure becomes :class:`~idp.delivery.DeliveryFailed` with a reason that names the
kind of failure only: server replies and the message itself stay out of it (and so out of
logs).
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from idp.delivery import DeliveryFailed


@dataclass(frozen=True)
class SmtpConfig:
    """Where and how to hand messages over (``delivery.smtp`` in the settings)."""

    host: str
    port: int
    sender: str
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    timeout: float = 10.0

    @classmethod
    def from_settings(cls, section: Mapping[str, Any], default_sender: str) -> SmtpConfig:
        return cls(host=str(section["host"]), port=int(section["port"]),
                   sender=str(section.get("from") or default_sender),
                   username=section.get("username"), password=section.get("password"),
                   starttls=bool(section.get("starttls")),
                   timeout=float(section["timeout"]))


def build_message(config: SmtpConfig, recipient: str, subject: str, body: str) -> EmailMessage:
    """A plain-text message. Raises DeliveryFailed for header values that are not one line
    (header injection)."""
    message = EmailMessage()
    try:
        message["From"] = config.sender
        message["To"] = recipient
        message["Subject"] = subject
    except ValueError:
        raise DeliveryFailed("invalid email header value") from None
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=config.sender.rpartition("@")[2] or None)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to this
    message.set_content(body)
    return message


def send(config: SmtpConfig, recipient: str, subject: str, body: str,
         ssl_context: ssl.SSLContext | None = None) -> None:
    """Hand one message to the SMTP server. Raises DeliveryFailed.

    ``ssl_context`` defaults to the system trust store with hostname checking; tests pass
    one that trusts their own certificate.
    """
    message = build_message(config, recipient, subject, body)
    try:
        with smtplib.SMTP(config.host, config.port, timeout=config.timeout) as smtp:
            if config.starttls:
                smtp.starttls(context=ssl_context or ssl.create_default_context())
            if config.username:
                smtp.login(config.username, config.password or "")
            refused = smtp.send_message(message)
    except smtplib.SMTPNotSupportedError:
        raise DeliveryFailed("SMTP server does not support a required extension "
                             "(STARTTLS or AUTH)") from None
    except smtplib.SMTPAuthenticationError:
        raise DeliveryFailed("SMTP authentication failed") from None
    except smtplib.SMTPRecipientsRefused:
        raise DeliveryFailed("SMTP server refused the recipient") from None
    except smtplib.SMTPException as exc:
        raise DeliveryFailed(f"SMTP error ({type(exc).__name__})") from None
    except TimeoutError:
        raise DeliveryFailed("SMTP server timed out") from None
    except OSError as exc:  # refused, unreachable, TLS handshake failures (ssl.SSLError)
        raise DeliveryFailed(f"SMTP server unreachable ({type(exc).__name__})") from None
    if refused:
        raise DeliveryFailed("SMTP server refused the recipient")
