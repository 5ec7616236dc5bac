"""The scenarios of issue 7, by name."""

from __future__ import annotations

from benchmarks.scenarios.base import Scenario, VirtualUser
from benchmarks.scenarios.login import Login, StepUp
from benchmarks.scenarios.machine import ClientCredentials, Discovery, Introspection
from benchmarks.scenarios.sso_flow import Refresh, SsoFlow

SCENARIOS: dict[str, type[Scenario]] = {
    cls.name: cls
    for cls in (SsoFlow, Refresh, Login, StepUp, ClientCredentials, Introspection, Discovery)
}

__all__ = ["SCENARIOS", "Scenario", "VirtualUser"]
