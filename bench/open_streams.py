"""Open streams: 1,000 concurrent SSE run streams on a slow upstream (issue 7, item 3).

A stamped upstream (`bench.common`, one token every `--token-delay` s, each token's text is
the wall-clock time it was written) and `assistantd serve` (SQLite) run as subprocesses.
This process opens N streams, one connection each (raw httpx: `POST /v1/threads/runs`
with `stream: true`), and reads every `thread.message.delta`: its delay is the time it
arrived minus the time in its text. A control group of streams straight to the upstream,
read by the same loop at the same time, gives the delay that is not assistantd's (the
client's own event loop, the upstream); the difference is what the server adds.

The streams do not end by themselves: the upstream answers longer than the benchmark
lasts. Once all N have had their first token, they are held open `--hold` seconds, then
closed. The steady-state delays are those of that window; the ramp-up (opening N runs
while the earlier ones stream) is reported apart. (A fixed reply length made the window
empty whenever opening took longer than one reply.)

The server's RSS (VmRSS from /proc/<pid>/status) is taken before any stream and sampled
every 0.5 s while all N are open; (peak − before) / N is the memory a stream costs. A
stream's log grows by one event per token, so the events held per stream at that peak are
reported beside it. `ASSISTANTD_RUN_CONCURRENCY` is raised to N so every run is
generating, not queued.

    python -m bench.open_streams [--quick] [--streams N] [--token-delay S] [--hold S]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.common import (
    API_KEY,
    RESULTS,
    Server,
    Upstream,
    fd_count,
    fmt,
    print_hot_spots,
    proc_status,
    profiled,
    publish,
    pyplot,
    raise_nofile,
    summary,
    table,
)

NAME = "open_streams"
HEADERS = {"Authorization": f"Bearer {API_KEY}", "OpenAI-Beta": "assistants=v2"}
WARM_TOKENS = 12


class Tally:
    def __init__(self) -> None:
        self.delays: list[tuple[float, float]] = []  # (arrived at, delay) through assistantd
        self.control: list[tuple[float, float]] = []  # straight from the upstream
        self.open_now = 0
        self.opened = 0
        self.finished = 0
        self.errors: list[str] = []
        self.peak_open = 0
        self.all_open_at: float | None = None


async def _through_server(http: httpx.AsyncClient, assistant_id: str, tally: Tally, n: int) -> None:
    body = {
        "assistant_id": assistant_id,
        "stream": True,
        "thread": {"messages": [{"role": "user", "content": "Count slowly."}]},
    }
    counted = False
    try:
        async with http.stream("POST", "/v1/threads/runs", json=body) as r:
            if r.status_code != 200:
                tally.errors.append(f"HTTP {r.status_code}: {(await r.aread())[:200]!r}")
                return
            event = ""
            async for line in r.aiter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "thread.message.delta":
                    now = time.time()
                    text = orjson.loads(line[6:])["delta"]["content"][0]["text"]["value"]
                    tally.delays.append((now, now - float(text)))
                    if not counted:
                        counted = True
                        tally.opened += 1
                        tally.open_now += 1
                        tally.peak_open = max(tally.peak_open, tally.open_now)
                        if tally.opened == n and tally.all_open_at is None:
                            tally.all_open_at = time.monotonic()
                elif event == "done":
                    break
    except httpx.HTTPError as exc:
        tally.errors.append(f"{type(exc).__name__}: {exc}"[:200])
    finally:
        if counted:
            tally.open_now -= 1
            tally.finished += 1


async def _straight(http: httpx.AsyncClient, tally: Tally) -> None:
    body = {
        "model": "stamped",
        "stream": True,
        "messages": [{"role": "user", "content": "Count slowly."}],
    }
    try:
        async with http.stream("POST", "/chat/completions", json=body) as r:
            async for line in r.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                choices = orjson.loads(line[6:]).get("choices") or []
                text = choices[0]["delta"].get("content") if choices else None
                if text:
                    now = time.time()
                    tally.control.append((now, now - float(text)))
    except httpx.HTTPError as exc:
        tally.errors.append(f"control: {type(exc).__name__}: {exc}"[:200])


async def _run(
    server: Server,
    upstream: Upstream,
    n: int,
    control: int,
    open_concurrency: int,
    hold: float,
    ramp_limit: float,
) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=n + 64, max_keepalive_connections=n + 64)
    timeout = httpx.Timeout(60.0, read=120.0)
    async with (
        httpx.AsyncClient(
            base_url=server.url, headers=HEADERS, limits=limits, timeout=timeout
        ) as http,
        httpx.AsyncClient(base_url=upstream.base_url, limits=limits, timeout=timeout) as up_http,
    ):
        # `stamped:<k>`: the upstream answers k tokens (see bench.common); plain `stamped`
        # answers longer than the benchmark runs.
        warm_assistant = (
            await http.post(
                "/v1/assistants", json={"model": f"stamped:{WARM_TOKENS}", "name": "warm-up"}
            )
        ).json()
        assistant = (
            await http.post("/v1/assistants", json={"model": "stamped", "name": "bench"})
        ).json()
        # Warm the code paths, the database pool and the allocator with a burst of complete
        # streams (64 at once), so "before" is a server that has already worked, then measure.
        warm = Tally()
        burst = min(n, 64)
        await asyncio.gather(
            *[_through_server(http, warm_assistant["id"], warm, burst) for _ in range(burst)]
        )
        if warm.errors or warm.finished < burst:
            raise RuntimeError(
                f"warm-up: {warm.finished}/{burst} streams finished; errors: {warm.errors[:3]}"
            )
        await asyncio.sleep(1.0)
        before = proc_status(server.pid)
        fds_before = fd_count(server.pid)

        tally = Tally()
        gate = asyncio.Semaphore(open_concurrency)
        t_start = time.monotonic()

        async def open_one() -> None:
            async with gate:
                pass  # pace the creates; the stream itself is not held by the gate
            await _through_server(http, assistant["id"], tally, n)

        tasks = [asyncio.create_task(_straight(up_http, tally)) for _ in range(control)]
        for i in range(n):
            tasks.append(asyncio.create_task(open_one()))
            if i % open_concurrency == open_concurrency - 1:
                await asyncio.sleep(0.05)
        # Sample the server until every stream has had its first token, then `hold` s more.
        samples: list[dict[str, Any]] = []
        hold_until: float | None = None
        while not all(t.done() for t in tasks):
            now = time.monotonic()
            if hold_until is None and tally.all_open_at is not None:
                hold_until = tally.all_open_at + hold
            if (hold_until is not None and now >= hold_until) or (
                hold_until is None and now - t_start > ramp_limit
            ):
                break
            st = proc_status(server.pid)
            samples.append(
                {
                    "t": now - t_start,
                    "open": tally.open_now,
                    "tokens": len(tally.delays),
                    "rss_kb": st["VmRSS"],
                    "threads": st["Threads"],
                    "fds": fd_count(server.pid),
                    "holding": hold_until is not None,
                }
            )
            await asyncio.sleep(0.5)
        t_end = time.monotonic()
        ended_by = (
            "hold"
            if hold_until is not None and t_end >= hold_until
            else ("ramp limit" if hold_until is None else "streams ended")
        )
        for t in tasks:
            if not t.done():
                t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    held = [s for s in samples if s["holding"]] or samples
    at_peak = max(held, key=lambda s: s["rss_kb"]) if held else None
    # Steady state: every stream open, from the last one's first token to the end of the hold.
    lo = (tally.all_open_at - t_start) if tally.all_open_at else None
    hi = t_end - t_start
    wall0 = time.time() - (time.monotonic() - t_start)
    steady = [d for at, d in tally.delays if lo is not None and lo <= at - wall0 <= hi]
    steady_control = [d for at, d in tally.control if lo is not None and lo <= at - wall0 <= hi]
    ramp = [d for at, d in tally.delays if lo is None or at - wall0 < lo]
    peak_open = max(1, at_peak["open"]) if at_peak else 1
    return {
        "streams": n,
        "opened": tally.opened,
        "peak_open": tally.peak_open,
        "all_open_after_s": lo,
        "steady_window_s": [lo, hi],
        "ended_by": ended_by,
        "errors": len(tally.errors),
        "error_examples": sorted(set(tally.errors))[:5],
        "rss_before_mb": before["VmRSS"] / 1024,
        "rss_open_mb": at_peak["rss_kb"] / 1024 if at_peak else None,
        "rss_hwm_mb": proc_status(server.pid)["VmHWM"] / 1024,
        "extra_rss_mb": (at_peak["rss_kb"] - before["VmRSS"]) / 1024 if at_peak else None,
        "extra_rss_kb_per_stream": (at_peak["rss_kb"] - before["VmRSS"]) / peak_open
        if at_peak
        else None,
        "tokens_per_stream_at_peak": at_peak["tokens"] / peak_open if at_peak else None,
        "threads_before": before["Threads"],
        "threads_open": at_peak["threads"] if at_peak else None,
        "fds_before": fds_before,
        "fds_open": at_peak["fds"] if at_peak else None,
        "token_delay_all": summary([d for _, d in tally.delays]),
        "token_delay_steady": summary(steady),
        "token_delay_ramp": summary(ramp),
        "control_delay_all": summary([d for _, d in tally.control]),
        "control_delay_steady": summary(steady_control),
        "tokens_through_server": len(tally.delays),
        "samples": samples,
    }


def measure(
    n: int,
    token_delay: float,
    hold: float,
    control: int,
    ramp_limit: float,
    profile: Path | None = None,
) -> dict[str, Any]:
    nofile = raise_nofile(65536)
    # Longer than the benchmark can last: the client ends the streams, not the upstream.
    tokens = math.ceil((ramp_limit + hold + 60) / token_delay)
    with (
        Upstream(stamped=True, token_delay=token_delay, tokens=tokens) as up,
        Server(llm_base_url=up.base_url, env={"ASSISTANTD_RUN_CONCURRENCY": str(n + 16)}) as server,
    ):
        with profiled(server.pid if profile else None, profile):
            result = asyncio.run(
                _run(server, up, n, control, open_concurrency=32, hold=hold, ramp_limit=ramp_limit)
            )
        with contextlib.suppress(OSError):
            result["server_nofile_limit"] = int(
                next(
                    line.split()[3]
                    for line in Path(f"/proc/{server.pid}/limits").read_text().splitlines()
                    if line.startswith("Max open files")
                )
            )
    result.update(
        client_nofile_limit=nofile,
        token_delay=token_delay,
        hold_s=hold,
        ramp_limit_s=ramp_limit,
        control_streams=control,
    )
    return result


def report(r: dict[str, Any]) -> str:
    def row(label: str, st: dict[str, float]) -> list[str]:
        if not st.get("n"):
            return [label, "0", "-", "-", "-", "-"]
        return [
            label,
            str(st["n"]),
            fmt(1000 * st["median"], 1),
            fmt(1000 * st["p90"], 1),
            fmt(1000 * st["p99"], 1),
            f"{fmt(1000 * st['min'], 1)} – {fmt(1000 * st['max'], 1)}",
        ]

    out = [
        table(
            ["token delay (ms)", "tokens", "p50", "p90", "p99", "min – max"],
            [
                row("through assistantd, all streams open", r["token_delay_steady"]),
                row("straight from upstream (control), same window", r["control_delay_steady"]),
                row("through assistantd, while opening (ramp-up)", r["token_delay_ramp"]),
                row("straight from upstream, whole run", r["control_delay_all"]),
            ],
        )
    ]
    out.append("")
    out.append(
        table(
            ["memory and handles", "value"],
            [
                ["streams requested / peak open at once", f"{r['streams']} / {r['peak_open']}"],
                [
                    "all open after (s) / then held (s)",
                    f"{fmt(r['all_open_after_s'], 1)} / {fmt(r['hold_s'], 0)}"
                    + ("" if r["ended_by"] == "hold" else f" (ended by {r['ended_by']})"),
                ],
                ["server RSS before (MB)", fmt(r["rss_before_mb"], 1)],
                ["server RSS with all open (MB)", fmt(r["rss_open_mb"], 1)],
                ["extra RSS total (MB)", fmt(r["extra_rss_mb"], 1)],
                ["extra RSS per stream (kB)", fmt(r["extra_rss_kb_per_stream"], 1)],
                ["tokens per stream so far, at that RSS", fmt(r["tokens_per_stream_at_peak"], 0)],
                ["server threads before / open", f"{r['threads_before']} / {r['threads_open']}"],
                ["server fds before / open", f"{r['fds_before']} / {r['fds_open']}"],
                [
                    "fd limit client / server",
                    f"{r['client_nofile_limit']} / {r.get('server_nofile_limit')}",
                ],
                ["errors", str(r["errors"])],
            ],
        )
    )
    extra = r["extra_rss_mb"]
    met = extra is not None and extra <= 100 and r["peak_open"] >= r["streams"]
    st, ct = r["token_delay_steady"], r["control_delay_steady"]
    added = (st["p99"] - ct["p99"]) * 1000 if st.get("n") and ct.get("n") else None
    r["targets"] = {"extra_rss_mb": extra, "target_mb": 100, "met": met, "p99_added_ms": added}
    out.append(
        f"\ntarget ≤ 100 MB extra for {r['streams']} streams: {fmt(extra, 1)} MB → {'MET' if met else 'MISSED'}"
        f"; p99 token delay added by the server (vs control): {fmt(added, 1)} ms"
    )
    if r["error_examples"]:
        out.append(f"errors, e.g.: {r['error_examples'][:3]}")
    return "\n".join(out)


def plot(r: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    s = r["samples"]
    t = [x["t"] for x in s]
    ax1.plot(t, [x["rss_kb"] / 1024 for x in s], color="tab:blue", label="server RSS (MB)")
    ax1.axhline(
        r["rss_before_mb"] + 100, color="tab:red", ls="--", lw=1, label="before + 100 MB (target)"
    )
    ax1.set_xlabel("s since the first stream was opened")
    ax1.set_ylabel("MB")
    ax1b = ax1.twinx()
    ax1b.plot(t, [x["open"] for x in s], color="tab:green", label="open streams")
    ax1b.set_ylabel("open streams")
    ax1.legend(loc="upper left", fontsize=8)
    ax1b.legend(loc="lower right", fontsize=8)
    ax1.set_title(
        f"{r['streams']} SSE streams, token every {r['token_delay']} s, held {r['hold_s']:g} s"
    )
    ax1.grid(alpha=0.3)
    for key, label in (
        ("token_delay_steady", "through assistantd"),
        ("control_delay_steady", "upstream direct"),
    ):
        st = r[key]
        if st.get("n"):
            ax2.bar(
                label,
                1000 * st["median"],
                color="tab:blue" if "assistantd" in label else "tab:gray",
            )
            ax2.errorbar(
                label,
                1000 * st["median"],
                yerr=[[0], [1000 * (st["p99"] - st["median"])]],
                color="k",
                capsize=4,
            )
    ax2.set_ylabel("token delay ms (bar p50, whisker p99), all streams open")
    ax2.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 100 streams (~25 s)")
    parser.add_argument("--streams", type=int, default=None)
    parser.add_argument("--token-delay", type=float, default=0.5)
    parser.add_argument(
        "--hold",
        type=float,
        default=None,
        help="seconds all streams are held open once open (default 30, quick 10)",
    )
    parser.add_argument(
        "--ramp-limit",
        type=float,
        default=300.0,
        help="give up waiting for every stream's first token after this many seconds",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="sample the server with py-spy (slows it; numbers are not for publishing)",
    )
    args = parser.parse_args(argv)
    n = args.streams or (100 if args.quick else 1000)
    hold = args.hold if args.hold is not None else (10.0 if args.quick else 30.0)
    profile = RESULTS / f"{NAME}_profile.txt" if args.profile else None
    result = measure(
        n,
        args.token_delay,
        hold,
        control=10 if args.quick else 50,
        ramp_limit=args.ramp_limit,
        profile=profile,
    )
    if profile is not None:
        print_hot_spots(profile, 40)
        return result
    result["mode"] = "quick" if args.quick else "full"
    text = report(result)
    print(text)
    suffix = "_quick" if args.quick else ""
    publish(NAME + suffix, result, text, lambda png: plot(result, png))
    return result


if __name__ == "__main__":
    main()
