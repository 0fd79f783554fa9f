"""The product as users run it: `assistantd serve` in its own process, pointed at an
OpenAI-compatible upstream (a real HTTP server with a scripted model), driven by the SDK.
Includes the crash test: kill -9 mid-run, restart, and the run still ends."""

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

from assistantd.testing.fake_upstream import FakeError, FakeReply, FakeToolCall, FakeUpstream
from assistantd.testing.server import free_port, wait_http
from assistantd.testing.sse import frames_of

KEY = "sk-e2e-static-key"


class Proc:
    def __init__(self, data_dir: Path, upstream: str, **env: str) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.env = dict(
            os.environ,
            ASSISTANTD_DATA_DIR=str(data_dir),
            ASSISTANTD_LLM_BASE_URL=upstream,
            ASSISTANTD_API_KEYS=KEY,
            **env,
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "assistantd",
                "serve",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
            ],
            env=self.env,
        )
        wait_http(f"http://127.0.0.1:{self.port}/health", self.proc)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def script(body: dict[str, Any]) -> Any:
    last = body["messages"][-1]
    if last["role"] == "tool":
        return f"The weather tool said {last['content']}."
    text = str(last.get("content") or "")
    if "weather" in text and body.get("tools"):
        return [
            FakeToolCall("get_weather", {"city": "Paris"}),
            FakeToolCall("get_weather", {"city": "Rome"}),
        ]
    if "fail" in text:
        return FakeError(400, "This model's maximum context length is 10 tokens")
    if "long" in text:
        return FakeReply("word " * 400)
    return f"echo: {text}"


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream(script) as up:
        yield up


@pytest.fixture
def served(tmp_path: Path, upstream: FakeUpstream) -> Iterator[Proc]:
    proc = Proc(tmp_path, upstream.base_url)
    proc.start()
    yield proc
    proc.stop()


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def test_full_conversation_through_upstream(served: Proc, upstream: FakeUpstream) -> None:
    with openai.OpenAI(base_url=served.base_url, api_key=KEY, max_retries=0) as client:
        a = client.beta.assistants.create(
            model="my-model", instructions="Be brief.", tools=[WEATHER]
        )
        t = client.beta.threads.create(messages=[{"role": "user", "content": "hello"}])
        run = client.beta.threads.runs.create_and_poll(thread_id=t.id, assistant_id=a.id)
        assert run.status == "completed" and run.model == "my-model"
        assert (
            client.beta.threads.messages.list(t.id).data[0].content[0].text.value == "echo: hello"
        )
        sent = upstream.requests[-1]
        assert sent["model"] == "my-model" and sent["messages"][0] == {
            "role": "system",
            "content": "Be brief.",
        }
        assert sent["stream"] is True and sent["tools"][0]["function"]["name"] == "get_weather"

        client.beta.threads.messages.create(t.id, role="user", content="weather please")
        with client.beta.threads.runs.stream(thread_id=t.id, assistant_id=a.id) as stream:
            stream.until_done()
            run = stream.get_final_run()
        assert run.status == "requires_action"
        calls = run.required_action.submit_tool_outputs.tool_calls
        assert [json.loads(c.function.arguments)["city"] for c in calls] == ["Paris", "Rome"]
        with client.beta.threads.runs.submit_tool_outputs_stream(
            thread_id=t.id,
            run_id=run.id,
            tool_outputs=[{"tool_call_id": c.id, "output": "sunny"} for c in calls],
        ) as stream:
            text = "".join(stream.text_deltas)
        assert text == "The weather tool said sunny."
        tool_msgs = [m for m in upstream.requests[-1]["messages"] if m["role"] == "tool"]
        assert [m["tool_call_id"] for m in tool_msgs] == [c.id for c in calls]

        client.beta.threads.messages.create(t.id, role="user", content="please fail")
        run = client.beta.threads.runs.create_and_poll(thread_id=t.id, assistant_id=a.id)
        assert run.status == "failed" and run.last_error.code == "invalid_prompt"
        assert "maximum context length" in run.last_error.message


