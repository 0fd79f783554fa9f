"""Runs per second: one `assistantd serve` against `assistantd cluster --api 2 --workers 2`.

Both on PostgreSQL and Redis, with a zero-latency upstream (the benchmark upstream of
`bench.common`). `c` async SDK loops do ``create_and_run_poll`` again and again, spread
round-robin over the API processes; completed runs are counted after a warm-up. This
machine has 2 cores shared with other work: the cluster cannot show more cores' worth of
throughput than there are, so read the result as the cost of the split (Redis hops,
cross-process wake-ups), not as scaling.

    python -m bench.cluster_throughput [--seconds 15] [--concurrency 8,32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from typing import Any

import httpx
from openai import AsyncOpenAI

from bench.common import API_KEY, RESULTS, Upstream, free_port, postgres_database, raise_nofile

REDIS = os.environ.get("ASSISTANTD_TEST_REDIS", "redis://127.0.0.1:6379/0")
MODEL = "gpt-4o-mini"


def _env(db_url: str, llm: str, data_dir: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANTD_")}
    env.update(
        {
            "ASSISTANTD_DATA_DIR": data_dir,
            "ASSISTANTD_API_KEYS": API_KEY,
            "ASSISTANTD_DATABASE_URL": db_url,
            "ASSISTANTD_REDIS_URL": REDIS,
            "ASSISTANTD_LLM_BASE_URL": llm,
            "ASSISTANTD_SANDBOX_POOL_SIZE": "0",
            "ASSISTANTD_HTTP_MAX_CONNECTIONS_PER_CLIENT": "0",
        }
    )
    return env


def _start(layout: str, env: dict[str, str]) -> tuple[subprocess.Popen[str], list[str]]:
    if layout == "single":
        port = free_port()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "assistantd",
                "serve",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            env=env,
            text=True,
        )
        urls = [f"http://127.0.0.1:{port}"]
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{urls[0]}/health").status_code == 200:
                    return proc, urls
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "serve did not start"
            time.sleep(0.2)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "assistantd",
            "cluster",
            "--api",
            "2",
            "--workers",
            "2",
            "--port",
            "0",
        ],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if m := re.match(r"ready api=(\S+) workers=", line):
            return proc, m.group(1).split(",")
    raise RuntimeError("cluster did not start")


async def _level(
    urls: list[str], concurrency: int, warmup: float, seconds: float
) -> dict[str, Any]:
    clients = [
        AsyncOpenAI(base_url=f"{u}/v1", api_key=API_KEY, max_retries=0, timeout=120) for u in urls
    ]
    assistant = await clients[0].beta.assistants.create(model=MODEL)
    done: list[float] = []
    errors: list[str] = []
    stop_at = time.perf_counter() + warmup + seconds

    async def loop(n: int) -> None:
        client = clients[n % len(clients)]
        while time.perf_counter() < stop_at:
            try:
                run = await client.beta.threads.create_and_run_poll(
                    assistant_id=assistant.id,
                    thread={"messages": [{"role": "user", "content": "Say hello"}]},
                )
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}"[:200])
                await asyncio.sleep(0.05)
                continue
            if run.status == "completed":
                done.append(time.perf_counter())
            else:
                errors.append(f"run ended {run.status}")

    start = time.perf_counter()
    await asyncio.gather(*(loop(n) for n in range(concurrency)))
    for c in clients:
        await c.close()
    measured = [t for t in done if start + warmup <= t <= start + warmup + seconds]
    return {
        "concurrency": concurrency,
        "runs_per_second": round(len(measured) / seconds, 1),
        "errors": len(errors),
        "error_examples": sorted(set(errors))[:3],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--concurrency", default="8,32")
    args = parser.parse_args()
    raise_nofile()
    levels = [int(c) for c in args.concurrency.split(",")]
    out: dict[str, Any] = {"load_at_start": round(os.getloadavg()[0], 1), "layouts": {}}
    with Upstream(token_delay=0.0) as up:
        for layout in ("single", "cluster_2api_2workers"):
            with postgres_database() as url, tempfile.TemporaryDirectory() as tmp:
                proc, urls = _start(layout, _env(url, up.base_url, tmp))
                try:
                    rows = [asyncio.run(_level(urls, c, args.warmup, args.seconds)) for c in levels]
                finally:
                    proc.terminate()
                    proc.wait(timeout=60)
                    if proc.stdout is not None:
                        proc.stdout.close()
                out["layouts"][layout] = rows
                for r in rows:
                    print(
                        f"  {layout:24} c={r['concurrency']:<3} {r['runs_per_second']:6.1f} runs/s "
                        f"errors {r['errors']}",
                        flush=True,
                    )
    out["load_at_end"] = round(os.getloadavg()[0], 1)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cluster_throughput.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
