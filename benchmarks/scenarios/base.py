"""What a scenario is: per-virtual-user set-up (not measured) and one flow (measured)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from benchmarks.browser import Browser
from benchmarks.stats import Recorder
from benchmarks.target import Target


@dataclass
class VirtualUser:
    """One concurrent client: its own browser (cookie jar) and whatever state the scenario
    keeps between flows (a refresh token, a signed-in session)."""

    index: int
    browser: Browser
    state: dict[str, Any] = field(default_factory=dict)


class Scenario:
    """Subclasses set ``name``/``summary``/``steps`` and implement :meth:`flow`."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    #: The unit one flow counts as in reports ("flows", "logins", "grants", "requests").
    unit: ClassVar[str] = "flows"
    #: Server kinds the scenario runs against.
    kinds: ClassVar[frozenset[str]] = frozenset({"stepup-idp"})

    def __init__(self, target: Target, recorder: Recorder) -> None:
        self.target = target
        self.recorder = recorder

    def username(self, vu: VirtualUser) -> str:
        return self.target.users[vu.index % len(self.target.users)]

    async def setup(self, vu: VirtualUser) -> None:
        """Before the clock starts (sign in, obtain a token)."""

    async def recover(self, vu: VirtualUser) -> None:
        """After a failed flow: bring the virtual user back to a state a flow can start from."""
        await self.setup(vu)

    async def flow(self, vu: VirtualUser) -> None:
        """One measured flow; raise :class:`benchmarks.stats.FlowError` on any failure."""
        raise NotImplementedError

    def extra(self) -> dict[str, Any]:
        """Scenario-specific figures for the result record."""
        return {}
