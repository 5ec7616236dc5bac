"""Latency and throughput bookkeeping for one run: a measurement window, per-step samples,
completed flows and errors."""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any


def percentile(ordered: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of sorted samples, nearest-rank; NaN when empty."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


class FlowError(Exception):
    """A flow went wrong at ``step``: the run counts it as an error (never a sample)."""

    def __init__(self, step: str, reason: str) -> None:
        super().__init__(f"{step}: {reason}")
        self.step = step
        self.reason = reason


class RunOver(Exception):
    """The measurement window has closed while a flow waited: the virtual user stops."""


@dataclass
class Recorder:
    """Collects samples completed inside ``[window_start, window_end]`` (monotonic clock)."""

    window_start: float = 0.0
    window_end: float = math.inf
    steps: dict[str, list[float]] = field(default_factory=dict)
    flows: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    error_samples: list[str] = field(default_factory=list)
    counters: Counter[str] = field(default_factory=Counter)

    def in_window(self, at: float) -> bool:
        return self.window_start <= at <= self.window_end

    @asynccontextmanager
    async def step(self, name: str) -> AsyncIterator[None]:
        """Time the body as step ``name``; exceptions become FlowError(name, …)."""
        started = time.perf_counter()
        try:
            yield
        except FlowError:
            raise
        except Exception as exc:
            raise FlowError(name, f"{type(exc).__name__}: {exc}"[:300]) from exc
        ended = time.perf_counter()
        if self.in_window(ended):
            self.steps.setdefault(name, []).append(ended - started)

    def flow_done(self) -> None:
        """One whole flow finished now."""
        if self.in_window(time.perf_counter()):
            self.flows += 1

    def error(self, exc: FlowError) -> None:
        """A failed flow (counted whether or not inside the window: errors are never hidden)."""
        key = f"{exc.step}: {exc.reason.split(':', 1)[0]}"
        self.errors[key] += 1
        if len(self.error_samples) < 10:
            self.error_samples.append(str(exc)[:400])

    def count(self, name: str, n: int = 1) -> None:
        """A named event worth reporting (e.g. waits for a free TOTP user)."""
        self.counters[name] += n

    def step_summary(self) -> dict[str, dict[str, Any]]:
        """Per step: count, mean, p50/p95/p99 and max in milliseconds."""
        out: dict[str, dict[str, Any]] = {}
        for name, samples in self.steps.items():
            ordered = sorted(samples)
            out[name] = {
                "count": len(ordered),
                "mean_ms": round(1000 * sum(ordered) / len(ordered), 2),
                "p50_ms": round(1000 * percentile(ordered, 0.50), 2),
                "p95_ms": round(1000 * percentile(ordered, 0.95), 2),
                "p99_ms": round(1000 * percentile(ordered, 0.99), 2),
                "max_ms": round(1000 * ordered[-1], 2),
            }
        return out
