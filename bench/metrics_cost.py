"""What the metrics add to a request (issue 15: target ≤ 0.2 ms at p50).

The cost is measured where it is paid, in-process, so that the noise of a shared machine's
HTTP stack does not swamp a few microseconds: the same trivial ASGI endpoint (it sets its
route and answers a small JSON body, as a route handler does) is called directly and through
`ops.middleware.HttpEdge` (request counter, latency histogram, SSE check, the
tracing hook with tracing off), alternately, many times. The run observers are measured the
same way: `MemoryEventBus.publish` of a message delta, bare and through `ObservedBus`.

Both value stores of `prometheus_client` are measured: in memory (one process) and the
multiprocess files `assistantd serve` uses (`PROMETHEUS_MULTIPROC_DIR`; a child process,
since the choice is made at import).

    python -m bench.metrics_cost [--quick] [--iterations N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bench.common import fmt, summary, table, write_results

NAME = "metrics_cost"
TARGET_MS = 0.2


class _Route:
    path = "/v1/threads/{thread_id}/runs/{run_id}"


async def _endpoint(scope: Any, receive: Any, send: Any) -> None:
    scope["route"] = _Route
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"2")],
        }
    )
    await send({"type": "http.response.body", "body": b"{}"})


async def _alternate(
    plain: Callable[[], Awaitable[Any]],
    observed: Callable[[], Awaitable[Any]],
    iterations: int,
    warmup: int,
) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"plain": [], "observed": []}
    for i in range(warmup + iterations):
        for name, fn in (
            (("plain", plain), ("observed", observed))
            if i % 2
            else (("observed", observed), ("plain", plain))
        ):
            t = time.perf_counter()
            await fn()
            elapsed = time.perf_counter() - t
            if i >= warmup:
                out[name].append(elapsed)
    return out


async def _measure(iterations: int, warmup: int) -> dict[str, Any]:
    from assistantd.events.bus import MemoryEventBus
    from assistantd.ops.middleware import HttpEdge
    from assistantd.ops.observe import ObservedBus

    middleware = HttpEdge(_endpoint)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        return None

    def scope() -> dict[str, Any]:
        return {
            "type": "http",
            "method": "GET",
            "path": "/v1/threads/t/runs/r",
            "headers": [],
            "request_id": "req_bench",
        }

    http = await _alternate(
        lambda: _endpoint(scope(), receive, send),
        lambda: middleware(scope(), receive, send),
        iterations,
        warmup,
    )
    bare, observed = MemoryEventBus(), ObservedBus(MemoryEventBus())
    delta = {
        "id": "msg_x",
        "object": "thread.message.delta",
        "delta": {"content": [{"index": 0, "type": "text", "text": {"value": "token"}}]},
    }
    await bare.open("run_a")
    await observed.open("run_b")
    await observed.publish("run_b", "thread.run.in_progress", {"created_at": int(time.time())})
    bus = await _alternate(
        lambda: bare.publish("run_a", "thread.message.delta", delta),
        lambda: observed.publish("run_b", "thread.message.delta", delta),
        iterations,
        warmup,
    )
    return {"http": http, "bus_publish": bus}


def _child(iterations: int, warmup: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as directory:
        env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=directory)
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.metrics_cost",
                "--child",
                "--iterations",
                str(iterations),
                "--warmup",
                str(warmup),
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _served_p50(n: int) -> float:
    """Median seconds of `GET /v1/assistants` from a real `assistantd serve` (keep-alive): what
    the added cost is a share of."""
    import httpx

    from bench.common import API_KEY, Server

    with (
        Server(llm_base_url=None) as srv,
        httpx.Client(headers={"Authorization": f"Bearer {API_KEY}"}) as c,
    ):
        times = []
        for i in range(n + 50):
            t = time.perf_counter()
            c.get(f"{srv.base_url}/assistants").raise_for_status()
            if i >= 50:
                times.append(time.perf_counter() - t)
    return summary(times)["median"]


def _row(mode: str, what: str, samples: dict[str, list[float]], served: float) -> list[str]:
    p, o = summary(samples["plain"]), summary(samples["observed"])
    added = [
        b - a for a, b in zip(sorted(samples["plain"]), sorted(samples["observed"]), strict=True)
    ]
    add = summary(added)
    return [
        mode,
        what,
        fmt(p["median"] * 1e6, 1),
        fmt(o["median"] * 1e6, 1),
        fmt(add["median"] * 1e6, 1),
        fmt(add["p90"] * 1e6, 1),
        fmt(o["median"] / p["median"], 2),
        f"{100 * add['median'] / served:.2f} %" if what == "HTTP request" else "-",
        "met" if add["median"] * 1000 <= TARGET_MS else "**missed**",
    ]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--iterations", type=int, default=None)
    parser.add_argument("--warmup", type=int, default=2000)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    iterations = args.iterations or (5_000 if args.quick else 50_000)
    if args.child:
        result = asyncio.run(_measure(iterations, args.warmup))
        print(json.dumps(result))
        return result
    memory = asyncio.run(_measure(iterations, args.warmup))
    files = _child(iterations, args.warmup)
    served = _served_p50(200 if args.quick else 2000)
    rows = [
        _row("in memory", "HTTP request", memory["http"], served),
        _row("in memory", "bus publish", memory["bus_publish"], served),
        _row("multiprocess files", "HTTP request", files["http"], served),
        _row("multiprocess files", "bus publish", files["bus_publish"], served),
    ]
    text = table(
        [
            "values",
            "per",
            "plain p50 µs",
            "observed p50 µs",
            "added p50 µs",
            "added p90 µs",
            "ratio p50",
            "of a served request",
            f"≤ {TARGET_MS} ms",
        ],
        rows,
    )
    text += f"\n\nA served `GET /v1/assistants` (keep-alive, SQLite) takes {served * 1e6:.0f} µs at p50."
    print(text)
    result = {
        "iterations": iterations,
        "target_ms": TARGET_MS,
        "served_request_p50_s": served,
        "rows": rows,
        "table": text,
    }
    write_results(NAME + ("_quick" if args.quick else ""), result)
    added = max(float(r[4]) for r in rows if r[1] == "HTTP request")
    print(f"metrics add {added:.1f} µs per request at p50 (target {TARGET_MS * 1000:.0f} µs)")
    return result


if __name__ == "__main__":
    main()
