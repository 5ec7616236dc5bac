"""Scale check (issue 7): the same scenarios on PostgreSQL + Redis against a small database and
a large one (1,000,000 more users and 10,000,000 audit rows), both servers up at once and the
runs alternating (small, large, then large, small, …) so drifting machine load hits both;
throughput should stay within 10 % of the small-database figure.

The small instance uses database ``bench`` and Redis db 12, the large one ``bench_large`` and
Redis db 13 (``BENCH_PG_LARGE_DATABASE``, ``BENCH_REDIS_LARGE_URL``).

The bulk path is ``COPY … FROM STDIN`` through psycopg, in text format, in chunks built in
Python, with each table's secondary indexes dropped first and rebuilt after (identical
definitions read from ``pg_indexes``): users get one precomputed password hash (the one the
seeded users already have, so the password is known), audit rows a realistic mix of event
types, users, clients, addresses and times over 90 days. ``ANALYZE`` follows, as after any
bulk load.

    python -m benchmarks.scale --users 1000000 --audit-rows 10000000 --scenarios sso-flow,refresh
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
import uuid
from typing import Any

from benchmarks.driver import RunConfig, describe, parse_list, run_scenario
from benchmarks.results import ResultFile
from benchmarks.scenarios import SCENARIOS
from benchmarks.server import PG_ADMIN_DSN, PG_DATABASE, REDIS_URL, prepare, start_idp
from benchmarks.target import Target

CHUNK = 50_000
AUDIT_TYPES = ("user.login_succeeded", "token.issued", "user.login_failed",
               "user.mfa_succeeded", "token.refreshed", "user.step_up_required",
               "user.logout", "client.created")
USER_COLUMNS = ("id", "username", "email", "email_verified", "name", "password_hash",
                "disabled", "phone_number_verified", "logins_without_mfa", "created_at",
                "updated_at")
AUDIT_COLUMNS = ("at", "type", "user_id", "client_id", "ip", "actor", "data")


LARGE_DATABASE = os.environ.get("BENCH_PG_LARGE_DATABASE", "bench_large")
LARGE_REDIS_URL = os.environ.get("BENCH_REDIS_LARGE_URL",
                                 REDIS_URL.rsplit("/", 1)[0] + "/13")


def bench_dsn(database: str = PG_DATABASE) -> str:
    return PG_ADMIN_DSN.rsplit("/", 1)[0] + f"/{database}"


def copy_users(conn: Any, count: int, password_hash: str) -> list[str]:
    """COPY ``count`` users (``scale-0000000``…); returns a sample of their ids for the audit
    rows (every user id is generated here, so no read-back is needed)."""
    now = int(time.time())
    ids: list[str] = []
    statement = f"COPY users ({', '.join(USER_COLUMNS)}) FROM STDIN"
    with conn.cursor() as cursor, cursor.copy(statement) as copy:
        for start in range(0, count, CHUNK):
            lines = []
            for i in range(start, min(count, start + CHUNK)):
                user_id = uuid.uuid4().hex
                if i % 10 == 0:
                    ids.append(user_id)
                name = f"scale-{i:07d}"
                lines.append(f"{user_id}\t{name}\t{name}@scale.test\tt\t{name}\t{password_hash}"
                             f"\tf\tf\t0\t{now - i % 86400}\t{now}\n")
            copy.write("".join(lines))
    return ids


def copy_audit(conn: Any, count: int, user_ids: list[str]) -> None:
    """COPY ``count`` audit rows spread over the last 90 days."""
    rng = random.Random(7)  # synthetic data, reproducible
    now = int(time.time())
    span = 90 * 86400
    statement = f"COPY audit_events ({', '.join(AUDIT_COLUMNS)}) FROM STDIN"
    with conn.cursor() as cursor, cursor.copy(statement) as copy:
        for start in range(0, count, CHUNK):
            lines = []
            for _ in range(min(CHUNK, count - start)):
                kind = AUDIT_TYPES[rng.randrange(len(AUDIT_TYPES))]
                user = user_ids[rng.randrange(len(user_ids))]
                ip = f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}"
                data = '{"method": "password"}' if kind.startswith("user.login") else "{}"
                lines.append(f"{now - rng.randrange(span)}\t{kind}\t{user}\tbench-rp\t{ip}"
                             f"\t\\N\t{data}\n")
            copy.write("".join(lines))


def secondary_indexes(conn: Any, table: str) -> list[tuple[str, str]]:
    """(name, CREATE statement) of the table's indexes that back no constraint."""
    rows = conn.execute(
        "SELECT i.indexname, i.indexdef FROM pg_indexes i "
        "WHERE i.schemaname = 'public' AND i.tablename = %s AND NOT EXISTS ("
        " SELECT 1 FROM pg_constraint c WHERE c.conindid = (quote_ident(i.indexname))::regclass)",
        (table,)).fetchall()
    return [(str(name), str(definition)) for name, definition in rows]


