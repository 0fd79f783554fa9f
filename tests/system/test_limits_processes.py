"""Limits across processes: two `assistantd serve` on one PostgreSQL and one Redis share one
rate limit; the SDK's own retry honours `retry-after-ms`; `assistantd usage` sums the runs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from assistantd.testing.fake_upstream import FakeReply, FakeUpstream
from assistantd.testing.server import free_port, pg_database, wait_http

KEY = "sk-limits-processes"
REDIS = os.environ.get("ASSISTANTD_TEST_REDIS", "redis://127.0.0.1:6379/0")


def script(body: dict[str, Any]) -> Any:
    text = str(body["messages"][-1].get("content") or "")
    if "slow" in text:
        return FakeReply("finally", pause=1.2)
    return f"echo: {text}"


class Cluster:
    def __init__(self, urls: list[str], admin_key: str, env: dict[str, str]) -> None:
        self.urls, self.admin_key, self.env = urls, admin_key, env

    def admin(self, i: int = 0) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.urls[i], admin_api_key=self.admin_key, max_retries=0)

    def client(self, i: int, **kw: Any) -> openai.OpenAI:
        kw.setdefault("max_retries", 0)
        return openai.OpenAI(base_url=self.urls[i], api_key=KEY, **kw)


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "assistantd", *args],
        env=env,
        text=True,
        capture_output=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("limits")
    url, drop = pg_database()
    with FakeUpstream(script, token_delay=0.0) as up:
        env = dict(
            os.environ,
            ASSISTANTD_DATA_DIR=str(tmp),
            ASSISTANTD_DATABASE_URL=url,
            ASSISTANTD_REDIS_URL=REDIS,
            ASSISTANTD_LLM_BASE_URL=up.base_url,
            ASSISTANTD_API_KEYS=KEY,
            ASSISTANTD_SANDBOX_POOL_SIZE="0",
        )
        made = cli(env, "keys", "create", "--admin", "--name", "limits")
        assert made.returncode == 0, made.stderr
        admin_key = made.stdout.strip().splitlines()[-1]
        ports = [free_port(), free_port()]
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "assistantd",
                    "serve",
                    "--port",
                    str(p),
                    "--log-level",
                    "warning",
                ],
                env=env,
            )
            for p in ports
        ]
        try:
            for p, proc in zip(ports, procs, strict=True):
                wait_http(f"http://127.0.0.1:{p}/health", proc)
            yield Cluster([f"http://127.0.0.1:{p}/v1" for p in ports], admin_key, env)
        finally:
            for proc in procs:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
            drop()


def test_two_processes_share_one_requests_limit(cluster: Cluster) -> None:
    model = f"m-{uuid.uuid4().hex[:8]}"
    with cluster.admin() as admin:
        admin.admin.organization.projects.rate_limits.update_rate_limit(
            f"rl-{model}", project_id="default", max_requests_per_1_minute=3
        )
    c = [cluster.client(0), cluster.client(1)]
    a = c[0].beta.assistants.create(model=model)
    remaining = []
    for i in (0, 1, 0):
        raw = c[i].beta.threads.with_raw_response.create_and_run(assistant_id=a.id)
        remaining.append(raw.headers["x-ratelimit-remaining-requests"])
    assert remaining == ["2", "1", "0"]
    for i in (1, 0):
        with pytest.raises(openai.RateLimitError) as e:
            c[i].beta.threads.create_and_run(assistant_id=a.id)
        assert e.value.code == "rate_limit_exceeded"
        assert e.value.response.headers["x-ratelimit-limit-requests"] == "3"


def test_sdk_retry_waits_retry_after_ms_and_succeeds(cluster: Cluster) -> None:
    model = f"m-{uuid.uuid4().hex[:8]}"
    with cluster.admin() as admin:
        admin.admin.organization.projects.rate_limits.update_rate_limit(
            f"rl-{model}", project_id="default", extra_body={"max_concurrent_runs": 1}
        )
    statuses: list[int] = []
    hooks = {"response": [lambda r: statuses.append(r.status_code)]}
    with (
        cluster.client(0) as first,
        cluster.client(1, max_retries=2, http_client=httpx.Client(event_hooks=hooks)) as retrying,
    ):
        a = first.beta.assistants.create(model=model)
        slow = first.beta.threads.create_and_run(
            assistant_id=a.id, thread={"messages": [{"role": "user", "content": "slow please"}]}
        )
        assert slow.status == "queued"
        began = time.monotonic()
        run = retrying.beta.threads.create_and_run(assistant_id=a.id)
        waited = time.monotonic() - began
    assert run.status == "queued"
    assert statuses[0] == 429 and statuses[-1] == 200
    assert waited >= 1.0  # retry-after-ms: 1000 per refusal


def test_usage_cli_sums_the_runs(cluster: Cluster) -> None:
    model = f"gpt-4o-{uuid.uuid4().hex[:6]}"
    with cluster.client(0) as c:
        a = c.beta.assistants.create(model=model)
        runs = [
            c.beta.threads.create_and_run_poll(
                assistant_id=a.id, thread={"messages": [{"role": "user", "content": f"count {i}"}]}
            )
            for i in range(2)
        ]
    assert all(r.status == "completed" and r.usage for r in runs)
    prompt = sum(r.usage.prompt_tokens for r in runs if r.usage)
    completion = sum(r.usage.completion_tokens for r in runs if r.usage)
    out = cli(cluster.env, "usage", "--days", "1", "--project", "default")
    assert out.returncode == 0, out.stderr
    line = next(x for x in out.stdout.splitlines() if model in x)
    cols = line.split()
    assert cols[1] == "default" and cols[3:6] == ["2", str(prompt), str(completion)]
    assert float(cols[6]) == pytest.approx(
        (prompt * 5 + completion * 15) / 1e6, abs=1e-4
    )  # priced as gpt-4o
