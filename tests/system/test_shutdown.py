"""SIGTERM to `assistantd serve` with a run streaming: new connections are refused, the run
finishes within the drain time and its stream ends with `done`; a run too long for the drain
is handed off (back to `queued`, lease released, its stream told so and ended with `done`),
nothing is left `in_progress`, and the restarted server completes it."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from assistantd.testing.fake_upstream import FakeUpstream
from assistantd.testing.server import free_port, wait_http
from assistantd.testing.sse import frames_of

KEY = "sk-shutdown"
H = {"Authorization": f"Bearer {KEY}"}


def serve(tmp_path: Path, up: FakeUpstream, drain: float) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = dict(
        os.environ,
        ASSISTANTD_DATA_DIR=str(tmp_path),
        ASSISTANTD_LLM_BASE_URL=up.base_url,
        ASSISTANTD_API_KEYS=KEY,
        ASSISTANTD_SANDBOX_POOL_SIZE="0",
        ASSISTANTD_SHUTDOWN_DRAIN_SECONDS=str(drain),
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "assistantd",
            "serve",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
    )
    root = f"http://127.0.0.1:{port}"
    wait_http(f"{root}/health", proc)
    return proc, root


class Stream(threading.Thread):
    """A streamed run read in the background: its frames, and an event at the first delta."""

    def __init__(self, root: str, thread_id: str, assistant_id: str) -> None:
        super().__init__(daemon=True)
        self.url = f"{root}/v1/threads/{thread_id}/runs"
        self.assistant_id = assistant_id
        self.frames: list[tuple[str, Any]] = []
        self.first_delta = threading.Event()

    def run(self) -> None:
        with httpx.stream(
            "POST",
            self.url,
            json={"assistant_id": self.assistant_id, "stream": True},
            headers=H,
            timeout=120,
        ) as r:
            for event, data, _ in frames_of(r):
                self.frames.append((event, data))
                if event == "thread.message.delta":
                    self.first_delta.set()

    def names(self) -> list[str]:
        return [e for e, _ in self.frames]


def start_run(root: str, text: str) -> tuple[str, Stream]:
    a = httpx.post(f"{root}/v1/assistants", json={"model": "m"}, headers=H).json()
    t = httpx.post(
        f"{root}/v1/threads", json={"messages": [{"role": "user", "content": text}]}, headers=H
    ).json()
    stream = Stream(root, t["id"], a["id"])
    stream.start()
    assert stream.first_delta.wait(30)
    return t["id"], stream


def in_progress(db: Path) -> list[Any]:
    with sqlite3.connect(db) as conn:
        rows = [("run", s) for (s,) in conn.execute("SELECT status FROM runs")]
        rows += [
            ("step", json.loads(b)["status"]) for (b,) in conn.execute("SELECT body FROM run_steps")
        ]
        rows += [
            ("message", json.loads(b)["status"])
            for (b,) in conn.execute("SELECT body FROM messages")
        ]
    return [r for r in rows if r[1] == "in_progress"]


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)


def test_sigterm_lets_the_run_finish(tmp_path: Path) -> None:
    with FakeUpstream(lambda body: "word " * 40, token_delay=0.05) as up:
        proc, root = serve(tmp_path, up, drain=20)
        try:
            _, stream = start_run(root, "hello")
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            with pytest.raises(httpx.TransportError):
                httpx.get(f"{root}/healthz", timeout=2)  # no new connections
            stream.join(60)
            proc.wait(60)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert stream.names()[-2:] == ["thread.run.completed", "done"]
    text = "".join(
        d["delta"]["content"][0]["text"]["value"]
        for e, d in stream.frames
        if e == "thread.message.delta"
    )
    assert text == "word " * 40
    assert in_progress(tmp_path / "assistantd.db") == []


def test_sigterm_hands_off_a_run_longer_than_the_drain(tmp_path: Path) -> None:
    with FakeUpstream(lambda body: "word " * 300, token_delay=0.1) as up:
        proc, root = serve(tmp_path, up, drain=1)
        try:
            thread_id, stream = start_run(root, "hello")
            began = time.monotonic()
            stop(proc)
            assert time.monotonic() - began < 20  # not the 30 s the answer needs
            stream.join(10)
        finally:
            if proc.poll() is None:
                proc.kill()
        names = stream.names()
        assert names[-4:] == [
            "thread.message.incomplete",
            "thread.run.step.failed",
            "thread.run.queued",
            "done",
        ]
        assert stream.frames[-2][1]["status"] == "queued"
        db = tmp_path / "assistantd.db"
        assert in_progress(db) == []
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT status, lease_owner FROM runs").fetchall() == [
                ("queued", None)
            ]

        up.token_delay = 0.0
        proc, root = serve(tmp_path, up, drain=1)  # another worker (here: the restarted server)
        try:
            run_id = stream.frames[-2][1]["id"]
            deadline = time.monotonic() + 30
            while (
                run := httpx.get(f"{root}/v1/threads/{thread_id}/runs/{run_id}", headers=H).json()
            )["status"] != "completed":
                assert time.monotonic() < deadline, run
                time.sleep(0.1)
            steps = httpx.get(
                f"{root}/v1/threads/{thread_id}/runs/{run_id}/steps?order=asc", headers=H
            ).json()
            assert [s["status"] for s in steps["data"]] == ["failed", "completed"]
            assert "handed to another worker" in steps["data"][0]["last_error"]["message"]
        finally:
            stop(proc)
