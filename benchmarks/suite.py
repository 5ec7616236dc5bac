"""``make bench``: every scenario at every concurrency on every back end, each against a
freshly prepared and started ``idp serve``; results to ``benchmarks/results/``.

    python -m benchmarks.suite --backends sqlite,postgres --concurrency 1,8,32 --duration 8

Environment equivalents (used by the Makefile): BENCH_BACKENDS, BENCH_SCENARIOS,
BENCH_CONCURRENCY, BENCH_DURATION, BENCH_WARMUP, BENCH_LABEL.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import Any

from benchmarks.driver import RunConfig, describe, parse_list, run_scenario
from benchmarks.results import ResultFile
from benchmarks.scenarios import SCENARIOS
from benchmarks.server import ServerProcess, prepare, start_idp
from benchmarks.target import Target

DEFAULT_SCENARIOS = ",".join(SCENARIOS)


def backend_available(name: str) -> str | None:
    """None when the back end's services answer, else why not."""
    if name != "postgres":
        return None
    try:
        import psycopg
        import redis

        from benchmarks.server import PG_ADMIN_DSN, REDIS_URL

        psycopg.connect(PG_ADMIN_DSN, connect_timeout=3).close()
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except Exception as exc:  # any failure means "not here"
        return f"{type(exc).__name__}: {exc}"
    return None


def start_backend(name: str, workers: int | None, threads: int,
                  totp_users: int) -> tuple[ServerProcess, Target, dict[str, Any]]:
    """Prepare (seed) and start one IdP; the Target carries the TOTP pool across runs."""
    _, config, manifest = prepare(name, workers=workers, threads=threads,
                                  totp_users=totp_users)
    server = start_idp(config, manifest)
    return server, Target.from_manifest(manifest, server.pid), manifest


def run_suite(args: argparse.Namespace) -> ResultFile:
    out = ResultFile(args.label)
    scenarios = parse_list(args.scenarios)
    unknown = [s for s in scenarios if s not in SCENARIOS]
    if unknown:
        raise SystemExit(f"unknown scenario(s): {', '.join(unknown)}")
    levels = [int(c) for c in parse_list(args.concurrency)]
    out.note(f"duration {args.duration} s per run after a {args.warmup} s warm-up; "
             f"concurrency {levels}; scenarios {scenarios}")
    for backend in parse_list(args.backends):
        why_not = backend_available(backend)
        if why_not:
            out.note(f"back end {backend} skipped: {why_not}")
            print(f"skipping {backend}: {why_not}", file=sys.stderr)
            continue
        workers = args.workers if backend == "postgres" else None
        started = time.perf_counter()
        server, target, manifest = start_backend(backend, workers, args.threads,
                                                 args.totp_users)
        print(f"{backend}: seeded in {manifest['seed_seconds']} s, ready in "
              f"{server.ready_seconds:.2f} s (pid {server.pid})", file=sys.stderr)
        try:
            for name in scenarios:
                for concurrency in levels:
                    config = RunConfig(concurrency, args.duration, args.warmup)
                    try:
                        record = asyncio.run(run_scenario(target, SCENARIOS[name], config))
                    except Exception as exc:  # recorded; the suite goes on
                        out.note(f"{backend} {name} c={concurrency} did not run: "
                                 f"{type(exc).__name__}: {exc}")
                        print(f"{backend} {name} c={concurrency} failed: {exc!r}",
                              file=sys.stderr)
                        continue
                    record.update({"ready_s": round(server.ready_seconds, 3),
                                   "seed_s": manifest["seed_seconds"], "label": args.label})
                    out.append(record)
                    print(describe(record), flush=True)
                    out.write_markdown()
                if args.half_capacity:
                    half_capacity_run(out, target, name, levels, args, server, manifest)
        finally:
            server.stop()
        print(f"{backend}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    out.write_markdown()
    return out


def half_capacity_run(out: ResultFile, target: Target, name: str, levels: list[int],
                      args: argparse.Namespace, server: ServerProcess,
                      manifest: dict[str, Any]) -> None:
    """Issue 7's latency target: an open-loop run at half the best closed-loop throughput
    just measured for this scenario (as many virtual users as the highest level)."""
    measured = [r["throughput_per_s"] for r in out.records
                if r["scenario"] == name and r.get("backend") == target.info.get("backend")
                and not r.get("offered_rate_per_s")]
    if not measured or max(measured) <= 0:
        return
    rate = round(max(measured) / 2, 2)
    config = RunConfig(max(levels), args.duration, args.warmup, rate=rate)
    record = asyncio.run(run_scenario(target, SCENARIOS[name], config))
    record.update({"ready_s": round(server.ready_seconds, 3), "half_capacity": True,
                   "seed_s": manifest["seed_seconds"], "label": args.label})
    out.append(record)
    print(describe(record) + f"  [open loop at {rate}/s]", flush=True)
    out.write_markdown()


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(description="Run the benchmark suite (make bench).")
    parser.add_argument("--backends", default=env("BENCH_BACKENDS", "sqlite,postgres"))
    parser.add_argument("--scenarios", default=env("BENCH_SCENARIOS", DEFAULT_SCENARIOS))
    parser.add_argument("--concurrency", default=env("BENCH_CONCURRENCY", "1,8,32"))
    parser.add_argument("--duration", type=float, default=float(env("BENCH_DURATION", "8")))
    parser.add_argument("--warmup", type=float, default=float(env("BENCH_WARMUP", "2")))
    parser.add_argument("--workers", type=int, default=int(env("BENCH_PG_WORKERS", "2")),
                        help="workers for the postgres back end (sqlite always runs one)")
    parser.add_argument("--threads", type=int, default=int(env("BENCH_THREADS", "4")))
    parser.add_argument("--totp-users", type=int, default=2000)
    parser.add_argument("--half-capacity", action="store_true",
                        default=env("BENCH_HALF_CAPACITY", "") not in ("", "0"),
                        help="after each scenario, an open-loop run at half its capacity")
    parser.add_argument("--label", default=env("BENCH_LABEL", "bench"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    out = run_suite(arguments(argv))
    print(f"results: {out.jsonl}\nsummary: {out.markdown}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
