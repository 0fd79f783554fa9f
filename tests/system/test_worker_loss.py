"""Losing a worker on another host: 2 API processes and 2 workers on PostgreSQL and Redis,
each worker with a host id of its own (`ASSISTANTD_HOST_ID`), so neither can see the
other's pid and a takeover waits for the lease (`ASSISTANTD_RUN_LEASE_SECONDS`, 8 s here:
longer than redis-py's default socket timeout, which once cut streams silent that long,
and than the streams' keep-alive interval, 3 s here).

Four runs execute in worker A with streams open on both API processes; A is killed with
SIGKILL. Every stream stays open and carries its run, taken over by worker B within the
lease plus 5 s, through to `done`: resumed to `thread.run.completed`, or, when B may not
resume it (`ASSISTANTD_RUN_MAX_TAKEOVERS=0`), to `thread.run.failed`. No event is sent
twice, no message is lost or doubled, and no process logs a traceback.

A worker that stalls rather than dies: A is stopped with SIGSTOP past its lease, B takes
its runs over, and A is woken with SIGCONT while B streams the resumed answers. A publishes
and writes nothing more (`worker/lease.py`): every stream still reads as after a kill, the
text of each message exactly once, and A lives on, having logged why it stopped.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from assistantd.testing.fake_upstream import FakeUpstream
from assistantd.testing.server import free_port, pg_database, wait_http
from assistantd.testing.sse import frames_of

KEY = "sk-worker-loss"
REDIS = os.environ.get("ASSISTANTD_TEST_REDIS", "redis://127.0.0.1:6379/0")
LEASE = 8.0
RENEW = 1.0
REPLY = "word " * 300
H = {"Authorization": f"Bearer {KEY}"}
#: How a stream of a run that completes ends (after its answer's deltas).
ENDS_COMPLETED = [
    "thread.message.completed",
    "thread.run.step.completed",
    "thread.run.completed",
    "done",
]


class Child:
    """An `assistantd` subprocess whose output goes to a log file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path, health: str) -> None:
        self.log = log
        self.health = health
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "assistantd", *args],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self) -> None:
        wait_http(self.health, self.proc)  # type: ignore[arg-type]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Stream:
    """One streamed run, read in a thread: its frames and when each arrived."""

    def __init__(self, api: str, assistant_id: str) -> None:
        self.api = api
        self.thread_id = httpx.post(
            f"{api}/threads", headers=H, json={"messages": [{"role": "user", "content": "go"}]}
        ).json()["id"]
        self.assistant_id = assistant_id
        self.frames: list[tuple[str, Any, str | None, float]] = []
        self.error: str | None = None
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        try:
            with httpx.stream(
                "POST",
                f"{self.api}/threads/{self.thread_id}/runs",
                headers=H,
                json={"assistant_id": self.assistant_id, "stream": True},
                timeout=httpx.Timeout(10, read=120),
            ) as r:
                for event, data, eid in frames_of(r):
                    self.frames.append((event, data, eid, time.monotonic()))
        except httpx.HTTPError as exc:
            self.error = repr(exc)

    def names(self) -> list[str]:
        return [f[0] for f in self.frames]

    def first(self, event: str) -> tuple[str, Any, str | None, float]:
        return next(f for f in self.frames if f[0] == event)


@pytest.fixture
def cluster(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[list[str], list[Child], list[Child]]]:
    takeovers = str(request.param)
    url, drop = pg_database()
    children: list[Child] = []
    with FakeUpstream(lambda body: REPLY, token_delay=0.02) as up:
        env = dict(
            os.environ,
            ASSISTANTD_DATA_DIR=str(tmp_path / "data"),
            ASSISTANTD_DATABASE_URL=url,
            ASSISTANTD_REDIS_URL=REDIS,
            ASSISTANTD_LLM_BASE_URL=up.base_url,
            ASSISTANTD_API_KEYS=KEY,
            ASSISTANTD_SANDBOX_POOL_SIZE="0",
            ASSISTANTD_RUN_LEASE_SECONDS=str(LEASE),
            ASSISTANTD_RUN_LEASE_RENEW_SECONDS=str(RENEW),
            ASSISTANTD_RUN_SWEEP_SECONDS="0.5",
        )
        try:
            workers = []
            for name in ("a", "b"):
                port = free_port()
                workers.append(
                    Child(
                        ["worker"],
                        dict(
                            env,
                            ASSISTANTD_HOST_ID=f"host-{name}",
                            ASSISTANTD_WORKER_METRICS_PORT=str(port),
                            ASSISTANTD_RUN_MAX_TAKEOVERS=takeovers,
                        ),
                        tmp_path / f"worker-{name}.log",
                        f"http://127.0.0.1:{port}/healthz",
                    )
                )
                children.append(workers[-1])
                workers[-1].wait_ready()  # one at a time: the first migrates
            apis, urls = [], []
            for n in (1, 2):
                port = free_port()
                apis.append(
                    Child(
                        ["serve", "--port", str(port)],
                        dict(
                            env,
                            ASSISTANTD_WORKER_ENABLED="false",
                            ASSISTANTD_HOST_ID=f"host-api-{n}",
                            ASSISTANTD_STREAM_KEEPALIVE_SECONDS="3",
                        ),
                        tmp_path / f"api-{n}.log",
                        f"http://127.0.0.1:{port}/health",
                    )
                )
                children.append(apis[-1])
                urls.append(f"http://127.0.0.1:{port}/v1")
            for api in apis:
                api.wait_ready()
            yield urls, workers, apis
        finally:
            for child in children:
                child.stop()
            drop()


