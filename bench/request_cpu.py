"""The server's own CPU per request on the run path's hot endpoints, in one process.

The app (`create_app`, its lifespan, a migrated SQLite file, a static key, the scripted
echo model) is called as an ASGI app, without sockets or a client, one request after
another: what is measured is routing, middleware, dependencies, validation, the
endpoint's SQL and the response's rendering, and nothing of the load generator. Cases:
`GET` of a run, `GET` of a thread's messages (20 messages, the default page), `POST` of a
message, and `POST /v1/threads/runs` (which also runs each run in the worker: the run's
whole server cost minus its HTTP polls). Rounds alternate the cases; the source tree is the
one on `PYTHONPATH`, so two trees compare by running this twice, alternating
(`--trees A B` does that, in child processes).

    python -m bench.request_cpu [--iterations N] [--rounds R] [--trees SRC_A SRC_B] [--profile OUT]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import ROOT, fmt, table, write_results

NAME = "request_cpu"
KEY = "sk-bench-request-cpu"
CASES = ("GET run", "GET messages", "POST message", "POST threads/runs (+ its run)")


class _Call:
    """One ASGI request: a prebuilt scope and body, the response gathered."""

    def __init__(self, method: str, path: str, body: Any = None, query: bytes = b"") -> None:
        self.body = json.dumps(body).encode() if body is not None else b""
        headers = [
            (b"host", b"bench"),
            (b"authorization", f"Bearer {KEY}".encode()),
            (b"openai-beta", b"assistants=v2"),
        ]
        if body is not None:
            headers += [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(self.body)).encode()),
            ]
        self.scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query,
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 8000),
            "state": {},
        }

    async def __call__(self, app: Any) -> tuple[int, bytes]:
        sent = False
        status = 0
        chunks: list[bytes] = []

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": self.body, "more_body": False}
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            else:
                chunks.append(message.get("body", b""))

        await app(dict(self.scope, headers=list(self.scope["headers"])), receive, send)
        return status, b"".join(chunks)


async def _json(app: Any, call: _Call) -> Any:
    status, body = await call(app)
    assert status == 200, (status, body[:300])
    return json.loads(body)


async def _idle(app: Any) -> None:
    """Until the worker has no run in flight and the event log has been written: work left
    over from the runs case would otherwise be counted in the next case's CPU."""
    ctx = app.state.ctx
    worker = ctx.runs.dispatcher.worker
    for _ in range(2000):
        if not getattr(worker, "_tasks", None):
            break
        await asyncio.sleep(0.005)
    await asyncio.sleep(ctx.settings.event_flush_seconds + 0.3)


async def _measure(iterations: int, rounds: int, profile: Path | None) -> dict[str, list[float]]:
    from assistantd.app import create_app
    from assistantd.context import Overrides
    from assistantd.core.settings import Settings
    from assistantd.testing.server import SwitchRouter

    out: dict[str, list[float]] = {c: [] for c in CASES}
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp),
            database_url=f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}",
            api_keys=KEY,
            sandbox_pool_size=0,
            _env_file=None,
        )
        app = create_app(settings, overrides=Overrides(models=SwitchRouter()))
        async with app.router.lifespan_context(app):
            asst = (await _json(app, _Call("POST", "/v1/assistants", {"model": "m"})))["id"]
            thread = (await _json(app, _Call("POST", "/v1/threads", {})))["id"]
            for i in range(20):
                await _json(
                    app,
                    _Call(
                        "POST",
                        f"/v1/threads/{thread}/messages",
                        {"role": "user", "content": f"m{i}"},
                    ),
                )
            tr = await _json(
                app,
                _Call(
                    "POST",
                    "/v1/threads/runs",
                    {
                        "assistant_id": asst,
                        "thread": {"messages": [{"role": "user", "content": "x"}]},
                    },
                ),
            )
            await _idle(app)
            calls = {
                "GET run": _Call("GET", f"/v1/threads/{tr['thread_id']}/runs/{tr['id']}"),
                "GET messages": _Call("GET", f"/v1/threads/{thread}/messages"),
                "POST message": _Call(
                    "POST", f"/v1/threads/{thread}/messages", {"role": "user", "content": "hello"}
                ),
                "POST threads/runs (+ its run)": _Call(
                    "POST",
                    "/v1/threads/runs",
                    {
                        "assistant_id": asst,
                        "thread": {"messages": [{"role": "user", "content": "hi"}]},
                    },
                ),
            }
            for c in calls.values():  # warm every path once
                await _json(app, c)
            await _idle(app)
            prof = None
            if profile is not None:
                import cProfile

                prof = cProfile.Profile()
            for _ in range(rounds):
                for case, call in calls.items():
                    if prof is not None:
                        prof.enable()
                    began = time.process_time()
                    for _ in range(iterations):
                        await call(app)
                    if case.startswith("POST threads/runs"):
                        await _idle(app)
                    out[case].append((time.process_time() - began) / iterations * 1e6)
                    if prof is not None:
                        prof.disable()
            if prof is not None and profile is not None:
                prof.dump_stats(str(profile))
    return out


def _child(src: str, iterations: int, rounds: int) -> dict[str, list[float]]:
    env = dict(os.environ, PYTHONPATH=f"{Path(src).resolve()}:{ROOT}")
    cmd = [sys.executable, "-m", "bench.request_cpu", "--json", "--iterations", str(iterations)]
    cmd += ["--rounds", str(rounds)]
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    result: dict[str, list[float]] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--trees", nargs=2, metavar=("SRC_A", "SRC_B"))
    parser.add_argument("--alternations", type=int, default=4)
    parser.add_argument("--profile", type=Path)
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.json:
        print(json.dumps(asyncio.run(_measure(args.iterations, args.rounds, args.profile))))
        return {}
    if not args.trees:
        samples = asyncio.run(_measure(args.iterations, args.rounds, args.profile))
        text = table(
            ["case", "CPU µs per request (median of rounds)", "rounds"],
            [
                [k, fmt(statistics.median(v), 0), ", ".join(fmt(x, 0) for x in v)]
                for k, v in samples.items()
            ],
        )
        print(text)
        return {"samples_us": samples}
    per: dict[str, dict[str, list[float]]] = {
        "A": {c: [] for c in CASES},
        "B": {c: [] for c in CASES},
    }
    for i in range(args.alternations):
        for side in "AB" if i % 2 == 0 else "BA":
            src = args.trees[0] if side == "A" else args.trees[1]
            for case, values in _child(src, args.iterations, args.rounds).items():
                per[side][case] += values
    rows = []
    for case in CASES:
        a, b = statistics.median(per["A"][case]), statistics.median(per["B"][case])
        rows.append([case, fmt(a, 0), fmt(b, 0), fmt(b / a, 3)])
    load = Path("/proc/loadavg").read_text().split()[:3]
    text = table(["case", "A CPU µs/request", "B CPU µs/request", "B/A"], rows)
    print(f"A = {args.trees[0]}, B = {args.trees[1]}; load average at the end {' '.join(load)}")
    print(text)
    path = write_results(NAME, {"trees": args.trees, "samples_us": per, "table": text})
    print(f"\nwrote {path}")
    return {"samples_us": per}


if __name__ == "__main__":
    main()
