"""Run overhead: what a run through assistantd adds to one chat completion (issue 7, item 1).

A zero-latency upstream (`assistantd.testing.fake_upstream`, whole answer in one write) and
`assistantd serve` (SQLite, temporary data dir) run as subprocesses. In one loop, in a
rotating order, the same process measures with the official `openai` SDK (sync client):

  (a) `chat.completions.create(stream=True)` straight to the upstream, consumed fully;
  (b) `messages.create` + `runs.create_and_poll` through assistantd (the SDK sleeps
      `openai-poll-after-ms` between polls; that sleep is timed and reported apart);
  (c) `runs.stream` on a thread that already has the message: time to the first
      `thread.message.delta` and to the end of the stream.

Added latency is taken per iteration (b − a, TTFT c − TTFT a), then summarised.
It also checks Nagle/delayed-ACK stalls: sequential `GET /v1/assistants` over one
keep-alive connection, and whether the event loops uvicorn may pick set TCP_NODELAY.

    python -m bench.run_overhead [--quick] [--iterations N]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import time
from pathlib import Path
from typing import Any

import httpx
from openai import OpenAI

from bench.common import (
    API_KEY,
    RESULTS,
    Server,
    Upstream,
    fmt,
    print_hot_spots,
    profiled,
    publish,
    pyplot,
    summary,
    table,
)

NAME = "run_overhead"
PROMPT = "Say hello"
MODEL = "gpt-4o-mini"


class _SleepMeter:
    """Replaces the SDK resource's `_sleep`, so the poll wait of each run is known exactly."""

    def __init__(self) -> None:
        self.slept = 0.0
        self.calls = 0

    def __call__(self, seconds: float) -> None:
        t = time.perf_counter()
        time.sleep(seconds)
        self.slept += time.perf_counter() - t
        self.calls += 1


def measure(iterations: int, warmup: int, profile: Path | None = None) -> dict[str, Any]:
    samples: dict[str, list[float]] = {
        k: []
        for k in (
            "a_total",
            "a_ttft",
            "b_total",
            "b_message",
            "b_poll_sleep",
            "b_polls",
            "b_minus_a",
            "b_minus_a_minus_sleep",
            "c_ttft",
            "c_total",
            "c_ttft_minus_a_ttft",
            "c_total_minus_a_total",
        )
    }
    with Upstream(token_delay=0.0) as up, Server(llm_base_url=up.base_url) as server:
        direct = OpenAI(base_url=up.base_url, api_key="unused", max_retries=0)
        client = OpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=0)
        runs = client.beta.threads.runs
        meter = _SleepMeter()
        runs._sleep = meter  # type: ignore[method-assign]
        assistant = client.beta.assistants.create(model=MODEL, name="bench")

        def a() -> tuple[float, float]:
            t0 = time.perf_counter()
            ttft = None
            text = []
            for chunk in direct.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": PROMPT}], stream=True
            ):
                if chunk.choices and chunk.choices[0].delta.content:
                    if ttft is None:
                        ttft = time.perf_counter() - t0
                    text.append(chunk.choices[0].delta.content)
            total = time.perf_counter() - t0
            assert text and ttft is not None
            return ttft, total

        def b() -> tuple[float, float, float, int]:
            thread = client.beta.threads.create()
            meter.slept, meter.calls = 0.0, 0
            t0 = time.perf_counter()
            client.beta.threads.messages.create(thread.id, role="user", content=PROMPT)
            t1 = time.perf_counter()
            run = runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
            total = time.perf_counter() - t0
            assert run.status == "completed", run
            return total, t1 - t0, meter.slept, meter.calls + 1

        def c() -> tuple[float, float]:
            thread = client.beta.threads.create()
            client.beta.threads.messages.create(thread.id, role="user", content=PROMPT)
            t0 = time.perf_counter()
            ttft = None
            last = None
            with runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
                for event in stream:
                    if event.event == "thread.message.delta" and ttft is None:
                        ttft = time.perf_counter() - t0
                    last = event.event
            total = time.perf_counter() - t0
            assert ttft is not None and last == "thread.run.completed", last
            return ttft, total

        for _ in range(warmup):
            a(), b(), c()
        cpu0 = _cpu(server.pid)
        t_start = time.perf_counter()
        with profiled(server.pid if profile else None, profile):
            loop(iterations, a, b, c, samples)
        elapsed = time.perf_counter() - t_start
        server_cpu = _cpu(server.pid) - cpu0
        nagle = keepalive_check(server.url, 200)
    return {
        "samples": samples,
        "server_cpu_seconds": server_cpu,
        "elapsed_seconds": elapsed,
        "server_cpu_ms_per_iteration": 1000 * server_cpu / iterations,
        "keepalive": nagle,
    }


