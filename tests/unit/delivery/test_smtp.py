"""idp.delivery.smtp against a real SMTP server (aiosmtpd) on a free loopback port
(DESIGN §6): the message arrives with the code; STARTTLS and AUTH when configured, never a
silent plain-text fall-back; a server that is down becomes DeliveryFailed."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from email import message_from_bytes
from email.policy import default as default_policy

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from idp.delivery import DeliveryFailed
from idp.delivery.smtp import SmtpConfig, build_message, send
from tests.conftest import free_port

BODY = "123456 is your StepUp IdP verification code."
SUBJECT = "StepUp IdP verification code"
TO = "alice@example.test"


class Recorder:
    def __init__(self) -> None:
        self.envelopes: list = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 OK"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == b"idp" \
        and auth_data.password == b"mail-password"
    return AuthResult(success=ok, handled=False)


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1: (server context, client context)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(cert_file))
    return server, client


def start(recorder: Recorder, **kw) -> tuple[Controller, int]:
    port = free_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=port, **kw)
    controller.start()
    return controller, port


@pytest.fixture
def recorder():
    return Recorder()


@pytest.fixture
def plain_server(recorder):
    controller, port = start(recorder)
    yield port
    controller.stop()


def config(port: int, **kw) -> SmtpConfig:
    return SmtpConfig(host="127.0.0.1", port=port, sender="no-reply@idp.example.test",
                      timeout=5.0, **kw)


def test_message_arrives_with_the_code(plain_server, recorder):
    send(config(plain_server), TO, SUBJECT, BODY)

    [envelope] = recorder.envelopes
    assert envelope.mail_from == "no-reply@idp.example.test"
    assert envelope.rcpt_tos == [TO]
    received = message_from_bytes(envelope.content, policy=default_policy)
    assert received["To"] == TO
    assert received["Subject"] == SUBJECT
    assert received["Message-ID"] and received["Date"]
    assert received.get_content().strip() == BODY


def test_starttls_and_login(tls, recorder):
    server_context, client_context = tls
    controller, port = start(recorder, tls_context=server_context, require_starttls=True,
                             authenticator=authenticator, auth_require_tls=True)
    try:
        send(config(port, starttls=True, username="idp", password="mail-password"), TO,
             SUBJECT, BODY, ssl_context=client_context)
    finally:
        controller.stop()
    [envelope] = recorder.envelopes
    assert BODY in envelope.content.decode()


def test_wrong_password_fails(tls, recorder):
    server_context, client_context = tls
    controller, port = start(recorder, tls_context=server_context, require_starttls=True,
                             authenticator=authenticator, auth_require_tls=True)
    try:
        with pytest.raises(DeliveryFailed, match="authentication"):
            send(config(port, starttls=True, username="idp", password="wrong"), TO, SUBJECT,
                 BODY, ssl_context=client_context)
    finally:
        controller.stop()
    assert recorder.envelopes == []


def test_untrusted_certificate_fails(tls, recorder):
    server_context, _ = tls
    controller, port = start(recorder, tls_context=server_context, require_starttls=True)
    try:
        with pytest.raises(DeliveryFailed) as failed:
            send(config(port, starttls=True), TO, SUBJECT, BODY)  # system trust store
    finally:
        controller.stop()
    assert recorder.envelopes == []
    assert "123456" not in str(failed.value)


def test_starttls_required_but_not_offered_never_falls_back_to_plain_text(plain_server,
                                                                           recorder):
    with pytest.raises(DeliveryFailed, match="STARTTLS"):
        send(config(plain_server, starttls=True), TO, SUBJECT, BODY)
    assert recorder.envelopes == []


def test_server_down_fails():
    with pytest.raises(DeliveryFailed, match="unreachable"):
        send(config(free_port()), TO, SUBJECT, BODY)


def test_header_injection_is_refused():
    with pytest.raises(DeliveryFailed):
        build_message(config(25), "alice@example.test\r\nBcc: eve@example.test", SUBJECT, BODY)


def test_from_settings_defaults_the_sender():
    section = {"host": "mail", "port": 587, "username": None, "password": None, "from": None,
               "starttls": True, "timeout": 3.0}
    cfg = SmtpConfig.from_settings(section, "no-reply@idp.example.test")
    assert cfg == SmtpConfig(host="mail", port=587, sender="no-reply@idp.example.test",
                             starttls=True, timeout=3.0)


@pytest.fixture
def app_overrides(plain_server):
    return {"delivery": {"email": "smtp",
                         "smtp": {"host": "127.0.0.1", "port": plain_server, "timeout": 5.0}}}


def test_deliver_sends_email_through_the_configured_smtp_transport(app, recorder):
    from idp.delivery import deliver, outbox

    with app.app_context():
        deliver("email", TO, BODY)
        assert outbox(TO) == []  # not the console transport
    [envelope] = recorder.envelopes
    received = message_from_bytes(envelope.content, policy=default_policy)
    assert received["From"].addresses[0].addr_spec == "no-reply@localhost"
    assert received["Subject"] == SUBJECT
    assert received.get_content().strip() == BODY
