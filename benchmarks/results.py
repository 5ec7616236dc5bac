"""Results: one JSON line per run (target x back end x scenario x concurrency) and a Markdown
summary beside it, in ``benchmarks/results/``."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def git_describe() -> str:
    """The commit measured, ``-dirty`` when the work tree has changes (read-only git)."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root,  # noqa: S607
                                capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "idp"],  # noqa: S607
                               cwd=root, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}-dirty" if dirty.strip() else commit or "unknown"


def conditions() -> dict[str, Any]:
    """What the machine was doing when a run started (load average: other engineers' test
    suites share these cores)."""
    load = os.getloadavg()
    return {"host_cores": os.cpu_count(), "loadavg_start": [round(x, 2) for x in load],
            "python": platform.python_version(), "git": git_describe()}


class ResultFile:
    """``<stamp>-<label>.jsonl`` plus ``.md``; every record is appended as it completes, so a
    run stopped half way keeps what it measured."""

    def __init__(self, label: str, directory: Path = RESULTS) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.jsonl = directory / f"{stamp}-{label}.jsonl"
        self.markdown = self.jsonl.with_suffix(".md")
        self.label = label
        self.records: list[dict[str, Any]] = []
        self.notes: list[str] = []

    def append(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        with self.jsonl.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, sort_keys=True) + "\n")

    def note(self, text: str) -> None:
        """A line for the Markdown summary (e.g. what did not run, and why)."""
        self.notes.append(text)

    def write_markdown(self, extra_sections: Iterable[str] = ()) -> Path:
        lines = [f"# Benchmark results: {self.label}", "",
                 f"Raw records: `{self.jsonl.name}` (one JSON object per run).", ""]
        if self.records:
            first = self.records[0]
            lines += [f"- commit `{first.get('git')}`, {first.get('host_cores')} cores, "
                      f"Python {first.get('python')}; load average at the start of each run "
                      f"in the table (1-minute; other work shares this machine).", ""]
        lines += [f"- {note}" for note in self.notes]
        if self.notes:
            lines.append("")
        lines += summary_tables(self.records)
        for section in extra_sections:
            lines += ["", section]
        self.markdown.write_text("\n".join(lines) + "\n", "utf-8")
        return self.markdown


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def summary_tables(records: list[dict[str, Any]]) -> list[str]:
    """One table per (target, back end, workers)."""
    groups: dict[tuple[str, str, Any], list[dict[str, Any]]] = {}
    for record in records:
        key = (record.get("target", "?"), record.get("backend", "-"), record.get("workers"))
        groups.setdefault(key, []).append(record)
    lines: list[str] = []
    for (target, backend, workers), rows in groups.items():
        lines += [f"## {target} — {backend}, {workers} worker(s)", "",
                  "| scenario | c | rate /s | flow p50 / p95 / p99 ms | steps p50 / p95 / p99 ms "
                  "| server CPU ms/op | server cores mean/peak | driver CPU ms/op "
                  "| DB CPU ms/op | CPU-bound est. /s | errors | load1 / others' cores |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            flow = r.get("steps", {}).get("(flow)", {})
            steps = "<br>".join(
                f"{name} {_fmt(s['p50_ms'])}/{_fmt(s['p95_ms'])}/{_fmt(s['p99_ms'])}"
                for name, s in r.get("steps", {}).items() if name != "(flow)")
            rate = f"{_fmt(r.get('throughput_per_s'))} {r.get('unit', '')}"
            if r.get("argon2_floor_logins_per_s"):
                rate += (f" (argon2 floor {_fmt(r['argon2_floor_logins_per_s'])}, "
                         f"{_fmt(r.get('floor_ratio'), 2)}x)")
            level = str(r.get("concurrency"))
            if r.get("offered_rate_per_s"):
                level += f" (open loop, offered {_fmt(r['offered_rate_per_s'])}/s)"
            lines.append(
                f"| {r.get('scenario')} | {level} | {rate} "
                f"| {_fmt(flow.get('p50_ms'))} / {_fmt(flow.get('p95_ms'))} / "
                f"{_fmt(flow.get('p99_ms'))} | {steps} "
                f"| {_fmt(r.get('server_cpu_ms_per_op'), 2)} "
                f"| {_fmt(r.get('server_cores_mean'), 2)}/{_fmt(r.get('server_cores_peak_1s'), 2)} "
                f"| {_fmt(r.get('driver_cpu_ms_per_op'), 2)} "
                f"| {_fmt(r.get('db_cpu_ms_per_op'), 2)} "
                f"| {_fmt(r.get('cpu_bound_estimate_per_s'))} "
                f"| {r.get('errors', 0)} | {_fmt((r.get('loadavg_start') or [None])[0], 2)} / "
                f"{_fmt(r.get('others_cores'), 2)} |")
        memory = [m for r in rows for m in r.get("server_memory", []) if m["role"] == "worker"]
        if memory:
            peak = max(m["rss_mb"] for m in memory)
            lines += ["", f"Peak worker RSS over these runs: {peak:.0f} MB."]
        ready = {r.get("ready_s") for r in rows if r.get("ready_s") is not None}
        if ready:
            lines += [f"Server ready in {', '.join(f'{x:.2f}' for x in sorted(ready))} s "
                      "(start to first 200 from discovery)."]
        errors = [(r.get("scenario"), r.get("concurrency"), r.get("error_kinds"))
                  for r in rows if r.get("errors")]
        if errors:
            lines += ["", "Errors: " + "; ".join(f"{s} c={c}: {k}" for s, c, k in errors)]
        lines.append("")
    return lines
