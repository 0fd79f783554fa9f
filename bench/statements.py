"""Statements and transactions per completed run of the SDK flow, and who makes them.

Starts assistantd in this process (uvicorn in a thread, the scripted `echo` model), traces
every statement its database driver runs (sqlite3's trace callback, asyncpg's query logger:
statements sent past SQLAlchemy count too), then makes `--runs` SDK
`create_and_run_poll` calls one at a time after a warm-up and prints, per run, the
statements of each kind and the transactions (COMMITs and ROLLBACKs, less the pool's
pre-ping ones on PostgreSQL), by the task that made them: the
API's requests, the run's worker, the rest (event log flushes, sweeps, lease renewals).

    python -m bench.statements [--db sqlite|postgres] [--runs 20] [--show]

One run at a time, so the event log's flush (one transaction for every run's events of a
`ASSISTANTD_EVENT_FLUSH_SECONDS`) counts about once a run; under load it is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextvars
import re
import tempfile
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from bench.common import table

#: Which kind of task made a statement (set in each task's context by the task factory).
SIDE: contextvars.ContextVar[str] = contextvars.ContextVar("bench_side", default="other")


def _side(coro: Coroutine[Any, Any, Any] | Any) -> str:
    code = getattr(coro, "cr_code", None)
    path = code.co_filename if code is not None else ""
    if "/worker/" in path:
        return "worker"
    if "uvicorn" in path or "starlette" in path or "/api/" in path:
        return "api"
    return "other"


class Trace:
    """Statements seen, by (side, statement), while `on` is set."""

    def __init__(self) -> None:
        self.on = False
        self.counts: collections.Counter[tuple[str, str]] = collections.Counter()
        self._last: tuple[str, str] | None = None

    def add(self, sql: str) -> None:
        if not self.on:
            return
        key = (SIDE.get(), _shape(sql))
        if key == self._last and key[1] in MANY:
            key = (key[0], f"{key[1]} (more rows)")  # the rows of one executemany
        else:
            self._last = key
        self.counts[key] += 1


#: Statements run with executemany: sqlite3 traces each row, asyncpg each batch.
MANY = {"INSERT run_events"}


def _shape(sql: str) -> str:
    """A statement's first words and its table, with its parameters left out."""
    sql = " ".join(sql.split()).rstrip(";").strip() or ";"
    head = sql.split(" ", 1)[0].upper()
    table_name = re.search(r"\b(?:FROM|INTO|UPDATE)\s+\"?(\w+)", sql, re.IGNORECASE)
    if head in ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE"):
        return sql.split(" ")[0].upper() if head != "BEGIN" else "BEGIN"
    if head == ";" or sql in (";", ""):
        return "; (ping)"
    lock = " FOR UPDATE" if "FOR UPDATE" in sql.upper() else ""
    return f"{head} {table_name.group(1) if table_name else '?'}{lock}"


def _install(trace: Trace) -> None:
    @event.listens_for(Engine, "before_cursor_execute")
    def _statement(conn: Any, cursor: Any, sql: str, _p: Any, _c: Any, many: bool) -> None:
        # asyncpg logs the statements it runs without a prepared statement of SQLAlchemy's
        # (transactions, pings, executemany, whatever is sent past SQLAlchemy); not these.
        if conn.dialect.name == "postgresql" and not many:
            trace.add(sql)

    @event.listens_for(Engine, "connect")
    def _connect(dbapi_conn: Any, _: Any) -> None:
        driver = dbapi_conn.driver_connection
        raw = getattr(driver, "_connection", None)
        if hasattr(driver, "add_query_logger"):  # asyncpg
            driver.add_query_logger(lambda q: trace.add(q.query))
        elif raw is not None and hasattr(raw, "set_trace_callback"):  # sqlite3
            raw.set_trace_callback(trace.add)


def _task_factory(loop: asyncio.AbstractEventLoop, coro: Any, **kw: Any) -> asyncio.Task[Any]:
    context = kw.pop("context", None)
    ctx = (context or contextvars.copy_context()).copy()
    ctx.run(SIDE.set, _side(coro))
    return asyncio.Task(coro, loop=loop, context=ctx, **kw)


def measure(db: str, runs: int) -> dict[str, Any]:
    from assistantd.testing.server import make_settings, pg_database, start_server

    trace = Trace()
    _install(trace)
    drop = None
    url = None
    if db == "postgres":
        url, drop = pg_database("assistantd_bench_statements")
    with tempfile.TemporaryDirectory() as tmp:
        server, stop = start_server(make_settings(Path(tmp), url, sandbox_pool_size=0))
        try:
            loop = server.ctx.runs.dispatcher.worker._sweeper.get_loop()
            loop.call_soon_threadsafe(loop.set_task_factory, _task_factory)
            time.sleep(0.2)
            client = server.async_client()

            async def go() -> None:
                assistant = await client.beta.assistants.create(model="m", name="bench")
                for n in range(3 + runs):
                    if n == 3:
                        await asyncio.sleep(0.5)  # the warm-up's event log flushed
                        trace.on = True
                    run = await client.beta.threads.create_and_run_poll(
                        assistant_id=assistant.id,
                        thread={"messages": [{"role": "user", "content": "Say hello"}]},
                    )
                    assert run.status == "completed", run.status
                await asyncio.sleep(0.5)  # the last run's event log flushed
                trace.on = False
                await client.close()

            asyncio.run(go())
        finally:
            stop()
            if drop:
                drop()
    return {"db": db, "runs": runs, "counts": dict(trace.counts)}


def report(result: dict[str, Any]) -> str:
    runs = result["runs"]
    counts: dict[tuple[str, str], int] = result["counts"]
    rows = [
        [side, shape, f"{n / runs:.2f}"]
        for (side, shape), n in sorted(counts.items(), key=lambda kv: (kv[0][0], -kv[1]))
    ]
    totals = collections.Counter[str]()
    ends = collections.Counter[str]()
    pings = collections.Counter[str]()
    for (side, shape), n in counts.items():
        if shape in ("COMMIT", "ROLLBACK"):
            ends[side] += n
        elif shape == "; (ping)":
            pings[side] += n
        elif shape != "BEGIN" and not shape.endswith("(more rows)"):
            totals[side] += n
    sides = sorted(set(totals) | set(ends))
    summary = [
        [
            side,
            f"{totals[side] / runs:.2f}",
            f"{(ends[side] - pings[side]) / runs:.2f}",
            f"{pings[side] / runs:.2f}",
        ]
        for side in [*sides, "all"]
        if side != "all"
    ]
    summary.append(
        [
            "all",
            f"{sum(totals.values()) / runs:.2f}",
            f"{(sum(ends.values()) - sum(pings.values())) / runs:.2f}",
            f"{sum(pings.values()) / runs:.2f}",
        ]
    )
    return (
        f"{result['db']}, {runs} runs one at a time, per run:\n\n"
        + table(["side", "statement", "per run"], rows)
        + "\n\n"
        + table(
            [
                "side",
                "statements (not BEGIN/COMMIT; an executemany once)",
                "transactions",
                "pool pre-pings (BEGIN; ROLLBACK)",
            ],
            summary,
        )
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="sqlite", choices=["sqlite", "postgres"])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args(argv)
    result = measure(args.db, args.runs)
    print(report(result))
    return result


if __name__ == "__main__":
    main()