def test_crash_mid_run_is_recovered(tmp_path: Path) -> None:
    with FakeUpstream(script, token_delay=0.02) as up:
        proc = Proc(tmp_path, up.base_url)
        proc.start()
        try:
            with openai.OpenAI(base_url=proc.base_url, api_key=KEY, max_retries=0) as client:
                a = client.beta.assistants.create(model="m")
                t = client.beta.threads.create(
                    messages=[{"role": "user", "content": "something long"}]
                )
                run = client.beta.threads.runs.create(thread_id=t.id, assistant_id=a.id)
                deadline = time.monotonic() + 20
                while (
                    client.beta.threads.runs.retrieve(run.id, thread_id=t.id).status
                    != "in_progress"
                ):
                    assert time.monotonic() < deadline
                    time.sleep(0.05)
                time.sleep(0.5)  # mid-generation
                proc.kill()
                proc.start()
                run = client.beta.threads.runs.poll(run.id, thread_id=t.id)
                assert run.status == "completed", run.last_error
                steps = client.beta.threads.runs.steps.list(
                    run.id, thread_id=t.id, order="asc"
                ).data
                assert steps[0].status == "failed" and "restarted" in steps[0].last_error.message
                assert steps[-1].status == "completed"
                msgs = client.beta.threads.messages.list(t.id, run_id=run.id, order="asc").data
                assert msgs[0].status == "incomplete" and msgs[-1].status == "completed"
                assert msgs[-1].content[0].text.value == "word " * 400
                client.beta.threads.messages.create(t.id, role="user", content="still usable")
        finally:
            proc.stop()


def delta_text(frames: list[tuple[str, Any, str | None]], message_id: str) -> str:
    return "".join(
        c["text"]["value"]
        for e, d, _ in frames
        if e == "thread.message.delta" and d["id"] == message_id
        for c in d["delta"]["content"]
        if c["type"] == "text"
    )


def test_resume_after_a_crash_misses_no_event_and_keeps_the_streamed_text(tmp_path: Path) -> None:
    with FakeUpstream(script, token_delay=0.02) as up:
        proc = Proc(tmp_path, up.base_url, ASSISTANTD_EVENT_FLUSH_SECONDS="0.2")
        proc.start()
        try:
            h = {"Authorization": f"Bearer {KEY}"}
            with openai.OpenAI(base_url=proc.base_url, api_key=KEY, max_retries=0) as client:
                a = client.beta.assistants.create(model="m")
                t = client.beta.threads.create(
                    messages=[{"role": "user", "content": "something long"}]
                )
            seen: list[tuple[str, Any, str | None]] = []
            with httpx.stream(
                "POST",
                f"{proc.base_url}/threads/{t.id}/runs",
                headers=h,
                timeout=60,
                json={"assistant_id": a.id, "stream": True},
            ) as r:
                for frame in frames_of(r):
                    seen.append(frame)
                    if [f[0] for f in seen].count("thread.message.delta") == 60:
                        break  # the client's connection drops here
            run_id = seen[0][1]["id"]
            first = next(d for e, d, _ in seen if e == "thread.message.created")["id"]
            time.sleep(0.6)  # the run goes on without the client, then the server dies
            proc.kill()
            proc.start()
            last = seen[-1][2]
            assert last is not None
            with httpx.stream(
                "GET",
                f"{proc.base_url}/threads/{t.id}/runs/{run_id}/events",
                timeout=60,
                headers=dict(h, **{"Last-Event-ID": last}),
            ) as r:
                rest = list(frames_of(r))
            with openai.OpenAI(base_url=proc.base_url, api_key=KEY, max_retries=0) as client:
                msgs = client.beta.threads.messages.list(t.id, run_id=run_id, order="asc").data
                run = client.beta.threads.runs.retrieve(run_id, thread_id=t.id)
        finally:
            proc.stop()
    ids = [int(f[2]) for f in rest if f[2] is not None]
    assert ids and ids[0] > int(last) and ids == sorted(set(ids)), ids[:5]
    got = [f[0] for f in rest if f[0] != "thread.message.delta"]
    # Everything after what the client saw: the end of the first message as far as it was
    # written, its closing, then the resumed run from its first event.
    assert got[:7] == [
        "thread.message.incomplete",
        "thread.run.step.failed",
        "thread.run.in_progress",
        "thread.run.step.created",
        "thread.run.step.in_progress",
        "thread.message.created",
        "thread.message.in_progress",
    ], got
    assert got[-4:] == [
        "thread.message.completed",
        "thread.run.step.completed",
        "thread.run.completed",
        "done",
    ], got
    announced = {d["id"] for e, d, _ in seen + rest if e == "thread.message.created"}
    assert {d["id"] for e, d, _ in rest if e == "thread.message.delta"} <= announced
    # The interrupted message keeps what was streamed: what the client saw, then what it
    # gets on resuming, up to the crash.
    assert run.status == "completed"
    assert msgs[0].id == first and msgs[0].status == "incomplete"
    kept = msgs[0].content[0].text.value
    assert kept == delta_text(seen, first) + delta_text(rest, first)
    assert len(kept.split()) > 60 and ("word " * 400).startswith(kept)
    second = next(d for e, d, _ in rest if e == "thread.message.created")["id"]
    assert msgs[-1].id == second and msgs[-1].content[0].text.value == "word " * 400 == delta_text(
        rest, second
    )
