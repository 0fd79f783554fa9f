"""Many processes: API processes with no worker, a separate `assistantd worker`, PostgreSQL
and Redis. Runs created on one API process execute in the worker and stream through any."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from assistantd.testing.fake_upstream import FakeReply, FakeToolCall, FakeUpstream
from assistantd.testing.server import free_port, pg_database, wait_http
from assistantd.testing.sse import frames_of, names, read_sse

KEY = "sk-multi-process"
REDIS = os.environ.get("ASSISTANTD_TEST_REDIS", "redis://127.0.0.1:6379/0")
PAUSE = 10.0  # seconds a thinking model is silent: twice redis-py's default socket timeout


def script(body: dict[str, Any]) -> Any:
    last = body["messages"][-1]
    if last["role"] == "tool":
        return f"tool said {last['content']}"
    text = str(last.get("content") or "")
    if "weather" in text:
        return FakeToolCall("get_weather", {"city": "Oslo"})
    if "think" in text:
        return FakeReply("thought it over", pause=PAUSE)
    if "slowly" in text:
        return "word " * 2000
    if "long" in text:
        return "word " * 300
    return f"echo: {text}"


class Process:
    def __init__(self, args: list[str], env: dict[str, str], port: int | None = None) -> None:
        self.port = port
        self.proc = subprocess.Popen([sys.executable, "-m", "assistantd", *args], env=env)

    def wait_http(self) -> None:
        wait_http(f"http://127.0.0.1:{self.port}/health", self.proc)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[list[str], FakeUpstream]]:
    url, drop = pg_database()
    with FakeUpstream(script, token_delay=0.01) as up:
        env = dict(
            os.environ,
            ASSISTANTD_DATA_DIR=str(tmp_path),
            ASSISTANTD_DATABASE_URL=url,
            ASSISTANTD_REDIS_URL=REDIS,
            ASSISTANTD_LLM_BASE_URL=up.base_url,
            ASSISTANTD_API_KEYS=KEY,
            ASSISTANTD_SANDBOX_POOL_SIZE="0",
        )
        api_env = dict(env, ASSISTANTD_WORKER_ENABLED="false")
        ports = [free_port(), free_port()]
        apis = [
            Process(["serve", "--port", str(p), "--log-level", "warning"], api_env, p)
            for p in ports
        ]
        worker = Process(["worker"], env)
        try:
            for api in apis:
                api.wait_http()
            yield [f"http://127.0.0.1:{p}/v1" for p in ports], up
        finally:
            for p in [*apis, worker]:
                p.stop()
            drop()


def test_runs_execute_in_the_worker_and_stream_anywhere(
    cluster: tuple[list[str], FakeUpstream],
) -> None:
    (api1, api2), _up = cluster
    with (
        openai.OpenAI(base_url=api1, api_key=KEY, max_retries=0) as c1,
        openai.OpenAI(base_url=api2, api_key=KEY, max_retries=0) as c2,
    ):
        a = c1.beta.assistants.create(
            model="m",
            tools=[
                {
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "parameters": {
                            "type": "object",
                            "properties": {"city": {"type": "string"}},
                        },
                    },
                }
            ],
        )
        t = c1.beta.threads.create(messages=[{"role": "user", "content": "hello"}])
        run = c1.beta.threads.runs.create_and_poll(thread_id=t.id, assistant_id=a.id)
        assert run.status == "completed"
        assert c2.beta.threads.messages.list(t.id).data[0].content[0].text.value == "echo: hello"

        # Stream from API 1 while the worker executes; tool outputs go in through API 2.
        c1.beta.threads.messages.create(t.id, role="user", content="weather?")
        with c1.beta.threads.runs.stream(thread_id=t.id, assistant_id=a.id) as stream:
            stream.until_done()
            run = stream.get_final_run()
        assert run.status == "requires_action"
        call = run.required_action.submit_tool_outputs.tool_calls[0]
        assert json.loads(call.function.arguments) == {"city": "Oslo"}
        with c2.beta.threads.runs.submit_tool_outputs_stream(
            thread_id=t.id,
            run_id=run.id,
            tool_outputs=[{"tool_call_id": call.id, "output": "cold"}],
        ) as stream:
            text = "".join(stream.text_deltas)
        assert text == "tool said cold"

        # A run started on API 1, followed live through API 2's replay endpoint.
        c1.beta.threads.messages.create(t.id, role="user", content="something long")
        started = c1.beta.threads.runs.create(thread_id=t.id, assistant_id=a.id)
        with httpx.stream(
            "GET",
            f"{api2}/threads/{t.id}/runs/{started.id}/events",
            headers={"Authorization": f"Bearer {KEY}"},
            timeout=60,
        ) as r:
            frames = read_sse(r)
        assert names(frames)[0] == "thread.run.created" and names(frames)[-2:] == [
            "thread.run.completed",
            "done",
        ]
        assert (
            "".join(
                f[1]["delta"]["content"][0]["text"]["value"]
                for f in frames
                if f[0] == "thread.message.delta"
            )
            == "word " * 300
        )


def test_cancel_through_another_process(cluster: tuple[list[str], FakeUpstream]) -> None:
    (api1, api2), _up = cluster
    with (
        openai.OpenAI(base_url=api1, api_key=KEY, max_retries=0) as c1,
        openai.OpenAI(base_url=api2, api_key=KEY, max_retries=0) as c2,
    ):
        a = c1.beta.assistants.create(model="m")
        t = c1.beta.threads.create(messages=[{"role": "user", "content": "something long, slowly"}])
        run = c1.beta.threads.runs.create(thread_id=t.id, assistant_id=a.id)
        deadline = time.monotonic() + 30
        while not c1.beta.threads.runs.steps.list(run.id, thread_id=t.id).data:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        asked = time.monotonic()
        c2.beta.threads.runs.cancel(run.id, thread_id=t.id)
        final = c1.beta.threads.runs.poll(run.id, thread_id=t.id)
        took = time.monotonic() - asked
        assert final.status == "cancelled"
        msg = c1.beta.threads.messages.list(t.id).data[0]
        with httpx.stream(
            "GET",
            f"{api1}/threads/{t.id}/runs/{run.id}/events",
            headers={"Authorization": f"Bearer {KEY}"},
            timeout=60,
        ) as r:
            events = [e for e in names(read_sse(r)) if e != "thread.message.delta"]
        assert msg.role == "assistant" and msg.status == "incomplete", (
            events[-8:],
            len(msg.content[0].text.value),
            took,
        )
        assert msg.incomplete_details.reason == "run_cancelled"
        assert len(msg.content[0].text.value.split()) < 2000 if msg.content else True


def test_streams_survive_a_silent_model(cluster: tuple[list[str], FakeUpstream]) -> None:
    # The model thinks 10 s before its first token; the run executes in the worker and its
    # stream is read in the API process through Redis, by the SDK and by the replay endpoint.
    (api1, api2), _up = cluster
    with openai.OpenAI(base_url=api1, api_key=KEY, max_retries=0) as c1:
        a = c1.beta.assistants.create(model="m")
        t = c1.beta.threads.create(messages=[{"role": "user", "content": "think first"}])
        started = time.monotonic()
        with c1.beta.threads.runs.stream(thread_id=t.id, assistant_id=a.id) as stream:
            run_id = None
            for event in stream:
                run_id = run_id or event.data.id
                if event.event == "thread.run.in_progress":
                    break
            with httpx.stream(
                "GET",
                f"{api2}/threads/{t.id}/runs/{run_id}/events",
                headers={"Authorization": f"Bearer {KEY}"},
                timeout=60,
            ) as r:
                replayed = read_sse(r)
            text = "".join(stream.text_deltas)
            final = stream.get_final_run()
        assert time.monotonic() - started >= PAUSE
        assert text == "thought it over" and final.status == "completed"
        assert names(replayed)[-2:] == ["thread.run.completed", "done"]


def test_stream_follows_a_run_taken_over_from_a_killed_worker(tmp_path: Path) -> None:
    # kill -9 of the worker mid-answer; another worker takes the run over. The client's
    # stream (served by the API process through Redis) goes on to the end: the interrupted
    # message closed with what it had streamed, then the resumed run, ids only growing.
    url, drop = pg_database()
    with FakeUpstream(script, token_delay=0.02) as up:
        env = dict(
            os.environ,
            ASSISTANTD_DATA_DIR=str(tmp_path),
            ASSISTANTD_DATABASE_URL=url,
            ASSISTANTD_REDIS_URL=REDIS,
            ASSISTANTD_LLM_BASE_URL=up.base_url,
            ASSISTANTD_API_KEYS=KEY,
            ASSISTANTD_SANDBOX_POOL_SIZE="0",
        )
        port = free_port()
        api = Process(
            ["serve", "--port", str(port), "--log-level", "warning"],
            dict(env, ASSISTANTD_WORKER_ENABLED="false"),
            port,
        )
        workers = [Process(["worker"], env)]
        try:
            api.wait_http()
            base = f"http://127.0.0.1:{port}/v1"
            with openai.OpenAI(base_url=base, api_key=KEY, max_retries=0) as client:
                a = client.beta.assistants.create(model="m")
                t = client.beta.threads.create(
                    messages=[{"role": "user", "content": "something long"}]
                )
            frames: list[tuple[str, Any, str | None]] = []
            with httpx.stream(
                "POST",
                f"{base}/threads/{t.id}/runs",
                timeout=60,
                headers={"Authorization": f"Bearer {KEY}"},
                json={"assistant_id": a.id, "stream": True},
            ) as r:
                for frame in frames_of(r):
                    frames.append(frame)
                    if names(frames).count("thread.message.delta") == 40 and len(workers) == 1:
                        workers[0].proc.send_signal(signal.SIGKILL)
                        workers[0].proc.wait(timeout=30)
                        workers.append(Process(["worker"], env))
            run_id = frames[0][1]["id"]
            with openai.OpenAI(base_url=base, api_key=KEY, max_retries=0) as client:
                msgs = client.beta.threads.messages.list(t.id, run_id=run_id, order="asc").data
        finally:
            for p in [api, *workers]:
                p.stop()
            drop()
    ids = [int(f[2]) for f in frames if f[2] is not None]
    assert ids == list(range(1, len(ids) + 1))  # Redis numbers every event once, in order
    got = [e for e in names(frames) if e != "thread.message.delta"]
    assert "thread.message.incomplete" in got and got[-4:] == [
        "thread.message.completed",
        "thread.run.step.completed",
        "thread.run.completed",
        "done",
    ], got
    failed = got.index("thread.run.step.failed")
    assert (
        got[failed - 1] == "thread.message.incomplete"
        and got[failed + 1] == "thread.run.in_progress"
    )
    first, second = msgs[0], msgs[-1]
    assert first.status == "incomplete" and second.status == "completed"
    streamed = "".join(
        c["text"]["value"]
        for e, d, _ in frames
        if e == "thread.message.delta" and d["id"] == first.id
        for c in d["delta"]["content"]
    )
    assert len(streamed.split()) >= 40 and first.content[0].text.value == streamed
    assert second.content[0].text.value == "word " * 300
