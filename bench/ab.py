"""A/B: the same load against two checkouts' servers, alternating, at the same machine moment.

The machine is shared and noisy, so two servers (one per source tree, `PYTHONPATH` set to
each tree's `src`) run side by side against one zero-latency upstream, and short rounds of
the throughput load (`bench.throughput`'s SDK loop: `create_and_run_poll`) alternate between
them, A B B A A B ... Reported: runs/s and the server's own CPU ms per completed run, per
round, and the B/A ratios of their medians.

    python -m bench.ab --a /work/main/src --b src [--rounds 6] [--seconds 4] [--concurrency 64]
        [--db sqlite|postgres] [--db-key]

`--db-key`: the load authenticates with a key stored in each server's database (`assistantd
keys create`) instead of the static `ASSISTANTD_API_KEYS` one, which never reads it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from openai import AsyncOpenAI

from bench.common import (
    API_KEY,
    ROOT,
    Server,
    Upstream,
    fmt,
    postgres_database,
    raise_nofile,
    table,
    write_results,
)
from bench.throughput import MODEL, _level

NAME = "ab"


@contextlib.contextmanager
def _server(src: Path, upstream: str, db: str) -> Iterator[Server]:
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = f"{src.resolve()}:{ROOT}"
    try:
        with contextlib.ExitStack() as stack:
            url = stack.enter_context(postgres_database()) if db == "postgres" else None
            server = stack.enter_context(Server(llm_base_url=upstream, database_url=url))
            yield server
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


async def _assistant(server: Server) -> str:
    setup = AsyncOpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=0)
    assistant = await setup.beta.assistants.create(model=MODEL, name="bench")
    await setup.close()
    return assistant.id


def measure(
    a: Path,
    b: Path,
    rounds: int,
    seconds: float,
    concurrency: int,
    db: str,
    db_key: bool = False,
) -> dict[str, Any]:
    raise_nofile()
    per: dict[str, list[dict[str, Any]]] = {"A": [], "B": []}
    with (
        Upstream(token_delay=0.0) as up,
        _server(a, up.base_url, db) as sa,
        _server(b, up.base_url, db) as sb,
    ):
        servers = {"A": sa, "B": sb}
        keys = {k: s.create_key() if db_key else API_KEY for k, s in servers.items()}

        async def go() -> None:
            ids = {k: await _assistant(s) for k, s in servers.items()}
            for k, s in servers.items():  # warm both (imports, caches, connections)
                await _level(s.base_url, ids[k], concurrency, 0.5, 1.0, s.pid, keys[k])
            order = ["A", "B", "B", "A"]
            for i in range(rounds):
                k = order[i % 4]
                for side in (k, "B" if k == "A" else "A"):
                    s = servers[side]
                    r = await _level(
                        s.base_url, ids[side], concurrency, 1.0, seconds, s.pid, keys[side]
                    )
                    per[side].append(r)
                    print(
                        f"  round {i} {side}: {r['runs_per_second']:6.1f} runs/s  "
                        f"server CPU {r['server_cpu_ms_per_run']:5.2f} ms/run  errors {r['errors']}",
                        flush=True,
                    )

        asyncio.run(go())
    return {
        "a": str(a),
        "b": str(b),
        "db": db,
        "db_key": db_key,
        "concurrency": concurrency,
        "seconds": seconds,
        "rounds": per,
    }


def _ratio(b: float, a: float) -> float | None:
    """B/A, or None (shown `-`) when A measured nothing (no run finished in its windows)."""
    return b / a if a else None


def report(result: dict[str, Any]) -> str:
    med: dict[str, dict[str, float]] = {}
    for side, rs in result["rounds"].items():
        med[side] = {
            "rps": statistics.median(r["runs_per_second"] for r in rs),
            "cpu": statistics.median(r["server_cpu_ms_per_run"] for r in rs),
            "p50": statistics.median(1000 * r["latency"].get("median", 0.0) for r in rs),
            "p99": statistics.median(1000 * r["latency"].get("p99", 0.0) for r in rs),
            "errors": sum(r["errors"] for r in rs),
        }
    rows = [
        [
            side,
            result[side.lower()],
            fmt(m["rps"], 1),
            fmt(m["cpu"], 2),
            fmt(m["p50"], 1),
            fmt(m["p99"], 1),
            int(m["errors"]),
        ]
        for side, m in med.items()
    ]
    a, b = med["A"], med["B"]
    rows.append(
        [
            "B/A",
            "",
            fmt(_ratio(b["rps"], a["rps"]), 3),
            fmt(_ratio(b["cpu"], a["cpu"]), 3),
            fmt(_ratio(b["p50"], a["p50"]), 3),
            fmt(_ratio(b["p99"], a["p99"]), 3),
            "",
        ]
    )
    # Each round's two sides ran back to back: the median of their ratios shrugs off a
    # load spike that hit a few rounds, which the ratio of the medians does not.
    pairs = list(zip(result["rounds"]["A"], result["rounds"]["B"], strict=True))

    def paired(value: Callable[[dict[str, Any]], float]) -> float:
        ratios = [value(rb) / value(ra) for ra, rb in pairs if value(ra)]
        return statistics.median(ratios) if ratios else 0.0

    rows.append(
        [
            "B/A paired",
            "median of the rounds' ratios",
            fmt(paired(lambda r: r["runs_per_second"]), 3),
            fmt(paired(lambda r: r["server_cpu_ms_per_run"]), 3),
            fmt(paired(lambda r: r["latency"].get("median", 0.0)), 3),
            "",
            "",
        ]
    )
    result["medians"] = med
    return (
        f"{result['db']}{', stored key' if result.get('db_key') else ''}, concurrency "
        f"{result['concurrency']}, {len(result['rounds']['A'])} rounds of "
        f"{result['seconds']:.0f} s per side (medians)\n"
        + table(
            ["side", "source", "runs/s", "server CPU ms/run", "latency p50 ms", "p99 ms", "errors"],
            rows,
        )
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", type=Path, required=True, help="source tree A (its src/)")
    parser.add_argument("--b", type=Path, required=True, help="source tree B (its src/)")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--db", default="sqlite", choices=["sqlite", "postgres"])
    parser.add_argument(
        "--db-key", action="store_true", help="authenticate with a stored key, not a static one"
    )
    parser.add_argument(
        "--name", default=NAME, help="results file name (bench/results/<name>.json)"
    )
    args = parser.parse_args(argv)
    result = measure(
        args.a, args.b, args.rounds, args.seconds, args.concurrency, args.db, args.db_key
    )
    text = report(result)
    print(text)
    path = write_results(args.name, {**result, "table": text})
    print(f"\nwrote {path}")
    return result


if __name__ == "__main__":
    main()
