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
