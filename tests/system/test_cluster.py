"""`assistantd cluster`: one command, 2 API processes and 2 workers on PostgreSQL and Redis.

Runs created through one API process execute in a worker and stream through the other;
a worker killed with SIGKILL is started again and the cluster keeps serving; SIGTERM
stops every child. Without PostgreSQL or Redis the command refuses to start.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from assistantd.testing.fake_upstream import FakeUpstream
from assistantd.testing.server import pg_database

KEY = "sk-cluster"
REDIS = os.environ.get("ASSISTANTD_TEST_REDIS", "redis://127.0.0.1:6379/0")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class Cluster:
    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "assistantd", "cluster", *args],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=60)
        self._reader.join(timeout=10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        return code

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float = 120.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no line matching {pattern!r}"
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if m := re.search(pattern, line):
                return m


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    url, drop = pg_database()
    with FakeUpstream(
        lambda body: f"echo: {body['messages'][-1]['content']}", token_delay=0.005
    ) as up:
        yield dict(
            os.environ,
            ASSISTANTD_DATA_DIR=str(tmp_path),
            ASSISTANTD_DATABASE_URL=url,
            ASSISTANTD_REDIS_URL=REDIS,
            ASSISTANTD_LLM_BASE_URL=up.base_url,
            ASSISTANTD_API_KEYS=KEY,
            ASSISTANTD_SANDBOX_POOL_SIZE="0",
        )
    drop()


def _run_through(api_create: str, api_stream: str, text: str) -> Any:
    with (
        openai.OpenAI(base_url=api_create, api_key=KEY, max_retries=0) as c1,
        openai.OpenAI(base_url=api_stream, api_key=KEY, max_retries=0) as c2,
    ):
        a = c1.beta.assistants.create(model="m")
        t = c1.beta.threads.create(messages=[{"role": "user", "content": text}])
        with c2.beta.threads.runs.stream(thread_id=t.id, assistant_id=a.id) as stream:
            streamed = "".join(stream.text_deltas)
            run = stream.get_final_run()
        return run.status, streamed


def test_cluster_serves_restarts_and_stops(env: dict[str, str]) -> None:
    cluster = Cluster(env, "--api", "2", "--workers", "2", "--port", "0")
    try:
        ready = cluster.wait_for(r"^ready api=(\S+) workers=(\S+)$")
        apis = [f"{u}/v1" for u in ready.group(1).split(",")]
        workers = [int(p) for p in ready.group(2).split(",")]
        assert len(apis) == 2 and len(workers) == 2
        assert _run_through(apis[0], apis[1], "hello") == ("completed", "echo: hello")

        os.kill(workers[0], signal.SIGKILL)
        restarted = cluster.wait_for(r"^restarted worker 1 pid (\d+) \(exit -9\)$", timeout=30)
        assert int(restarted.group(1)) not in workers
        assert _run_through(apis[1], apis[0], "again") == ("completed", "echo: again")
        children = [*workers[1:], int(restarted.group(1))]
    finally:
        code = cluster.stop()
    assert code == 0
    assert not [pid for pid in children if _alive(pid)]


def test_cluster_needs_postgres_and_redis(tmp_path: Path) -> None:
    env = dict(os.environ, ASSISTANTD_DATA_DIR=str(tmp_path))
    env.pop("ASSISTANTD_DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "assistantd", "cluster"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "needs PostgreSQL" in done.stderr


def test_streams_on_both_api_processes_survive_losing_every_worker(tmp_path: Path) -> None:
    """SIGKILL both workers mid-run (one host): the cluster restarts them, they take the
    runs over (the dead pids free the leases at once), and the SSE stream open on each API
    process carries its resumed run to `thread.run.completed` and `done`."""
    import httpx

    url, drop = pg_database()
    reply = "word " * 300
    with FakeUpstream(lambda body: reply, token_delay=0.02) as up:
        env = dict(
            os.environ,
            ASSISTANTD_DATA_DIR=str(tmp_path),
            ASSISTANTD_DATABASE_URL=url,
            ASSISTANTD_REDIS_URL=REDIS,
            ASSISTANTD_LLM_BASE_URL=up.base_url,
            ASSISTANTD_API_KEYS=KEY,
            ASSISTANTD_SANDBOX_POOL_SIZE="0",
        )
        cluster = Cluster(env, "--api", "2", "--workers", "2", "--port", "0")
        try:
            ready = cluster.wait_for(r"^ready api=(\S+) workers=(\S+)$")
            apis = ready.group(1).split(",")
            workers = [int(p) for p in ready.group(2).split(",")]
            h = {"Authorization": f"Bearer {KEY}"}
            a = httpx.post(f"{apis[0]}/v1/assistants", json={"model": "m"}, headers=h).json()
            streams: list[list[tuple[str, str]]] = [[], []]
            errors: list[str] = []

            def follow(n: int) -> None:
                t = httpx.post(
                    f"{apis[n]}/v1/threads",
                    headers=h,
                    json={"messages": [{"role": "user", "content": "go"}]},
                ).json()
                try:
                    with httpx.stream(
                        "POST",
                        f"{apis[n]}/v1/threads/{t['id']}/runs",
                        headers=h,
                        json={"assistant_id": a["id"], "stream": True},
                        timeout=180,
                    ) as r:
                        event = ""
                        for line in r.iter_lines():
                            if line.startswith("event: "):
                                event = line[7:]
                            elif line.startswith("data: "):
                                streams[n].append((event, line[6:]))
                except httpx.HTTPError as exc:
                    errors.append(repr(exc))

            threads = [threading.Thread(target=follow, args=(n,)) for n in (0, 1)]
            for th in threads:
                th.start()
            deadline = time.monotonic() + 60
            while not all(sum(e == "thread.message.delta" for e, _ in s) > 20 for s in streams):
                assert time.monotonic() < deadline, "runs did not start streaming"
                time.sleep(0.05)
            for pid in workers:
                os.kill(pid, signal.SIGKILL)
            for th in threads:
                th.join(timeout=170)
            assert not errors
            for s in streams:
                names = [e for e, _ in s]
                assert names[-2:] == ["thread.run.completed", "done"], names[-6:]
                # The run was resumed by another worker, not finished before the kill.
                assert "thread.message.incomplete" in names, sorted(set(names))
                completed = [d for e, d in s if e == "thread.message.completed"]
                assert completed and reply.strip() in completed[-1]
        finally:
            cluster.stop()
    drop()
