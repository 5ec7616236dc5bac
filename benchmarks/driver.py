"""The load driver: N virtual users run one scenario's flow in a closed loop for a bounded
time against one server, while the server's process tree is sampled for CPU.

A run: set-up of every virtual user (not measured) → warm-up (flows run, nothing recorded;
at least ``warmup`` seconds and until every virtual user has finished one flow) → measurement
window of ``duration`` seconds (samples, flows, CPU) → the loops stop by
themselves; flows still in flight finish within the request timeout or are cancelled.

Command line (against a server that is already running; ``benchmarks.suite`` starts its own)::

    python -m benchmarks.driver --manifest benchmarks/results/tmp/…/manifest.json \\
        --pid 1234 --scenario sso-flow --concurrency 8 --duration 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.browser import Browser
from benchmarks.cpu import (
    MatchingProcesses,
    PostgresBackends,
    ProcessGroup,
    ProcessTree,
    Sampler,
)
from benchmarks.results import ResultFile, conditions
from benchmarks.scenarios import SCENARIOS, Scenario, VirtualUser
from benchmarks.stats import FlowError, Recorder, RunOver
from benchmarks.target import Target

#: Pause after a failed flow, so a broken server is not hammered in a tight loop.
ERROR_BACKOFF_S = 0.05


@dataclass(frozen=True)
class RunConfig:
    """How long and how hard one run is."""

    concurrency: int = 8
    duration: float = 10.0
    warmup: float = 2.0
    setup_concurrency: int = 4
    request_timeout: float = 30.0
    #: The warm-up goes on (up to this much longer) until every virtual user finished a flow.
    max_extra_warmup: float = 20.0
    #: Open loop: start flows at this many per second in all (None: closed loop, each virtual
    #: user starts its next flow as soon as the last ended). ``concurrency`` caps flows in
    #: flight; a flow that could not start on time counts as ``late_starts``.
    rate: float | None = None


def other_groups(target: Target) -> list[ProcessGroup]:
    """Data stores whose CPU the run should show beside the server's."""
    if target.info.get("backend") != "postgres":
        return []
    from benchmarks.server import PG_DATABASE

    database = target.info.get("database") or PG_DATABASE
    return [PostgresBackends("db", database),
            MatchingProcesses("redis_shared", "redis-server")]


async def run_scenario(target: Target, scenario_cls: type[Scenario], config: RunConfig,
                       on_window: Callable[[], object] | None = None) -> dict[str, Any]:
    """One run; returns its result record (see ``benchmarks/README.md`` for the fields).
    ``on_window`` is called when the measurement window opens (a profiler starts there)."""
    recorder = Recorder(window_start=math.inf)
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
    vus: list[VirtualUser] = []
    try:
        if not target.metadata:
            async with aiohttp.ClientSession(connector=connector, connector_owner=False) as s:
                await target.discover(s)
        scenario = scenario_cls(target, recorder)
        vus = [VirtualUser(i, Browser(connector, target.base_url, config.request_timeout))
               for i in range(config.concurrency)]
        setup_started = time.perf_counter()
        gate = asyncio.Semaphore(config.setup_concurrency)

        async def set_up(vu: VirtualUser) -> None:
            async with gate:
                await scenario.setup(vu)

        await asyncio.gather(*(set_up(vu) for vu in vus))
        setup_seconds = time.perf_counter() - setup_started

        groups = other_groups(target)
        sampler = Sampler(ProcessTree(target.kind, target.pid) if target.pid else None, groups)
        record: dict[str, Any] = conditions()
        started = time.perf_counter()
        warmed: set[int] = set()  # virtual users that finished (or failed) a flow

        schedule = {"next": time.perf_counter()}

        async def pace() -> None:
            """Open loop: wait for this flow's slot on the shared timetable."""
            assert config.rate
            slot = schedule["next"]
            schedule["next"] = slot + 1.0 / config.rate
            delay = slot - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -0.05:
                recorder.count("late_starts")

        async def virtual_user(vu: VirtualUser) -> None:
            while time.perf_counter() < recorder.window_end:
                if config.rate:
                    await pace()
                    if time.perf_counter() >= recorder.window_end:
                        return
                flow_started = time.perf_counter()
                try:
                    try:
                        await scenario.flow(vu)
                    except RunOver:
                        return
                    except FlowError:
                        raise
                    except Exception as exc:
                        raise FlowError("flow", f"{type(exc).__name__}: {exc}") from exc
                except FlowError as exc:
                    warmed.add(vu.index)
                    recorder.error(exc)
                    await asyncio.sleep(ERROR_BACKOFF_S)
                    try:
                        await scenario.recover(vu)
                    except Exception as again:  # counted, then retried
                        recorder.error(FlowError("recover", f"{type(again).__name__}: {again}"))
                    continue
                ended = time.perf_counter()
                warmed.add(vu.index)
                if recorder.in_window(ended):
                    recorder.flows += 1
                    recorder.steps.setdefault("(flow)", []).append(ended - flow_started)

        tasks = [asyncio.create_task(virtual_user(vu)) for vu in vus]
        # Warm-up: at least ``warmup`` seconds, and until every virtual user has been through
        # one flow (slow flows at high concurrency start in lockstep otherwise), within limits.
        await asyncio.sleep(config.warmup)
        limit = started + config.warmup + config.max_extra_warmup
        while len(warmed) < len(vus) and time.perf_counter() < limit:
            await asyncio.sleep(0.05)
        recorder.window_start = time.perf_counter()
        recorder.window_end = recorder.window_start + config.duration
        warmup_seconds = recorder.window_start - started
        sampler.start()
        if on_window is not None:
            on_window()
        await asyncio.sleep(max(0.0, recorder.window_end - time.perf_counter()))
        cpu = sampler.stop()
        _, pending = await asyncio.wait(tasks, timeout=config.request_timeout + 5)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    finally:
        for vu in vus:
            await vu.browser.close()
        await connector.close()

    elapsed = cpu["elapsed_s"]
    flows = recorder.flows

    def per_op(seconds: float) -> float | None:
        return round(1000 * seconds / flows, 3) if flows else None

    record.update({
        "target": target.kind, "backend": target.info.get("backend", "-"),
        "workers": target.info.get("workers"), "threads": target.info.get("threads"),
        "scenario": scenario_cls.name, "unit": scenario_cls.unit,
        "concurrency": config.concurrency, "duration_s": config.duration,
        "offered_rate_per_s": config.rate,
        "warmup_s": round(warmup_seconds, 2), "setup_s": round(setup_seconds, 2),
        "flows": flows, "throughput_per_s": round(flows / elapsed, 2) if elapsed else 0.0,
        "errors": sum(recorder.errors.values()), "error_kinds": dict(recorder.errors),
        "error_samples": recorder.error_samples, "counters": dict(recorder.counters),
        "steps": recorder.step_summary(),
        "server_cpu_ms_per_op": per_op(cpu.get("server_cpu_s", 0.0)) if target.pid else None,
        "driver_cpu_ms_per_op": per_op(cpu["driver_cpu_s"]),
        "driver_cores_mean": round(cpu["driver_cpu_s"] / elapsed, 2) if elapsed else None,
        "db_cpu_ms_per_op": per_op(cpu["db_cpu_s"]) if "db_cpu_s" in cpu else None,
        **cpu, **scenario.extra(),
    })
    total_ms = sum(v for v in (record.get("server_cpu_ms_per_op"),
                               record.get("driver_cpu_ms_per_op"),
                               record.get("db_cpu_ms_per_op")) if v)
    if total_ms and record.get("host_cores"):
        # What the measured CPU cost per operation would allow with every core to ourselves
        # (server + database + driver on the same cores); an estimate, not a measurement.
        record["cpu_bound_estimate_per_s"] = round(1000 * record["host_cores"] / total_ms, 1)
    if record.get("argon2_floor_logins_per_s"):
        record["floor_ratio"] = round(record["throughput_per_s"]
                                      / record["argon2_floor_logins_per_s"], 3)
    return record


