"""Throughput: completed runs per second at concurrency 1, 8, 64, 256, SQLite and PostgreSQL
(issue 7, item 2).

A zero-latency upstream and `assistantd serve` run as subprocesses; this process runs `c`
async `openai` SDK loops (one `AsyncOpenAI` client, one connection per loop), each doing
`beta.threads.create_and_run_poll` (thread with one user message + run + polls at the
server's `openai-poll-after-ms`) again and again. After a warm-up, completions are counted
in 1-second windows; the table gives the median / p90 / min–max over windows, the run
latency, and the CPU time the server and this client spent per run (the machine has few
cores, and client and server share them: read the client column before blaming the server).

    python -m bench.throughput [--quick] [--seconds S] [--concurrency 1,8,64,256] [--db sqlite,postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from openai import AsyncOpenAI, DefaultAsyncHttpxClient

from bench.common import (
    API_KEY,
    RESULTS,
    Server,
    Upstream,
    cpu_seconds,
    fmt,
    hot_spots,
    machine_cpu,
    postgres_available,
    postgres_database,
    proc_status,
    profiled,
    publish,
    pyplot,
    raise_nofile,
    summary,
    table,
)

NAME = "throughput"
MODEL = "gpt-4o-mini"


def _client_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def _level(
    base_url: str,
    assistant_id: str,
    concurrency: int,
    warmup: float,
    seconds: float,
    server_pid: int,
    api_key: str = API_KEY,
) -> dict[str, Any]:
    limits = httpx.Limits(
        max_connections=concurrency + 8, max_keepalive_connections=concurrency + 8
    )
    client = AsyncOpenAI(
        base_url=base_url,
        api_key=api_key,
        max_retries=0,
        timeout=120,
        http_client=DefaultAsyncHttpxClient(limits=limits),
    )
    done: list[tuple[float, float]] = []  # (finished at, latency)
    errors: list[str] = []
    statuses: dict[str, int] = {}
    stop_at = time.perf_counter() + warmup + seconds
    max_runs = (
        int(concurrency * (warmup + seconds) * 100) + 100
    )  # a bound, never reached in practice

    async def loop() -> None:
        while time.perf_counter() < stop_at and len(done) + len(errors) < max_runs:
            t0 = time.perf_counter()
            try:
                run = await client.beta.threads.create_and_run_poll(
                    assistant_id=assistant_id,
                    thread={"messages": [{"role": "user", "content": "Say hello"}]},
                )
            except Exception as exc:  # counted, shown, never silently dropped
                errors.append(f"{type(exc).__name__}: {exc}"[:200])
                await asyncio.sleep(0.05)
                continue
            t1 = time.perf_counter()
            statuses[run.status] = statuses.get(run.status, 0) + 1
            if run.status == "completed":
                done.append((t1, t1 - t0))
            else:
                errors.append(f"run ended {run.status}: {run.last_error}")

    start = time.perf_counter()
    cpu_s0, cpu_c0 = cpu_seconds(server_pid), _client_cpu()
    tasks = [asyncio.create_task(loop()) for _ in range(concurrency)]
    await asyncio.sleep(warmup)
    t_measure = time.perf_counter()
    cpu_s1, cpu_c1, m1 = cpu_seconds(server_pid), _client_cpu(), machine_cpu()
    await asyncio.gather(*tasks)
    t_end = start + warmup + seconds
    cpu_s2, cpu_c2, m2 = cpu_seconds(server_pid), _client_cpu(), machine_cpu()
    await client.close()
    wall = time.perf_counter() - t_measure
    measured = [(t, lat) for t, lat in done if t_measure <= t <= t_end]
    windows = []
    for w in range(int(seconds)):
        lo, hi = t_measure + w, t_measure + w + 1
        windows.append(float(sum(1 for t, _ in measured if lo <= t < hi)))
    n = len(measured)
    del cpu_s0, cpu_c0
    return {
        "concurrency": concurrency,
        "runs": n,
        "runs_per_second": n / seconds,
        "windows": summary(windows),
        "latency": summary([lat for _, lat in measured]),
        "errors": len(errors),
        "error_examples": sorted(set(errors))[:5],
        "statuses": statuses,
        "server_cpu_ms_per_run": 1000 * (cpu_s2 - cpu_s1) / max(n, 1),
        "server_cpu_utilisation": (cpu_s2 - cpu_s1) / wall,
        "client_cpu_ms_per_run": 1000 * (cpu_c2 - cpu_c1) / max(n, 1),
        "client_cpu_utilisation": (cpu_c2 - cpu_c1) / wall,
        "machine_cpu_utilisation": (m2[0] - m1[0]) / max(m2[1] - m1[1], 1.0),
        "server_rss_mb": proc_status(server_pid)["VmRSS"] / 1024,
    }


@contextlib.contextmanager
def _database(db: str) -> Iterator[str | None]:
    if db == "sqlite":
        yield None
    else:
        with postgres_database() as url:
            yield url


def measure(
    dbs: list[str],
    levels: list[int],
    warmup: float,
    seconds: float,
    profile_level: int | None = None,
) -> dict[str, Any]:
    raise_nofile()
    results: dict[str, list[dict[str, Any]]] = {}
    with Upstream(token_delay=0.0) as up:
        for db in dbs:
            results[db] = []
            with _database(db) as url, Server(llm_base_url=up.base_url, database_url=url) as server:

                async def run_levels(server: Server = server, db: str = db) -> None:
                    setup = AsyncOpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=0)
                    assistant = await setup.beta.assistants.create(model=MODEL, name="bench")
                    await setup.close()
                    for c in levels:
                        out = (
                            RESULTS / f"{NAME}_profile_{db}_c{c}.txt"
                            if c == profile_level
                            else None
                        )
                        with profiled(server.pid if out else None, out):
                            r = await _level(
                                server.base_url, assistant.id, c, warmup, seconds, server.pid
                            )
                        r["database"] = db
                        results[db].append(r)
                        print(
                            f"  {db:8} c={c:<4} {r['runs_per_second']:7.1f} runs/s  "
                            f"p50 {1000 * r['latency'].get('median', float('nan')):7.1f} ms  "
                            f"errors {r['errors']}  server CPU {r['server_cpu_utilisation']:.0%}  "
                            f"client CPU {r['client_cpu_utilisation']:.0%}  "
                            f"machine CPU {r['machine_cpu_utilisation']:.0%}",
                            flush=True,
                        )
                        if out is not None:
                            for share, frame in hot_spots(out, 25, self_time=False):
                                print(f"      {share:5.1f}%  {frame}")

                asyncio.run(run_levels())
    return {"results": results}


def report(result: dict[str, Any]) -> str:
    rows = []
    for db, levels in result["results"].items():
        for r in levels:
            w, lat = r["windows"], r["latency"]
            rows.append(
                [
                    db,
                    r["concurrency"],
                    fmt(r["runs_per_second"], 1),
                    fmt(w.get("median"), 0),
                    fmt(w.get("p90"), 0),
                    f"{fmt(w.get('min'), 0)} – {fmt(w.get('max'), 0)}",
                    fmt(1000 * lat.get("median", float("nan")), 1),
                    fmt(1000 * lat.get("p99", float("nan")), 1),
                    fmt(r["server_cpu_ms_per_run"], 1),
                    fmt(r["client_cpu_ms_per_run"], 1),
                    r["errors"],
                ]
            )
    out = [
        table(
            [
                "db",
                "c",
                "runs/s",
                "1-s window p50",
                "p90",
                "min – max",
                "latency p50 ms",
                "p99 ms",
                "server CPU ms/run",
                "client CPU ms/run",
                "errors",
            ],
            rows,
        )
    ]
    sqlite64 = next(
        (r for r in result["results"].get("sqlite", []) if r["concurrency"] == 64), None
    )
    if sqlite64 is not None:
        met = sqlite64["runs_per_second"] >= 200
        result["targets"] = {
            "sqlite_c64_runs_per_second": sqlite64["runs_per_second"],
            "target": 200,
            "met": met,
        }
        out.append(
            f"target ≥ 200 runs/s at c=64 on SQLite: {fmt(sqlite64['runs_per_second'], 1)} → "
            f"{'MET' if met else 'MISSED'}"
        )
    for levels in result["results"].values():
        for r in levels:
            if r["error_examples"]:
                out.append(
                    f"{r['database']} c={r['concurrency']} errors, e.g.: {r['error_examples'][:2]}"
                )
    return "\n".join(out)


def plot(result: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for db, levels in result["results"].items():
        cs = [r["concurrency"] for r in levels]
        ax1.errorbar(
            cs,
            [r["runs_per_second"] for r in levels],
            yerr=[
                [r["runs_per_second"] - r["windows"].get("min", 0) for r in levels],
                [r["windows"].get("max", 0) - r["runs_per_second"] for r in levels],
            ],
            marker="o",
            capsize=3,
            label=db,
        )
        ax2.plot(
            cs,
            [1000 * r["latency"].get("median", 0) for r in levels],
            marker="o",
            label=f"{db} p50",
        )
        ax2.plot(
            cs,
            [1000 * r["latency"].get("p99", 0) for r in levels],
            marker="x",
            ls="--",
            label=f"{db} p99",
        )
    ax1.axhline(200, color="tab:red", ls="--", lw=1, label="target (SQLite, c=64)")
    for ax in (ax1, ax2):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrent clients")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    ax1.set_ylabel("completed runs / s (bars: min–max of 1-s windows)")
    ax2.set_ylabel("run latency, create → completed seen (ms)")
    ax2.set_yscale("log")
    fig.suptitle("assistantd throughput, zero-latency upstream")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run (~25 s)")
    parser.add_argument("--seconds", type=float, default=None, help="measured seconds per level")
    parser.add_argument("--concurrency", default=None, help="comma-separated levels")
    parser.add_argument("--db", default=None, help="sqlite,postgres")
    parser.add_argument(
        "--profile",
        type=int,
        default=None,
        metavar="C",
        help="sample the server with py-spy at this concurrency (numbers not for publishing)",
    )
    args = parser.parse_args(argv)
    levels = [
        int(c) for c in (args.concurrency or ("8,64" if args.quick else "1,8,64,256")).split(",")
    ]
    dbs = (args.db or "sqlite,postgres").split(",")
    if "postgres" in dbs and not postgres_available():
        print("PostgreSQL is not reachable on 127.0.0.1:5432; skipping it")
        dbs.remove("postgres")
    seconds = args.seconds or (3.0 if args.quick else 10.0)
    warmup = 1.0 if args.quick else 2.0
    result = measure(dbs, levels, warmup, seconds, args.profile)
    result.update(mode="quick" if args.quick else "full", seconds=seconds, warmup=warmup)
    text = report(result)
    print(text)
    suffix = "_quick" if args.quick else ""
    if args.profile is not None:
        suffix += "_profiled"
    publish(NAME + suffix, result, text, lambda png: plot(result, png))
    return result


if __name__ == "__main__":
    main()
