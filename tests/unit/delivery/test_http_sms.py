"""idp.delivery.http_sms against a local server playing the gateway (DESIGN §6): the JSON
body and bearer token on success; 5xx, 4xx, a slow answer and a closed port all become
DeliveryFailed, whose reason never carries the message."""

from __future__ import annotations

import time

import pytest

from idp.delivery import DeliveryFailed
from idp.delivery.http_sms import GatewayConfig, send
from tests.conftest import free_port
from tests.helpers.logs import idp_logs
from tests.helpers.sms_gateway import FakeGateway

MESSAGE = "123456 is your StepUp IdP verification code."
PHONE = "+4915112345678"


@pytest.fixture
def gateway():
    gw = FakeGateway(token="s3cret-token").start()
    yield gw
    gw.stop()


def config(gateway: FakeGateway, **kw) -> GatewayConfig:
    return GatewayConfig(url=gateway.url, token=kw.pop("token", gateway.token),
                         timeout=kw.pop("timeout", 2.0))


def test_success_posts_json_with_bearer_token(gateway):
    send(config(gateway), PHONE, MESSAGE)

    [received] = gateway.received
    assert received.path == "/v1/messages"
    assert received.authorization == "Bearer s3cret-token"
    assert received.content_type == "application/json"
    assert received.body == {"to": PHONE, "message": MESSAGE}


@pytest.mark.parametrize(("status", "reason"), [
    (500, "HTTP 500"),
    (503, "HTTP 503"),
    (400, "HTTP 400"),
    (302, "HTTP 302"),  # redirects are not followed: the token goes to the configured URL only
])
def test_non_2xx_answers_fail(gateway, status, reason):
    gateway.status = status
    with pytest.raises(DeliveryFailed) as failed:
        send(config(gateway), PHONE, MESSAGE)
    assert reason in str(failed.value)
    assert "123456" not in str(failed.value)
    assert len(gateway.received) == 1


def test_wrong_token_is_rejected_by_the_gateway_and_fails(gateway):
    with pytest.raises(DeliveryFailed, match="HTTP 401"):
        send(config(gateway, token="not-the-token"), PHONE, MESSAGE)
    assert gateway.received[0].authorization == "Bearer not-the-token"


def test_slow_answer_beyond_the_timeout_fails_quickly(gateway):
    gateway.delay = 2.0
    started = time.monotonic()
    with pytest.raises(DeliveryFailed, match="timed out"):
        send(config(gateway, timeout=0.3), PHONE, MESSAGE)
    assert time.monotonic() - started < 1.5


def test_connection_refused_fails():
    closed = GatewayConfig(url=f"http://127.0.0.1:{free_port()}/send", token="t", timeout=2.0)
    with pytest.raises(DeliveryFailed, match="unreachable"):
        send(closed, PHONE, MESSAGE)


def test_missing_url_fails():
    with pytest.raises(DeliveryFailed):
        GatewayConfig.from_settings({"url": None, "token": None, "timeout": 1.0})


@pytest.fixture
def app_overrides(gateway):
    return {"delivery": {"sms": "http", "sms_gateway": {"url": gateway.url,
                                                        "token": gateway.token,
                                                        "timeout": 2.0}}}


def test_deliver_posts_sms_through_the_configured_gateway(app, gateway):
    from idp.delivery import deliver, outbox

    with app.app_context():
        deliver("sms", PHONE, MESSAGE)
        assert outbox(PHONE) == []  # not the console transport
    assert gateway.messages_to(PHONE) == [MESSAGE]


def test_deliver_failure_is_logged_without_the_message(app, gateway):
    from idp.delivery import deliver

    gateway.status = 500
    with app.app_context(), idp_logs() as records, pytest.raises(DeliveryFailed):
        deliver("sms", PHONE, MESSAGE)
    [line] = [r.getMessage() for r in records]
    assert "delivery.failed" in line and "HTTP 500" in line
    assert "123456" not in line and PHONE not in line