def without_indexes(conn: Any, table: str, load: Any) -> dict[str, float]:
    """Drop the table's secondary indexes, run ``load()``, rebuild them (a sorted build beats
    millions of random B-tree inserts on a small buffer pool); one transaction."""
    indexes = secondary_indexes(conn, table)
    for name, _ in indexes:
        conn.execute(f'DROP INDEX "{name}"')
    started = time.perf_counter()
    result = load()
    copied = time.perf_counter()
    conn.execute("SET LOCAL maintenance_work_mem = '512MB'")
    for _, definition in indexes:
        conn.execute(definition)
    conn.commit()
    return {"copy_s": round(copied - started, 1),
            "index_s": round(time.perf_counter() - copied, 1), "result": result}


def bulk_load(users: int, audit_rows: int, database: str) -> dict[str, Any]:
    """Load the rows into ``database``; returns timings and sizes."""
    import psycopg

    timings: dict[str, Any] = {}
    with psycopg.connect(bench_dsn(database)) as conn:
        row = conn.execute("SELECT password_hash FROM users WHERE password_hash IS NOT NULL "
                           "LIMIT 1").fetchone()
        if row is None:
            raise RuntimeError("seed the database first (no user with a password hash)")
        done = without_indexes(conn, "users", lambda: copy_users(conn, users, row[0]))
        ids = done.pop("result")
        timings["users"] = {"rows": users, **done}
        done = without_indexes(conn, "audit_events",
                               lambda: copy_audit(conn, audit_rows, ids))
        done.pop("result")
        timings["audit_events"] = {"rows": audit_rows, **done}
    with psycopg.connect(bench_dsn(database), autocommit=True) as conn:
        started = time.perf_counter()
        conn.execute("ANALYZE")
        timings["analyze_s"] = round(time.perf_counter() - started, 1)
        size = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        timings["database_mb"] = round((size[0] if size else 0) / 2**20)
    return timings


def comparison(records: list[dict[str, Any]]) -> str:
    """Medians over rounds per scenario x concurrency, large / small."""
    lines = ["## Scale check: large / small database (same run, alternating)", "",
             "| scenario | c | small /s | large /s | ratio (target >= 0.90) "
             "| server CPU ms/op small / large | DB CPU ms/op small / large |",
             "|---|---|---|---|---|---|---|"]

    def median(rows: list[dict[str, Any]], key: str) -> float | None:
        values = [r[key] for r in rows if r.get(key) is not None]
        return statistics.median(values) if values else None

    for scenario, concurrency in sorted({(r["scenario"], r["concurrency"]) for r in records}):
        cells = {}
        for size in ("small", "large"):
            rows = [r for r in records if r["database"] == size and r["scenario"] == scenario
                    and r["concurrency"] == concurrency]
            cells[size] = {k: median(rows, k) for k in
                           ("throughput_per_s", "server_cpu_ms_per_op", "db_cpu_ms_per_op")}
        small, large = cells["small"], cells["large"]
        if not small["throughput_per_s"] or large["throughput_per_s"] is None:
            continue
        ratio = large["throughput_per_s"] / small["throughput_per_s"]

        def ms(value: float | None) -> str:
            return "-" if value is None else f"{value:.1f}"

        lines.append(f"| {scenario} | {concurrency} | {small['throughput_per_s']:.1f} "
                     f"| {large['throughput_per_s']:.1f} | **{ratio:.2f}** "
                     f"| {ms(small['server_cpu_ms_per_op'])} / "
                     f"{ms(large['server_cpu_ms_per_op'])} "
                     f"| {ms(small['db_cpu_ms_per_op'])} / {ms(large['db_cpu_ms_per_op'])} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--audit-rows", type=int, default=10_000_000)
    parser.add_argument("--scenarios", default="sso-flow,refresh,login")
    parser.add_argument("--concurrency", default="8")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--label", default="scale")
    args = parser.parse_args(argv)
    scenarios, levels = parse_list(args.scenarios), [int(c) for c in parse_list(args.concurrency)]
    out = ResultFile(args.label)
    _, small_config, small = prepare("postgres", workers=args.workers, totp_users=2000)
    _, large_config, large = prepare("postgres", workers=args.workers, totp_users=2000,
                                     database=LARGE_DATABASE, redis_url=LARGE_REDIS_URL)
    print(f"bulk loading {args.users} users and {args.audit_rows} audit rows…",
          file=sys.stderr, flush=True)
    timings = bulk_load(args.users, args.audit_rows, LARGE_DATABASE)
    out.note("bulk load into the large database: " + json.dumps(timings))
    print(json.dumps(timings), file=sys.stderr, flush=True)
    with start_idp(small_config, small) as small_server, \
            start_idp(large_config, large) as large_server:
        targets = {"small": Target.from_manifest(small, small_server.pid),
                   "large": Target.from_manifest(large, large_server.pid)}
        ready = {"small": small_server.ready_seconds, "large": large_server.ready_seconds}
        for name in scenarios:
            for concurrency in levels:
                for round_no in range(args.rounds):
                    order = ("small", "large") if round_no % 2 == 0 else ("large", "small")
                    for size in order:
                        record = asyncio.run(run_scenario(
                            targets[size], SCENARIOS[name],
                            RunConfig(concurrency, args.duration, args.warmup)))
                        record.update({"database": size, "round": round_no,
                                       "ready_s": round(ready[size], 3), "label": out.label})
                        out.append(record)
                        print(describe(record) + f"  [{size}]", flush=True)
    table = comparison(out.records)
    print(table)
    out.write_markdown([table])
    print(f"summary: {out.markdown}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
