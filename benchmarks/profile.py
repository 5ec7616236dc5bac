"""Profile the server under load: py-spy samples every worker of ``idp serve`` (all threads,
not idle ones, native frames off) while the driver runs a scenario; the collapsed stacks are
summarised into the functions that cost most, by themselves and with what they call.

    python -m benchmarks.profile --backend sqlite --scenario sso-flow --concurrency 8 --duration 20

Writes ``benchmarks/results/<stamp>-profile-<scenario>-<backend>.md`` and keeps the collapsed
stacks in ``benchmarks/results/tmp/`` (for flame graphs: ``flamegraph.pl`` or speedscope).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.driver import RunConfig, describe, run_scenario
from benchmarks.results import RESULTS, conditions
from benchmarks.scenarios import SCENARIOS
from benchmarks.server import SCRATCH, VENV_BIN, prepare, start_idp
from benchmarks.target import Target

#: py-spy modes: every non-idle thread (Python running, or blocked inside a native call such
#: as an fsync or a lock), and only the thread holding the GIL (where Python burns CPU).
MODES: dict[str, list[str]] = {"active": [], "gil": ["--gil"]}
ACTIVE_LABEL = ("non-idle threads: wall time of busy threads, including native waits "
                "(SQLite commit/fsync, sockets)")
GIL_LABEL = "GIL holder only: Python CPU time (argon2 and OpenSSL release the GIL)"
FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
#: Where a frame's file belongs, for the per-package breakdown (first match wins).
PACKAGES = (
    ("idp/", "idp (our code)"), ("sqlalchemy/", "sqlalchemy"), ("authlib/", "authlib"),
    ("joserfc/", "joserfc"), ("jinja2/", "jinja2"), ("werkzeug/", "werkzeug"),
    ("flask_wtf/", "flask-wtf"), ("flask_sqlalchemy/", "flask-sqlalchemy"),
    ("flask/", "flask"), ("gunicorn/", "gunicorn"), ("psycopg/", "psycopg"),
    ("redis/", "redis"), ("cryptography/", "cryptography"), ("argon2/", "argon2"),
    ("sqlite3/", "sqlite3"), ("json/", "json"), ("logging/", "logging"),
)


def frame_key(frame: str) -> tuple[str, str]:
    """``(function, file)`` of a py-spy frame ``func (path/file.py:123)``."""
    match = FRAME.match(frame.strip())
    if not match:
        return frame.strip(), ""
    return match.group("func"), match.group("file")


def short(path: str) -> str:
    """A readable path: from the package root (``idp/…``, ``sqlalchemy/…``) on."""
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def package_of(path: str) -> str:
    path = short(path)
    for prefix, name in PACKAGES:
        if path.startswith(prefix) or f"/{prefix}" in path:
            return name
    return "python stdlib / other"


def summarise(collapsed: Path, top: int = 30) -> dict[str, Any]:
    """Self and inclusive sample counts per function, inclusive per package, per endpoint."""
    self_counts: Counter[tuple[str, str]] = Counter()
    inclusive: Counter[tuple[str, str]] = Counter()
    packages: Counter[str] = Counter()
    views: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text("utf-8", errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [frame_key(f) for f in stack.split(";") if "(" in f]
        if not frames:
            continue
        total += count
        self_counts[frames[-1]] += count
        for key in set(frames):
            inclusive[key] += count
        packages[package_of(frames[-1][1])] += count
        view = next((f"{func} ({short(file)})" for func, file in frames
                     if short(file).startswith("idp/views/")), "outside views (server loop, "
                                                                 "session save, teardown)")
        views[view] += count

    def rows(counter: Counter[tuple[str, str]], only_ours: bool = False) -> list[dict[str, Any]]:
        out = []
        for (func, file), count in counter.most_common():
            if only_ours and not short(file).startswith("idp/"):
                continue
            out.append({"function": func, "file": short(file), "samples": count,
                        "share": round(count / total, 4) if total else 0.0})
            if len(out) >= top:
                break
        return out

    return {
        "samples": total,
        "self": rows(self_counts),
        "inclusive": rows(inclusive),
        "inclusive_ours": rows(inclusive, only_ours=True),
        "packages": {k: round(v / total, 4) for k, v in packages.most_common()} if total else {},
        "views": {k: round(v / total, 4) for k, v in views.most_common()} if total else {},
    }


def report(summary: dict[str, Any], record: dict[str, Any], title: str) -> str:
    def table(rows: list[dict[str, Any]]) -> list[str]:
        lines = ["| share | samples | function | file |", "|---|---|---|---|"]
        lines += [f"| {r['share']:.1%} | {r['samples']} | `{r['function']}` | `{r['file']}` |"
                  for r in rows]
        return lines

    lines = [f"# Profile: {title}", "",
             f"py-spy, {summary['samples']} samples from every worker during the measurement "
             f"window (set-up and warm-up excluded). Run: `{describe(record)}`.", "",
             "## Self time by package (leaf frame)", "", "| package | share |", "|---|---|"]
    lines += [f"| {k} | {v:.1%} |" for k, v in summary["packages"].items()]
    lines += ["", "## By endpoint (the view on the stack)", "", "| view | share |", "|---|---|"]
    lines += [f"| `{k}` | {v:.1%} |" for k, v in summary["views"].items()]
    lines += ["", "## Top functions by self time", "", *table(summary["self"])]
    lines += ["", "## Top functions by inclusive time (our code only)", ""]
    lines += table(summary["inclusive_ours"])
    lines += ["", "## Top functions by inclusive time (everything)", ""]
    lines += table(summary["inclusive"])
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="sqlite", choices=["sqlite", "postgres"])
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--scenario", default="sso-flow", choices=list(SCENARIOS))
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--rate", type=int, default=97, help="py-spy samples per second")
    args = parser.parse_args(argv)

    _, config, manifest = prepare(args.backend, workers=args.workers, totp_users=2000)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = f"{stamp}-profile-{args.scenario}-{args.backend}"
    outputs = {mode: SCRATCH / f"{name}-{mode}.collapsed.txt" for mode in MODES}
    spies: list[subprocess.Popen[bytes]] = []
    with start_idp(config, manifest) as server:
        target = Target.from_manifest(manifest, server.pid)

        def start_spies() -> None:
            # Both samplers for exactly the measurement window (set-up and warm-up excluded).
            for mode, extra in MODES.items():
                spies.append(subprocess.Popen(  # noqa: S603 - our own command, our own server
                    [str(VENV_BIN / "py-spy"), "record", "--pid", str(server.pid),
                     "--subprocesses", "--nonblocking", "--rate", str(args.rate),
                     "--duration", str(int(args.duration)), "--format", "raw",
                     "--output", str(outputs[mode]), *extra],
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))

        record = asyncio.run(run_scenario(
            target, SCENARIOS[args.scenario],
            RunConfig(args.concurrency, args.duration + 1.0, 2.0), on_window=start_spies))
        errors = []
        for spy in spies:
            try:
                _, err = spy.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                spy.send_signal(signal.SIGINT)
                _, err = spy.communicate(timeout=30)
            errors.append(err.decode(errors="replace")[-400:])
    missing = [mode for mode, path in outputs.items() if not path.exists()]
    if missing:
        print(f"py-spy wrote nothing for {missing}: {errors}", file=sys.stderr)
        return 1
    record.update(conditions())
    sections = [report(summarise(outputs[mode]), record,
                       f"{args.scenario} on {args.backend}, c={args.concurrency} — {label}")
                for mode, label in (("active", ACTIVE_LABEL), ("gil", GIL_LABEL))]
    path = RESULTS / f"{name}.md"
    path.write_text("\n\n".join(sections), "utf-8")
    print(describe(record))
    print(f"profile: {path}\nstacks: {', '.join(str(p) for p in outputs.values())}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