def loop(iterations: int, a: Any, b: Any, c: Any, samples: dict[str, list[float]]) -> None:
    for i in range(iterations):
        got: dict[str, Any] = {}
        # Rotate the order so no side always runs right after another.
        for which in ("abc", "bca", "cab")[i % 3]:
            got[which] = {"a": a, "b": b, "c": c}[which]()
        (a_ttft, a_total), (b_total, b_msg, b_sleep, b_polls), (c_ttft, c_total) = (
            got["a"],
            got["b"],
            got["c"],
        )
        samples["a_total"].append(a_total)
        samples["a_ttft"].append(a_ttft)
        samples["b_total"].append(b_total)
        samples["b_message"].append(b_msg)
        samples["b_poll_sleep"].append(b_sleep)
        samples["b_polls"].append(b_polls)
        samples["b_minus_a"].append(b_total - a_total)
        samples["b_minus_a_minus_sleep"].append(b_total - b_sleep - a_total)
        samples["c_ttft"].append(c_ttft)
        samples["c_total"].append(c_total)
        samples["c_ttft_minus_a_ttft"].append(c_ttft - a_ttft)
        samples["c_total_minus_a_total"].append(c_total - a_total)


def _cpu(pid: int) -> float:
    from bench.common import cpu_seconds

    return cpu_seconds(pid)


def keepalive_check(url: str, count: int) -> dict[str, Any]:
    """Sequential small requests over one keep-alive connection (Nagle + delayed ACK = ~40 ms)."""
    lat: list[float] = []
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    ports = set()
    with httpx.Client(
        base_url=url,
        limits=limits,
        headers={"Authorization": f"Bearer {API_KEY}", "OpenAI-Beta": "assistants=v2"},
    ) as http:
        for _ in range(count):
            t0 = time.perf_counter()
            r = http.get("/v1/assistants", params={"limit": 20})
            lat.append(time.perf_counter() - t0)
            r.raise_for_status()
            stream = r.extensions.get("network_stream")
            if stream is not None:
                sock = stream.get_extra_info("socket")
                if sock is not None:
                    ports.add(sock.getsockname()[1])
    return {
        "requests": count,
        "connections_used": len(ports) or None,
        "latency": summary(lat),
        "loops": nodelay_probe(),
    }


def nodelay_probe() -> dict[str, Any]:
    """Does an accepted socket have TCP_NODELAY on each loop uvicorn may use?"""
    out: dict[str, Any] = {}

    async def probe() -> bool:
        result: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

        def on_conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            sock = writer.get_extra_info("socket")
            result.set_result(bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)))
            writer.close()

        server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        _, w = await asyncio.open_connection("127.0.0.1", port)
        value = await asyncio.wait_for(result, 5)
        w.close()
        server.close()
        return value

    out["asyncio"] = asyncio.run(probe())
    try:
        import uvloop

        out["uvloop"] = uvloop.run(probe())
    except ImportError:
        out["uvloop"] = None
    try:
        import uvicorn.config

        cfg = uvicorn.config.Config(app=lambda *a: None, loop="auto", http="auto")
        out["uvicorn_loop_auto"] = "uvloop" if _importable("uvloop") else "asyncio"
        out["uvicorn_http_auto"] = "httptools" if _importable("httptools") else "h11"
        out["uvicorn_version"] = uvicorn.__version__
        del cfg
    except ImportError:
        pass
    return out


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


ROWS = [
    ("a_total", "(a) upstream direct, total"),
    ("a_ttft", "(a) upstream direct, TTFT"),
    ("b_total", "(b) message + create_and_poll, total"),
    ("b_message", "(b) of which messages.create"),
    ("b_poll_sleep", "(b) of which SDK poll sleep"),
    ("b_minus_a", "(b) − (a)  added, with poll sleep"),
    ("b_minus_a_minus_sleep", "(b) − (a) − poll sleep  ADDED"),
    ("c_ttft", "(c) runs.stream, TTFT"),
    ("c_total", "(c) runs.stream, total"),
    ("c_ttft_minus_a_ttft", "TTFT (c) − TTFT (a)  ADDED"),
    ("c_total_minus_a_total", "total (c) − total (a)"),
]


