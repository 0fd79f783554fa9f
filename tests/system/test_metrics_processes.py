"""`/metrics` of a server of many processes, as `assistantd serve` runs: `--workers 2` adds up
both API processes' counts, and runs executed by a separate `assistantd worker` (sharing the
data dir, so the metrics directory) show in the API's `/metrics`."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from assistantd.testing.fake_upstream import FakeUpstream
from assistantd.testing.prom import key, scrape
from assistantd.testing.server import free_port, wait_http

KEY = "sk-metrics-processes"


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream(lambda body: "hello back") as up:
        yield up


def spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "assistantd", *args], env=env)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def environment(tmp_path: Path, up: FakeUpstream, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    return dict(
        env,
        ASSISTANTD_DATA_DIR=str(tmp_path),
        ASSISTANTD_LLM_BASE_URL=up.base_url,
        ASSISTANTD_API_KEYS=KEY,
        ASSISTANTD_SANDBOX_POOL_SIZE="0",
        **extra,
    )


def test_workers_add_up(tmp_path: Path, upstream: FakeUpstream) -> None:
    port = free_port()
    proc = spawn(
        ["serve", "--port", str(port), "--workers", "2", "--log-level", "warning"],
        environment(tmp_path, upstream),
    )
    root = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{root}/health", proc)
        n = 40
        for _ in range(n):  # a new connection each: uvicorn's workers share the listening socket
            assert (
                httpx.get(
                    f"{root}/v1/assistants", headers={"Authorization": f"Bearer {KEY}"}
                ).status_code
                == 200
            )
        counters = list((tmp_path / "metrics").glob("counter_*.db"))
        assert len(counters) >= 2, counters  # both processes served and wrote their own values
        deadline = time.monotonic() + 10
        while True:
            samples, _ = scrape(root)
            got = samples.get(
                key(
                    "assistantd_http_requests_total",
                    method="GET",
                    route="/v1/assistants",
                    status="200",
                )
            )
            if got == n or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert got == n
        assert (
            samples[
                key(
                    "assistantd_http_request_duration_seconds_count",
                    method="GET",
                    route="/v1/assistants",
                )
            ]
            == n
        )
    finally:
        stop(proc)


@pytest.mark.parametrize("host", ["same", "own"])
def test_runs_of_a_separate_worker(tmp_path: Path, upstream: FakeUpstream, host: str) -> None:
    """On the API's host the worker's runs show in the API's `/metrics`; on a host of its own
    (another data dir, so another metrics dir) in the worker's own `/metrics`."""
    port, worker_port = free_port(), free_port()
    env = environment(tmp_path, upstream)
    api = spawn(
        ["serve", "--port", str(port), "--log-level", "warning"],
        dict(env, ASSISTANTD_WORKER_ENABLED="false"),
    )
    root = f"http://127.0.0.1:{port}"
    worker_env = env
    if host == "own":
        (tmp_path / "elsewhere").mkdir()
        worker_env = dict(
            env,
            ASSISTANTD_DATA_DIR=str(tmp_path / "elsewhere"),
            ASSISTANTD_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'assistantd.db'}",
            ASSISTANTD_WORKER_METRICS_PORT=str(worker_port),
        )
    worker = None
    try:
        wait_http(f"{root}/health", api)
        worker = spawn(["worker"], worker_env)
        h = {"Authorization": f"Bearer {KEY}"}
        a = httpx.post(f"{root}/v1/assistants", json={"model": "m"}, headers=h).json()
        runs = []
        for i in range(3):
            t = httpx.post(
                f"{root}/v1/threads",
                json={"messages": [{"role": "user", "content": f"hi {i}"}]},
                headers=h,
            ).json()
            r = httpx.post(
                f"{root}/v1/threads/{t['id']}/runs", json={"assistant_id": a["id"]}, headers=h
            ).json()
            runs.append((t["id"], r["id"]))
        for thread, run in runs:
            deadline = time.monotonic() + 60
            while (
                httpx.get(f"{root}/v1/threads/{thread}/runs/{run}", headers=h).json()["status"]
                != "completed"
            ):
                assert time.monotonic() < deadline, "the worker did not complete the run"
                time.sleep(0.1)
        api_samples, _ = scrape(root)
        if host == "own":
            wait_http(f"http://127.0.0.1:{worker_port}/healthz", worker)
            samples, _ = scrape(f"http://127.0.0.1:{worker_port}")
            assert key("assistantd_runs_finished_total", status="completed") not in api_samples
        else:
            samples = api_samples
        assert samples[key("assistantd_runs_finished_total", status="completed")] == 3
        assert samples[key("assistantd_model_calls_total", model="m", project="default")] == 3
        assert samples[key("assistantd_run_duration_seconds_count")] == 3
    finally:
        if worker is not None:
            stop(worker)
        stop(api)