def _streams_on_worker_a(urls: list[str], workers: list[Child]) -> list[Stream]:
    """Four streams (two on each API process) of runs that worker A executes (B is stopped
    while they start), each 20 deltas into its answer."""
    _, b_worker = workers
    assistant = httpx.post(f"{urls[0]}/assistants", headers=H, json={"model": "m"}).json()
    b_worker.proc.send_signal(signal.SIGSTOP)
    try:
        streams = [Stream(urls[n % 2], assistant["id"]) for n in range(4)]
        deadline = time.monotonic() + 60
        while not all(s.names().count("thread.message.delta") >= 20 for s in streams):
            assert time.monotonic() < deadline, [s.names()[-3:] for s in streams]
            assert not [s.error for s in streams if s.error]
            time.sleep(0.05)
    finally:
        b_worker.proc.send_signal(signal.SIGCONT)
    return streams


def _lose_worker_a(urls: list[str], workers: list[Child]) -> tuple[list[Stream], float]:
    """Four streams (two on each API process) of runs that worker A executes (B is stopped
    while they start); A is killed mid-answer. Returns the streams, once ended, and the
    moment of the kill."""
    a_worker = workers[0]
    streams = _streams_on_worker_a(urls, workers)
    a_worker.proc.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    a_worker.proc.wait(timeout=10)
    for s in streams:
        s.reader.join(timeout=120)
    return streams, killed


def _stall_worker_a(urls: list[str], workers: list[Child]) -> list[Stream]:
    """As `_lose_worker_a`, but A is stopped (SIGSTOP) instead of killed, and woken
    (SIGCONT) once B has taken every run over and is streaming its answer."""
    a_worker = workers[0]
    streams = _streams_on_worker_a(urls, workers)
    a_worker.proc.send_signal(signal.SIGSTOP)
    try:

        def resumed(s: Stream) -> int:
            names = s.names()
            if "thread.run.in_progress" not in names[names.index("thread.run.created") + 3 :]:
                return 0
            return names[names.index("thread.run.step.failed") :].count("thread.message.delta")

        deadline = time.monotonic() + LEASE + 15
        while not all(resumed(s) >= 10 for s in streams):
            assert time.monotonic() < deadline, [s.names()[-3:] for s in streams]
            time.sleep(0.05)
        assert not any("done" in s.names() for s in streams)  # B is mid-answer on each
    finally:
        a_worker.proc.send_signal(signal.SIGCONT)
    for s in streams:
        s.reader.join(timeout=120)
    return streams


def _check_stream(s: Stream) -> list[dict[str, Any]]:
    """The stream's own checks; returns the thread's messages, oldest first."""
    assert s.error is None, s.error
    ids = [int(f[2]) for f in s.frames if f[2] is not None]
    assert ids == list(range(1, len(ids) + 1))  # each event once, in order, none lost
    got = [e for e in s.names() if e != "thread.message.delta"]
    # The interrupted message and step are closed by the worker that took the run over.
    failed = got.index("thread.run.step.failed")
    assert got[failed - 1] == "thread.message.incomplete", got
    msgs: list[dict[str, Any]] = httpx.get(
        f"{s.api}/threads/{s.thread_id}/messages", headers=H, params={"order": "asc"}
    ).json()["data"]
    streamed = "".join(
        c["text"]["value"]
        for e, d, _, _ in s.frames
        if e == "thread.message.delta" and d["id"] == msgs[1]["id"]
        for c in d["delta"]["content"]
    )
    assert msgs[0]["role"] == "user"
    assert msgs[1]["status"] == "incomplete" and msgs[1]["content"][0]["text"]["value"] == streamed
    assert len(streamed.split()) >= 20
    return msgs


def _no_tracebacks(children: list[Child]) -> None:
    for child in children:
        text = child.log.read_text(errors="replace")
        assert "Traceback" not in text and "ERROR" not in text, f"{child.log.name}:\n{text[-3000:]}"