def report(result: dict[str, Any]) -> str:
    s = result["samples"]
    rows = []
    for key, label in ROWS:
        st = summary(s[key])
        rows.append(
            [
                label,
                fmt(1000 * st["median"]),
                fmt(1000 * st["p90"]),
                fmt(1000 * st["p99"]),
                f"{fmt(1000 * st['min'])} – {fmt(1000 * st['max'])}",
            ]
        )
    out = [table([f"ms (n={len(s['a_total'])})", "p50", "p90", "p99", "min – max"], rows)]
    polls = summary(s["b_polls"])
    out.append(
        f"\n(b) retrieves per run: median {fmt(polls['median'], 1)}, max {fmt(polls['max'], 0)}; "
        f"server CPU {fmt(result['server_cpu_ms_per_iteration'])} ms per iteration (b + c + threads)"
    )
    b_added = 1000 * summary(s["b_minus_a_minus_sleep"])["median"]
    c_added = 1000 * summary(s["c_ttft_minus_a_ttft"])["median"]
    result["targets"] = {
        "b_added_p50_ms": b_added,
        "b_target_ms": 10,
        "b_met": b_added <= 10,
        "c_ttft_added_p50_ms": c_added,
        "c_target_ms": 5,
        "c_met": c_added <= 5,
    }
    out.append(
        f"target (b) ≤ 10 ms p50 beyond poll wait: {fmt(b_added)} ms → "
        f"{'MET' if b_added <= 10 else 'MISSED'}"
    )
    out.append(
        f"target (c) ≤ 5 ms p50 added TTFT: {fmt(c_added)} ms → {'MET' if c_added <= 5 else 'MISSED'}"
    )
    ka = result["keepalive"]
    lat = ka["latency"]
    out.append(
        f"\nkeep-alive: {ka['requests']} × GET /v1/assistants over {ka['connections_used']} connection(s): "
        f"p50 {fmt(1000 * lat['median'])} ms, p99 {fmt(1000 * lat['p99'])} ms, max {fmt(1000 * lat['max'])} ms "
        f"→ {'NAGLE STALL (~40 ms)' if lat['median'] > 0.035 else 'no Nagle stall'}"
    )
    out.append(f"TCP_NODELAY on accepted sockets: {ka['loops']}")
    return "\n".join(out)


def plot(result: dict[str, Any], path: Any) -> None:
    plt = pyplot()
    s = result["samples"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for key, label in [
        ("a_total", "(a) upstream direct"),
        ("b_total", "(b) create_and_poll"),
        ("b_minus_a_minus_sleep", "(b) − (a) − poll sleep"),
        ("c_ttft", "(c) stream TTFT"),
        ("c_total", "(c) stream total"),
    ]:
        v = sorted(1000 * x for x in s[key])
        ax1.plot(v, [i / len(v) for i in range(len(v))], label=label)
    ax1.set_xlabel("ms")
    ax1.set_ylabel("fraction of iterations")
    ax1.set_xscale("log")
    ax1.set_title("Latency CDF (zero-latency upstream)")
    ax1.legend(fontsize=8)
    ax1.grid(alpha=0.3)
    keys = ["b_minus_a_minus_sleep", "c_ttft_minus_a_ttft"]
    ax2.boxplot([[1000 * x for x in s[k]] for k in keys], showfliers=False)
    ax2.set_xticks([1, 2], ["(b) added\n(beyond poll sleep)", "(c) added TTFT"])
    ax2.axhline(10, color="tab:red", ls="--", lw=1, label="(b) target 10 ms")
    ax2.axhline(5, color="tab:orange", ls="--", lw=1, label="(c) target 5 ms")
    ax2.set_ylabel("ms added by assistantd")
    ax2.legend(fontsize=8)
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run (~10 s)")
    parser.add_argument("--iterations", type=int, default=None)
    parser.add_argument(
        "--profile",
        action="store_true",
        help="sample the server with py-spy (slows it; numbers are not for publishing)",
    )
    args = parser.parse_args(argv)
    iterations = args.iterations or (30 if args.quick else 300)
    profile = RESULTS / f"{NAME}_profile.txt" if args.profile else None
    result = measure(iterations, warmup=5 if args.quick else 20, profile=profile)
    if profile is not None:
        print_hot_spots(profile, 30)
        return result
    result.update(mode="quick" if args.quick else "full", iterations=iterations)
    text = report(result)
    print(text)
    suffix = "_quick" if args.quick else ""
    publish(NAME + suffix, result, text, lambda png: plot(result, png))
    return result


if __name__ == "__main__":
    main()
