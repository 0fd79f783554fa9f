"""`assistantd import` speed: a 10k-thread exporter dump into SQLite and PostgreSQL.

    python bench/import_speed.py            # 10,000 threads × 4 messages
    python bench/import_speed.py --quick    # 500 threads × 4 messages

Measures, per database: reading and checking the dump (`transfer.dump.read`, no database),
the import (plan + writes), and importing the same dump again (everything skipped).
Prints a table and writes `bench/results/import_speed.json` (`import_speed_quick.json`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from assistantd.core.db import create_engine, session_maker
from assistantd.migrations import upgrade
from assistantd.testing.dumps import write_many_threads
from assistantd.testing.server import pg_database
from assistantd.transfer import dump as reader
from assistantd.transfer.load import Report, import_dump
from bench.common import RESULTS, fmt, table


async def _import(url: str, data_dir: Path, path: Path) -> tuple[dict[str, float], Report, Report]:
    """Wall and CPU seconds (this process's: the database server's are not counted) of each
    phase, and the reports of the first and second import."""
    engine = create_engine(url)
    times: dict[str, float] = {}
    try:
        sessions = session_maker(engine)
        t0, c0 = time.perf_counter(), time.process_time()
        loaded = reader.read(path)
        t1, c1 = time.perf_counter(), time.process_time()
        first = await import_dump(sessions, data_dir, "bench", loaded)
        t2, c2 = time.perf_counter(), time.process_time()
        again = await import_dump(sessions, data_dir, "bench", reader.read(path))
        t3 = time.perf_counter()
        times.update(
            read_s=t1 - t0,
            read_cpu_s=c1 - c0,
            import_s=t2 - t1,
            import_cpu_s=c2 - c1,
            again_s=t3 - t2,
        )
        return times, first, again
    finally:
        await engine.dispose()


def _one(dialect: str, path: Path, tmp: Path) -> dict[str, Any]:
    drop = None
    if dialect == "postgres":
        url, drop = pg_database("assistantd_bench")
    else:
        url = f"sqlite+aiosqlite:///{tmp / 'bench.db'}"
    try:
        upgrade(url)
        times, first, again = asyncio.run(_import(url, tmp / "data", path))
    finally:
        if drop:
            drop()
    threads, messages = first.created["thread"], first.created["thread.message"]
    assert sum(again.created.values()) == 0
    import_s = times["import_s"]
    return {
        "dialect": dialect,
        "threads": threads,
        "messages": messages,
        **times,
        "threads_per_s": threads / import_s,
        "messages_per_s": messages / import_s,
        "objects_per_s": (threads + messages) / import_s,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--threads", type=int)
    p.add_argument("--messages", type=int, default=4, help="per thread")
    p.add_argument("--dialects", default="sqlite,postgres")
    args = p.parse_args(argv)
    threads = args.threads or (500 if args.quick else 10_000)
    results = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        t0 = time.perf_counter()
        path = write_many_threads(tmp / "dump", threads, args.messages)
        print(f"wrote {threads} thread files in {time.perf_counter() - t0:.1f} s")
        for dialect in args.dialects.split(","):
            (tmp / dialect).mkdir()
            results.append(_one(dialect, path, tmp / dialect))
    rows = [
        [
            r["dialect"],
            r["threads"],
            r["messages"],
            f"{fmt(r['read_s'])} ({fmt(r['read_cpu_s'])})",
            f"{fmt(r['import_s'])} ({fmt(r['import_cpu_s'])})",
            fmt(r["threads_per_s"], 0),
            fmt(r["messages_per_s"], 0),
            fmt(r["objects_per_s"], 0),
            fmt(r["again_s"]),
        ]
        for r in results
    ]
    print(
        table(
            [
                "database",
                "threads",
                "messages",
                "read+check s (CPU)",
                "import s (CPU)",
                "threads/s",
                "messages/s",
                "objects/s",
                "again (all skipped) s",
            ],
            rows,
        )
    )
    out = {"benchmark": "import_speed", "quick": args.quick, "results": results}
    RESULTS.mkdir(exist_ok=True)
    name = "import_speed_quick.json" if args.quick else "import_speed.json"
    (RESULTS / name).write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
