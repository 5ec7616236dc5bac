"""``make bench-compare``: stepup-idp and node ``oidc-provider`` side by side in one run.

Both servers run at once; ``sso-flow`` and ``refresh`` alternate between them round by round
(A B, then B A, …) so drifting background load hits both alike, and the ratios
stepup-idp / oidc-provider of throughput and of server CPU per operation are printed and
written to the Markdown summary.

    python -m benchmarks.compare --backend postgres --workers 2 --concurrency 8,32 --rounds 2
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
from typing import Any

from benchmarks.compare.oidc_provider import start_oidc_provider
from benchmarks.driver import RunConfig, describe, parse_list, run_scenario
from benchmarks.results import ResultFile
from benchmarks.scenarios import SCENARIOS
from benchmarks.suite import backend_available, start_backend
from benchmarks.target import Target

IDP, OP = "stepup-idp", "oidc-provider"


def ratios(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per scenario x concurrency: medians over rounds for each server and their ratios."""
    keys = sorted({(r["scenario"], r["concurrency"]) for r in records},
                  key=lambda k: (k[0], k[1]))
    rows = []
    for scenario, concurrency in keys:
        row: dict[str, Any] = {"scenario": scenario, "concurrency": concurrency}
        for kind in (IDP, OP):
            mine = [r for r in records if r["target"] == kind and r["scenario"] == scenario
                    and r["concurrency"] == concurrency]
            rates = [r["throughput_per_s"] for r in mine]
            cpu = [r["server_cpu_ms_per_op"] for r in mine if r.get("server_cpu_ms_per_op")]
            db = [r["db_cpu_ms_per_op"] for r in mine if r.get("db_cpu_ms_per_op")]
            p95 = [r["steps"].get("(flow)", {}).get("p95_ms") for r in mine]
            row[kind] = {
                "rate": statistics.median(rates) if rates else None,
                "cpu_ms_per_op": statistics.median(cpu) if cpu else None,
                "db_cpu_ms_per_op": statistics.median(db) if db else None,
                "p95_ms": statistics.median([p for p in p95 if p is not None]) if p95 else None,
                "errors": sum(r["errors"] for r in mine), "rounds": len(mine)}
        ours, theirs = row[IDP], row[OP]
        row["throughput_ratio"] = (round(ours["rate"] / theirs["rate"], 3)
                                   if ours["rate"] and theirs["rate"] else None)
        row["cpu_ratio"] = (round(ours["cpu_ms_per_op"] / theirs["cpu_ms_per_op"], 2)
                            if ours["cpu_ms_per_op"] and theirs["cpu_ms_per_op"] else None)
        rows.append(row)
    return rows


def ratio_table(rows: list[dict[str, Any]], backend: str, workers: int) -> str:
    lines = [f"## Side by side: stepup-idp ({backend}, {workers} worker(s)) vs oidc-provider "
             "(memory adapter, 1 process)", "",
             "| scenario | c | stepup-idp /s | oidc-provider /s | ratio (≥ 1.0 is the target) "
             "| CPU ms/op ours (+ PostgreSQL) / theirs | CPU ratio | p95 ms ours / theirs "
             "| errors |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        ours, theirs = row[IDP], row[OP]

        def f(x: Any, d: int = 1) -> str:
            return "-" if x is None else f"{x:.{d}f}"

        lines.append(
            f"| {row['scenario']} | {row['concurrency']} | {f(ours['rate'])} "
            f"| {f(theirs['rate'])} | **{f(row['throughput_ratio'], 2)}x** "
            f"| {f(ours['cpu_ms_per_op'], 2)} (+ {f(ours['db_cpu_ms_per_op'], 2)}) / "
            f"{f(theirs['cpu_ms_per_op'], 2)} "
            f"| {f(row['cpu_ratio'], 2)}x | {f(ours['p95_ms'])} / {f(theirs['p95_ms'])} "
            f"| {ours['errors']} / {theirs['errors']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    env = os.environ.get
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default=env("BENCH_COMPARE_BACKEND", "postgres"),
                        choices=["sqlite", "postgres"])
    parser.add_argument("--workers", type=int, default=int(env("BENCH_PG_WORKERS", "2")))
    parser.add_argument("--scenarios", default=env("BENCH_COMPARE_SCENARIOS",
                                                   "sso-flow,refresh"))
    parser.add_argument("--concurrency", default=env("BENCH_COMPARE_CONCURRENCY", "8,32"))
    parser.add_argument("--rounds", type=int, default=int(env("BENCH_ROUNDS", "2")))
    parser.add_argument("--duration", type=float, default=float(env("BENCH_DURATION", "8")))
    parser.add_argument("--warmup", type=float, default=float(env("BENCH_WARMUP", "2")))
    parser.add_argument("--label", default=env("BENCH_LABEL", "compare"))
    args = parser.parse_args(argv)

    backend = args.backend
    why_not = backend_available(backend)
    if why_not:
        print(f"{backend} unavailable ({why_not}); comparing on sqlite", file=sys.stderr)
        backend = "sqlite"
    workers = args.workers if backend == "postgres" else 1
    out = ResultFile(args.label)
    out.note(f"{args.rounds} round(s) per scenario x concurrency, alternating the order; "
             f"{args.duration} s per run after {args.warmup} s warm-up")
    idp_server, idp, manifest = start_backend(backend, workers if backend == "postgres" else None,
                                              4, totp_users=0)
    try:
        op_server, op_manifest = start_oidc_provider(list(manifest["users"]))
    except Exception:
        idp_server.stop()
        raise
    out.note(f"oidc-provider {op_manifest['version']} on node (ready in "
             f"{op_server.ready_seconds:.2f} s); stepup-idp ready in "
             f"{idp_server.ready_seconds:.2f} s")
    op = Target.from_manifest(op_manifest, op_server.pid)
    try:
        for name in parse_list(args.scenarios):
            for concurrency in (int(c) for c in parse_list(args.concurrency)):
                for round_no in range(args.rounds):
                    order = (idp, op) if round_no % 2 == 0 else (op, idp)
                    for target in order:
                        config = RunConfig(concurrency, args.duration, args.warmup)
                        record = asyncio.run(run_scenario(target, SCENARIOS[name], config))
                        record.update({"round": round_no, "label": args.label})
                        out.append(record)
                        print(describe(record), flush=True)
    finally:
        op_server.stop()
        idp_server.stop()
    rows = ratios(out.records)
    table = ratio_table(rows, backend, workers)
    print("\n" + table)
    out.write_markdown([table])
    print(f"results: {out.jsonl}\nsummary: {out.markdown}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