def describe(record: dict[str, Any]) -> str:
    """One line for the terminal."""
    flow = record["steps"].get("(flow)", {})
    return (f"{record['target']:<13} {record.get('backend', '-'):<8} {record['scenario']:<18} "
            f"c={record['concurrency']:<3} {record['throughput_per_s']:>8.1f} "
            f"{record['unit']}/s  p50 {flow.get('p50_ms', math.nan):>7.1f}  "
            f"p95 {flow.get('p95_ms', math.nan):>7.1f}  p99 {flow.get('p99_ms', math.nan):>7.1f} ms"
            f"  srv {record.get('server_cpu_ms_per_op') or math.nan:>6.2f} ms/op"
            f"  drv {record.get('driver_cpu_ms_per_op') or math.nan:>5.2f} ms/op"
            f"  err {record['errors']}  load1 {record['loadavg_start'][0]}"
            f"  others {record.get('others_cores', math.nan):.2f} cores")


def parse_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run scenarios against a running server.")
    parser.add_argument("--manifest", required=True, type=Path)
    parser.add_argument("--pid", type=int, default=None,
                        help="the server's root process, for CPU sampling")
    parser.add_argument("--scenario", default="sso-flow",
                        help=f"comma-separated, of: {', '.join(SCENARIOS)}")
    parser.add_argument("--concurrency", default="8", help="comma-separated, e.g. 1,8,32")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rate", type=float, default=None,
                        help="open loop: flows started per second (default: closed loop)")
    parser.add_argument("--label", default="adhoc")
    args = parser.parse_args(argv)
    target = Target.load(args.manifest, args.pid)
    out = ResultFile(args.label)
    for name in parse_list(args.scenario):
        for concurrency in parse_list(args.concurrency):
            config = RunConfig(int(concurrency), args.duration, args.warmup, rate=args.rate)
            record = asyncio.run(run_scenario(target, SCENARIOS[name], config))
            out.append(record)
            print(describe(record), flush=True)
    if target.totp is not None:
        # Remember which TOTP steps were used, for the next run against the same instance.
        manifest = json.loads(args.manifest.read_text("utf-8"))
        manifest["totp_users"] = target.totp.state()
        with contextlib.suppress(OSError):
            args.manifest.write_text(json.dumps(manifest, indent=1), "utf-8")
    print(f"results: {out.write_markdown()}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