@pytest.mark.parametrize("cluster", [3], indirect=True)
def test_streams_carry_runs_taken_over_from_a_worker_lost_on_another_host(
    cluster: tuple[list[str], list[Child], list[Child]],
) -> None:
    urls, workers, apis = cluster
    streams, killed = _lose_worker_a(urls, workers)
    takeovers = []
    for s in streams:
        msgs = _check_stream(s)
        got = [e for e in s.names() if e != "thread.message.delta"]
        assert got[-4:] == ENDS_COMPLETED, got
        assert got[got.index("thread.run.step.failed") + 1] == "thread.run.in_progress", got
        assert len(msgs) == 3 and msgs[2]["status"] == "completed"
        assert msgs[2]["content"][0]["text"]["value"] == REPLY
        run = httpx.get(
            f"{s.api}/threads/{s.thread_id}/runs/{s.first('thread.run.created')[1]['id']}",
            headers=H,
        ).json()
        assert run["status"] == "completed"
        takeovers.append(s.first("thread.message.incomplete")[3] - killed)
    print(
        f"takeover after kill -9: {', '.join(f'{t:.1f}' for t in takeovers)} s (lease {LEASE:g} s)"
    )
    assert max(takeovers) <= LEASE + 5, takeovers
    # B waited for the lease (it cannot look up a pid of another host): about one renewal
    # interval of it had passed at the kill (a pid looked up would be freed in a sweep, 0.5 s).
    assert min(takeovers) >= LEASE - RENEW - 2, takeovers
    _no_tracebacks([workers[1], *apis])


@pytest.mark.parametrize("cluster", [0], indirect=True)
def test_a_run_that_may_not_resume_ends_failed_on_every_stream(
    cluster: tuple[list[str], list[Child], list[Child]],
) -> None:
    urls, workers, apis = cluster
    streams, killed = _lose_worker_a(urls, workers)
    for s in streams:
        msgs = _check_stream(s)
        got = [e for e in s.names() if e != "thread.message.delta"]
        assert got[-4:] == [
            "thread.message.incomplete",
            "thread.run.step.failed",
            "thread.run.failed",
            "done",
        ], got
        assert len(msgs) == 2
        run_id = s.first("thread.run.created")[1]["id"]
        run = httpx.get(f"{s.api}/threads/{s.thread_id}/runs/{run_id}", headers=H).json()
        assert run["status"] == "failed" and run["last_error"]["code"] == "server_error"
        assert "ASSISTANTD_RUN_MAX_TAKEOVERS" in run["last_error"]["message"]
        assert s.first("thread.run.failed")[3] - killed <= LEASE + 5
    _no_tracebacks([workers[1], *apis])


@pytest.mark.parametrize("cluster", [3], indirect=True)
def test_a_worker_that_stalls_past_its_lease_acts_no_more_when_it_wakes(
    cluster: tuple[list[str], list[Child], list[Child]],
) -> None:
    urls, workers, apis = cluster
    streams = _stall_worker_a(urls, workers)
    time.sleep(2 * RENEW)  # A, awake, has renewed (or tried to) and swept since
    logs = redis.Redis.from_url(REDIS)
    try:
        for s in streams:
            msgs = _check_stream(s)
            got = [e for e in s.names() if e != "thread.message.delta"]
            assert got[-4:] == ENDS_COMPLETED, got
            assert got.count("thread.run.completed") == 1 and got.count("done") == 1
            # Nothing of A's after B closed A's message: no delta of it, none twice.
            closed = next(n for n, f in enumerate(s.frames) if f[0] == "thread.message.incomplete")
            assert not [
                f
                for f in s.frames[closed:]
                if f[0] == "thread.message.delta" and f[1]["id"] == msgs[1]["id"]
            ]
            assert len(msgs) == 3 and msgs[2]["status"] == "completed"
            assert msgs[2]["content"][0]["text"]["value"] == REPLY
            run_id = s.first("thread.run.created")[1]["id"]
            run = httpx.get(f"{s.api}/threads/{s.thread_id}/runs/{run_id}", headers=H).json()
            assert run["status"] == "completed"
            # The run's log ends with the stream's `done`: nothing was published after it.
            entries = logs.xrange(f"assistantd:run:{run_id}")
            assert entries, run_id
            assert [fields[b"e"] for _, fields in entries].count(b"done") == 1
            assert entries[-1][1][b"e"] == b"done"
    finally:
        logs.close()
    a_worker = workers[0]
    assert a_worker.proc.poll() is None  # it lives on, and takes runs again
    text = a_worker.log.read_text(errors="replace")
    assert "it stops executing here, left to its holder" in text, text[-3000:]
    _no_tracebacks([*workers, *apis])
