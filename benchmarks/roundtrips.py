"""Round trips per request: SQL statements, commits and store operations per endpoint while
the driver runs a few flows of a scenario against the app served in this process.

Counts do not depend on machine load, so they are the steadiest guide to the hot path:
every statement is a database round trip on PostgreSQL, every commit an fsync on SQLite
(and a WAL flush on PostgreSQL), every store operation a Redis round trip.

    python -m benchmarks.roundtrips --scenario sso-flow --flows 20
"""

from __future__ import annotations

import argparse
import asyncio
import threading
from collections import Counter, defaultdict
from typing import Any

from benchmarks.driver import RunConfig, run_scenario
from benchmarks.results import RESULTS
from benchmarks.scenarios import SCENARIOS
from benchmarks.server import prepare
from benchmarks.target import Target

STORE_METHODS = ("get", "put", "add", "pop", "delete", "incr", "decr", "ttl", "ttls", "incr_each")


def instrument(app: Any) -> defaultdict[str, Counter[str]]:
    """Count per endpoint: requests, SQL statements by verb, commits, store calls."""
    from flask import has_request_context, request
    from sqlalchemy import event

    from idp.extensions import db

    counts: defaultdict[str, Counter[str]] = defaultdict(Counter)
    statements: defaultdict[str, Counter[str]] = defaultdict(Counter)
    app.extensions["bench.statements"] = statements

    def endpoint() -> str:
        if not has_request_context():
            return "(outside a request)"
        # The session is opened before routing: name it by the path's first segment.
        return request.endpoint or f"(session open) /{request.path.split('/')[1]}"

    @app.before_request
    def _count_request() -> None:
        counts[endpoint()]["requests"] += 1

    with app.app_context():
        engine = db.engine

    @event.listens_for(engine, "before_cursor_execute")
    def _statement(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        verb = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "?"
        counts[endpoint()]["sql"] += 1
        counts[endpoint()][f"sql {verb}"] += 1
        statements[endpoint()][" ".join(statement.split())[:150]] += 1

    @event.listens_for(engine, "commit")
    def _commit(conn: Any) -> None:
        counts[endpoint()]["commits"] += 1

    store = app.extensions["idp.store"]
    for name in STORE_METHODS:
        original = getattr(store, name)

        def counted(*args: Any, _original: Any = original, _name: str = name,
                    **kwargs: Any) -> Any:
            counts[endpoint()]["store"] += 1
            counts[endpoint()][f"store {_name}"] += 1
            return _original(*args, **kwargs)

        setattr(store, name, counted)
    return counts


def table(counts: defaultdict[str, Counter[str]], flows: int) -> str:
    columns = ["requests", "sql", "commits", "store"]
    lines = ["| endpoint | requests/flow | SQL/request | commits/request | store ops/request "
             "| detail (per request) |", "|---|---|---|---|---|---|"]
    totals: Counter[str] = Counter()
    opened: Counter[str] = Counter()
    for name, c in list(counts.items()):
        if name.startswith("(session open)"):
            opened.update(c)
            del counts[name]
    if opened:
        counts["(session load, before routing)"] = opened
    for name, c in sorted(counts.items(), key=lambda kv: -kv[1]["requests"]):
        n = c["requests"] or flows
        for column in columns:
            totals[column] += c[column]
        detail = ", ".join(f"{k} {v / n:.1f}" for k, v in sorted(c.items())
                           if k.startswith(("sql ", "store ")))
        per = "" if c["requests"] else " (per flow)"
        lines.append(f"| `{name}`{per} | {c['requests'] / flows:.2f} | {c['sql'] / n:.1f} "
                     f"| {c['commits'] / n:.1f} | {c['store'] / n:.1f} | {detail} |")
    lines.append(f"| **per flow** | {totals['requests'] / flows:.1f} | "
                 f"**{totals['sql'] / flows:.1f}** | **{totals['commits'] / flows:.1f}** "
                 f"| **{totals['store'] / flows:.1f}** | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="sso-flow", choices=list(SCENARIOS))
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--backend", default="sqlite", choices=["sqlite", "postgres"])
    args = parser.parse_args(argv)

    from werkzeug.serving import make_server

    from idp import create_app

    _, config, manifest = prepare(args.backend, workers=1, totp_users=200)
    app = create_app(environ={"IDP_CONFIG": str(config)})
    import logging

    logging.getLogger("idp").setLevel(logging.WARNING)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    counts = instrument(app)
    port = int(manifest["base_url"].rsplit(":", 1)[1])
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        target = Target.from_manifest(manifest)
        # Set-up (sign-ins) is counted too; it is subtracted by running set-up alone first.
        record = asyncio.run(run_scenario(target, SCENARIOS[args.scenario],
                                          RunConfig(1, 0.01, 0.0, max_extra_warmup=0.0)))
        counts.clear()
        app.extensions["bench.statements"].clear()
        record = asyncio.run(run_scenario(target, SCENARIOS[args.scenario],
                                          RunConfig(1, args.seconds, 0.0,
                                                    max_extra_warmup=0.0)))
    finally:
        server.shutdown()
        thread.join(5)
    # The second run's set-up (one sign-in) is in the counts: drop its endpoints' first pass
    # by reporting per measured flow over every request (set-up is one flow-equivalent).
    flows = max(1, record["flows"])
    text = (f"## Round trips per request: {args.scenario} ({args.backend}, "
            f"{flows} flows, 1 virtual user; set-up sign-in included once)\n\n"
            + table(counts, flows))
    statements = app.extensions["bench.statements"]
    text += "\n\n### Statements per request, by endpoint\n"
    for name, c in counts.items():
        if name not in statements or not c["requests"]:
            continue
        text += f"\n`{name}`:\n\n"
        text += "\n".join(f"- {n / c['requests']:.1f}x `{sql}`"
                           for sql, n in statements[name].most_common(12)) + "\n"
    print(text)
    path = RESULTS / f"roundtrips-{args.scenario}-{args.backend}.md"
    path.write_text(text + "\n", "utf-8")
    print(f"written: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
