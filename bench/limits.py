"""The limiter's and usage recording's cost per request (issue 14).

In one process and loop, against a migrated database, with the server's own `Limits`:

  admit, nothing set     the hook every run request passes when no limit applies
  admit, RPM+TPM memory  requests- and tokens-per-minute windows in process memory
  admit, RPM+TPM redis   the same windows in Redis (one limit across processes)
  admit, + spend limit   a project spend limit too (month spend cached `limits_cache_seconds`)
  usage row sqlite/pg    a model call's usage row in a transaction (the run engine writes it
                         in the step's own) and its tokens in the TPM window

Each case times `iterations` calls one after another (perf_counter around each call).
Target: the limiter adds ≤ 0.3 ms p50 per request.

    python -m bench.limits [--quick] [--iterations N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.common import fmt, postgres_available, postgres_database, publish, pyplot, summary, table

NAME = "limits"
REDIS = os.environ.get("ASSISTANTD_TEST_REDIS", "redis://127.0.0.1:6379/0")
TARGET_MS = 0.3


async def _timed(n: int, fn: Callable[[], Awaitable[Any]]) -> list[float]:
    for _ in range(min(50, n)):  # warm caches and connections
        await fn()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        await fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


async def _cases(url: str, n: int, redis_ok: bool, label: str) -> dict[str, list[float]]:
    from assistantd.core.db import create_engine, session_maker
    from assistantd.core.settings import Settings
    from assistantd.limits.limiter import WindowLimiter
    from assistantd.limits.models import SpendLimitRow
    from assistantd.limits.service import Limits
    from assistantd.migrations import upgrade
    from assistantd.usage.meter import ModelCall
    from assistantd.usage.pricing import Pricing
    from assistantd.worker.store import RunStore

    await asyncio.to_thread(upgrade, url)
    engine = create_engine(url)
    sessions = session_maker(engine)
    pricing = Pricing.load(None)
    unlimited = Settings(_env_file=None, database_url=url)
    limited = unlimited.model_copy(
        update={"rate_limit_requests_per_minute": 10**9, "rate_limit_tokens_per_minute": 10**12}
    )
    model = f"bench-{uuid.uuid4().hex[:8]}"
    out: dict[str, list[float]] = {}
    try:
        async with sessions() as session:
            free = Limits(unlimited, engine, sessions, pricing, WindowLimiter(None))
            out["admit, nothing set"] = await _timed(n, lambda: free.admit(session, "bench", model))
            memory = Limits(limited, engine, sessions, pricing, WindowLimiter(None))
            out["admit, RPM+TPM memory"] = await _timed(
                n, lambda: memory.admit(session, "bench", model)
            )
            if redis_ok:
                shared = Limits(limited, engine, sessions, pricing, WindowLimiter(REDIS))
                out["admit, RPM+TPM redis"] = await _timed(
                    n, lambda: shared.admit(session, "bench", model)
                )
            session.add(
                SpendLimitRow(
                    project_id="bench",
                    threshold_amount=10**12,
                    currency="USD",
                    interval="month",
                    updated_at=0,
                )
            )
            await session.commit()
            spend = Limits(limited, engine, sessions, pricing, WindowLimiter(None))
            out["admit, + spend limit"] = await _timed(
                n, lambda: spend.admit(session, "bench", model)
            )
        # Outside the session: SQLite has one connection, which the usage row's write takes.
        call = ModelCall("bench", "key_bench", "run_bench", "thread_bench", model, 120, 30)
        store = RunStore(engine)

        async def usage_row() -> None:
            await store.write([], [call])
            await memory.recorded([call])

        out[f"usage row {label}"] = await _timed(n, usage_row)
    finally:
        await engine.dispose()
    return out


def _redis_up() -> bool:
    import redis

    with contextlib.suppress(Exception):
        return bool(redis.Redis.from_url(REDIS, socket_timeout=1).ping())
    return False


def measure(iterations: int) -> dict[str, Any]:
    redis_ok = _redis_up()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        samples = asyncio.run(_cases(url, iterations, redis_ok, "sqlite"))
    if postgres_available():
        with postgres_database() as pg:
            pg_samples = asyncio.run(_cases(pg, iterations, False, "postgres"))
        samples["usage row postgres"] = pg_samples["usage row postgres"]
        samples["admit, + spend limit (pg)"] = pg_samples["admit, + spend limit"]
    return {
        "iterations": iterations,
        "redis": redis_ok,
        "target_p50_ms": TARGET_MS,
        "stats_ms": {k: summary(v) for k, v in samples.items()},
        "samples_ms": samples,
    }


def render(result: dict[str, Any]) -> str:
    rows = []
    for name, s in result["stats_ms"].items():
        verdict = "-"
        if name.startswith("admit"):
            verdict = "met" if s["median"] <= TARGET_MS else "**missed**"
        rows.append(
            [name, s["n"], fmt(s["median"], 3), fmt(s["p99"], 3), fmt(s["max"], 3), verdict]
        )
    return table(["case", "n", "p50 ms", "p99 ms", "max ms", f"≤ {TARGET_MS} ms p50"], rows)


def plot(result: dict[str, Any]) -> Callable[[Path], None]:
    def draw(png: Path) -> None:
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(9, 4))
        names = list(result["samples_ms"])
        ax.boxplot([result["samples_ms"][k] for k in names], tick_labels=names, showfliers=False)
        ax.axhline(TARGET_MS, linestyle="--", linewidth=1)
        ax.set_ylabel("ms per call")
        ax.set_title("limits: cost per run request and per model call")
        plt.setp(ax.get_xticklabels(), rotation=20, ha="right")
        fig.tight_layout()
        fig.savefig(png)
        plt.close(fig)

    return draw


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few hundred calls per case")
    parser.add_argument("--iterations", type=int, default=None)
    args = parser.parse_args(argv)
    n = args.iterations or (300 if args.quick else 3000)
    result = measure(n)
    text = render(result)
    print(text)
    publish(
        NAME + ("_quick" if args.quick else ""),
        {k: v for k, v in result.items() if k != "samples_ms"}
        | {"samples_ms": {k: v[:200] for k, v in result["samples_ms"].items()}},
        text,
        plot(result),
    )
    return result


if __name__ == "__main__":
    main()
