"""Latency of a trivial code_interpreter cell: cold (new kernel) and warm (live session).

    python bench/code_interpreter.py [--quick]

Prints a table (median/p90/p99/min/max in ms) and writes bench/results/code_interpreter.json
and, when matplotlib is installed in this venv, bench/results/code_interpreter.png.
"cold" = first execution of a new session with no warm pool (kernel start, imports incl.);
"pooled" = first execution of a new session served from the warm pool;
"warm" = a further execution in a live session.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import time
from pathlib import Path

from assistantd.core.settings import Settings
from assistantd.sandbox import BubblewrapSandbox

RESULTS = Path(__file__).with_name("results")


def summarise(samples: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples)

    def pct(p: float) -> float:
        return ms[min(len(ms) - 1, round(p / 100 * (len(ms) - 1)))]

    return {
        "n": len(ms),
        "median": statistics.median(ms),
        "p90": pct(90),
        "p99": pct(99),
        "min": ms[0],
        "max": ms[-1],
    }


async def timed(box: BubblewrapSandbox, key: str) -> float:
    start = time.perf_counter()
    result = await box.execute(key, "1 + 1")
    elapsed = time.perf_counter() - start
    assert result.logs == "2\n", result.logs
    return elapsed


async def main(quick: bool) -> None:
    n_cold, n_pooled, n_warm = (3, 5, 50) if quick else (10, 20, 500)
    samples: dict[str, list[float]] = {"cold": [], "pooled": [], "warm": []}
    sandbox_dir = Settings().sandbox_dir  # where the install put it
    cold = BubblewrapSandbox(sandbox_dir=sandbox_dir, pool_size=0)
    try:
        for i in range(n_cold):
            samples["cold"].append(await timed(cold, f"cold-{i}"))
            await cold.reset(f"cold-{i}")
    finally:
        await cold.close()
    pooled = BubblewrapSandbox(sandbox_dir=sandbox_dir, pool_size=2)
    try:
        await pooled.start()
        for i in range(n_pooled):
            samples["pooled"].append(await timed(pooled, f"pooled-{i}"))
            await pooled.reset(f"pooled-{i}")
            # Refilled, as between real requests; the sandbox exposes a count, not an event.
            while pooled.warm_kernels < pooled.pool_size:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        await timed(pooled, "warm")
        for _ in range(n_warm):
            samples["warm"].append(await timed(pooled, "warm"))
    finally:
        await pooled.close()

    table = {name: summarise(values) for name, values in samples.items()}
    print(f"{'case':<8}{'n':>5}{'median':>10}{'p90':>10}{'p99':>10}{'min':>10}{'max':>10}  (ms)")
    for name, row in table.items():
        print(
            f"{name:<8}{row['n']:>5}"
            + "".join(f"{row[k]:>10.2f}" for k in ("median", "p90", "p99", "min", "max"))
        )
    RESULTS.mkdir(exist_ok=True)
    out = {
        "cell": "1 + 1",
        "quick": quick,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg": os.getloadavg(),
        },
        "results_ms": table,
        "samples_ms": {k: [v * 1000 for v in vs] for k, vs in samples.items()},
    }
    (RESULTS / "code_interpreter.json").write_text(json.dumps(out, indent=2) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed here: no plot written")
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.boxplot([out["samples_ms"][k] for k in samples], tick_labels=list(samples))
    ax.set_yscale("log")
    ax.set_ylabel("latency of '1 + 1' (ms, log scale)")
    ax.set_title("code_interpreter: cold start vs pooled vs warm session")
    fig.tight_layout()
    fig.savefig(RESULTS / "code_interpreter.png")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few samples, for CI smoke runs")
    asyncio.run(main(parser.parse_args().quick))
