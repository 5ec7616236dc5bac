"""Fixtures for the conformance replicas: a signed-up user, a static client, a browser.

The suite runs each module against a static client configured by the tester; here that is a
first-party client registered with the CALLBACK redirect URI (tests/helpers/rp.py) and, unless a
test says otherwise, the scopes the suite's scope modules ask for.
"""

from __future__ import annotations

from typing import Any

import pytest

ALL_SCOPES = "openid profile email phone address"


@pytest.fixture
def alice(flows: Any) -> str:
    """The End-User (has a name and an email address, like the suite's test account)."""
    return flows.user("alice", email="alice@example.test", name="Alice Example")


@pytest.fixture
def rp(flows: Any) -> Any:
    """The suite's static client (client_secret_basic)."""
    return flows.client("rp1", scope=ALL_SCOPES)


@pytest.fixture
def browser(flows: Any) -> Any:
    return flows.browser()
