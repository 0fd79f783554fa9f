"""How a model's answer ends up in the run: refusals, content filters, failures mid-stream.

Real parts: the in-process server, the `OpenAICompatBackend`, and `FakeUpstream` (a real
HTTP server streaming chat-completion chunks).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import openai
import orjson
import pytest

from assistantd.events.bus import RunEvent
from assistantd.llm.base import (
    ChatRequest,
    ModelBackend,
    ModelEvent,
    ModelInvalidPrompt,
    TextDelta,
    ToolCallArgumentsDelta,
    ToolCallStarted,
)
from assistantd.testing.fake_upstream import (
    FakeError,
    FakeReply,
    FakeUpstream,
    LoopTrackingBackend,
    Reply,
)
from assistantd.testing.server import Server, SwitchRouter, auth, make
from assistantd.testing.sse import TEXT_RUN, names, read_sse
from assistantd.worker.engine import streamed_content

REFUSAL = "I'm sorry, I can't help with that request."


Backend = LoopTrackingBackend


@pytest.fixture
def upstream_of(
    models: SwitchRouter,
) -> Iterator[Callable[[Callable[[dict[str, Any]], Reply]], FakeUpstream]]:
    """Start a FakeUpstream answering with `script` and route every model to it."""
    ups: list[FakeUpstream] = []
    backends: list[Backend] = []

    def start(script: Callable[[dict[str, Any]], Reply], **kw: Any) -> FakeUpstream:
        up = FakeUpstream(script).start()
        ups.append(up)
        backends.append(Backend(up.base_url, **{"max_retries": 0, **kw}))
        models.use(backends[-1])
        return up

    yield start
    for b in backends:
        if b.loop is not None:
            asyncio.run_coroutine_threadsafe(b.aclose(), b.loop).result(10)
    for up in ups:
        up.stop()


def stream_run(
    server: Server, assistant_id: str, thread_id: str
) -> list[tuple[str, Any, str | None]]:
    with httpx.stream(
        "POST",
        f"{server.base_url}/threads/{thread_id}/runs",
        headers=auth(server),
        json={"assistant_id": assistant_id, "stream": True},
    ) as r:
        assert r.status_code == 200
        return read_sse(r)


def test_refusal_streams_as_a_refusal_part(server: Server, upstream_of: Any) -> None:
    upstream_of(lambda body: FakeReply(refusal=REFUSAL))
    a, t = make(server)
    frames = stream_run(server, a, t)
    deltas = [f[1]["delta"]["content"] for f in frames if f[0] == "thread.message.delta"]
    assert names(frames) == TEXT_RUN + ["thread.message.delta"] * len(deltas) + [
        "thread.message.completed",
        "thread.run.step.completed",
        "thread.run.completed",
        "done",
    ]
    assert len(deltas) > 1
    for content in deltas:
        assert len(content) == 1 and content[0]["index"] == 0 and content[0]["type"] == "refusal"
        assert set(content[0]) == {"index", "type", "refusal"}
    assert "".join(c[0]["refusal"] for c in deltas) == REFUSAL
    completed = next(f[1] for f in frames if f[0] == "thread.message.completed")
    assert completed["content"] == [{"type": "refusal", "refusal": REFUSAL}]
    assert completed["status"] == "completed"
    stored = httpx.get(
        f"{server.base_url}/threads/{t}/messages/{completed['id']}", headers=auth(server)
    ).json()
    assert stored["content"] == [{"type": "refusal", "refusal": REFUSAL}]


def test_refusal_after_text_is_its_own_part(server: Server, upstream_of: Any) -> None:
    upstream_of(lambda body: FakeReply(text="Let me see.", refusal=REFUSAL))
    a, t = make(server)
    frames = stream_run(server, a, t)
    parts = [
        (c["index"], c["type"])
        for f in frames
        if f[0] == "thread.message.delta"
        for c in f[1]["delta"]["content"]
    ]
    assert sorted(set(parts)) == [(0, "text"), (1, "refusal")]
    assert parts.index((1, "refusal")) > max(i for i, p in enumerate(parts) if p == (0, "text"))
    completed = next(f[1] for f in frames if f[0] == "thread.message.completed")
    assert completed["content"] == [
        {"type": "text", "text": {"value": "Let me see.", "annotations": []}},
        {"type": "refusal", "refusal": REFUSAL},
    ]


def test_sdk_stream_helpers_accumulate_the_refusal(client: openai.OpenAI, upstream_of: Any) -> None:
    up = upstream_of(
        lambda body: FakeReply(refusal=REFUSAL) if len(body["messages"]) < 3 else "Fine."
    )
    a = client.beta.assistants.create(model="gpt-4o")
    t = client.beta.threads.create(messages=[{"role": "user", "content": "do something bad"}])
    with client.beta.threads.runs.stream(thread_id=t.id, assistant_id=a.id) as stream:
        stream.until_done()
        run = stream.get_final_run()
        messages = stream.get_final_messages()
    assert run.status == "completed"
    assert len(messages) == 1 and messages[0].content[0].type == "refusal"
    assert messages[0].content[0].refusal == REFUSAL  # type: ignore[union-attr]

    # A later run's prompt shows the refusal as what the assistant said.
    client.beta.threads.messages.create(thread_id=t.id, role="user", content="then something else")
    again = client.beta.threads.runs.create_and_poll(thread_id=t.id, assistant_id=a.id)
    assert again.status == "completed"
    assert [(m["role"], m["content"]) for m in up.requests[-1]["messages"]] == [
        ("user", "do something bad"),
        ("assistant", REFUSAL),
        ("user", "then something else"),
    ]


def test_an_interrupted_refusal_is_rebuilt_from_its_deltas() -> None:
    def delta(entry: dict[str, Any]) -> RunEvent:
        return RunEvent(
            0,
            "thread.message.delta",
            orjson.dumps(
                {"id": "msg_a", "object": "thread.message.delta", "delta": {"content": [entry]}}
            ),
        )

    events = [
        delta({"index": 0, "type": "text", "text": {"value": "Hm.", "annotations": []}}),
        delta({"index": 1, "type": "refusal", "refusal": "I can't"}),
        delta({"index": 1, "type": "refusal", "refusal": " do that."}),
    ]
    assert streamed_content(events, {"msg_a"}) == {
        "msg_a": [
            {"type": "text", "text": {"value": "Hm.", "annotations": []}},
            {"type": "refusal", "refusal": "I can't do that."},
        ]
    }


def test_content_filter_ends_the_message_incomplete_and_the_run_completed(
    server: Server, upstream_of: Any
) -> None:
    upstream_of(
        lambda body: (
            FakeReply(text="Here is how", finish_reason="content_filter")
            if len(body["messages"]) < 3
            else "Something else."
        )
    )
    a, t = make(server)
    frames = stream_run(server, a, t)
    assert names(frames)[-4:] == [
        "thread.message.incomplete",
        "thread.run.step.completed",
        "thread.run.completed",
        "done",
    ]
    message = next(f[1] for f in frames if f[0] == "thread.message.incomplete")
    assert message["status"] == "incomplete" and message["incomplete_details"] == {
        "reason": "content_filter"
    }
    assert message["incomplete_at"] is not None and message["completed_at"] is None
    assert message["content"] == [
        {"type": "text", "text": {"value": "Here is how", "annotations": []}}
    ]
    run = next(f[1] for f in frames if f[0] == "thread.run.completed")
    assert (
        run["status"] == "completed"
        and run["incomplete_details"] is None
        and run["last_error"] is None
    )
    h = auth(server)
    stored = httpx.get(f"{server.base_url}/threads/{t}/messages/{message['id']}", headers=h).json()
    assert stored["status"] == "incomplete" and stored["incomplete_details"] == {
        "reason": "content_filter"
    }
    steps = httpx.get(f"{server.base_url}/threads/{t}/runs/{run['id']}/steps", headers=h).json()[
        "data"
    ]
    assert [s["status"] for s in steps] == ["completed"]
    # The thread goes on.
    httpx.post(
        f"{server.base_url}/threads/{t}/messages", headers=h, json={"role": "user", "content": "ok"}
    )
    assert names(stream_run(server, a, t))[-2:] == ["thread.run.completed", "done"]


class FailsMidStream(ModelBackend):
    """Streams `events`, then fails the call with `invalid_prompt`."""

    def __init__(self, events: list[ModelEvent]) -> None:
        self.events = events

    async def stream(self, request: ChatRequest) -> AsyncIterator[ModelEvent]:
        for event in self.events:
            yield event
        raise ModelInvalidPrompt("the prompt was rejected mid-answer")


WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object"}},
}


@pytest.mark.parametrize("open_step", ["message_creation", "tool_calls"])
def test_a_step_open_when_the_run_fails_gets_a_step_error_code(
    server: Server, models: SwitchRouter, open_step: str
) -> None:
    events: list[ModelEvent] = (
        [TextDelta("Let me")]
        if open_step == "message_creation"
        else [ToolCallStarted(0, "call_abc", "get_weather"), ToolCallArgumentsDelta(0, '{"ci')]
    )
    models.use(FailsMidStream(events))
    a, t = make(server, tools=[WEATHER] if open_step == "tool_calls" else None)
    frames = stream_run(server, a, t)
    assert names(frames)[-3:] == ["thread.run.step.failed", "thread.run.failed", "done"]
    run = next(f[1] for f in frames if f[0] == "thread.run.failed")
    assert run["last_error"] == {
        "code": "invalid_prompt",
        "message": "the prompt was rejected mid-answer",
    }
    streamed = next(f[1] for f in frames if f[0] == "thread.run.step.failed")
    steps = httpx.get(
        f"{server.base_url}/threads/{t}/runs/{run['id']}/steps", headers=auth(server)
    ).json()["data"]
    assert [s["type"] for s in steps] == [open_step]
    for step in (streamed, steps[0]):
        assert step["status"] == "failed" and step["failed_at"] is not None
        assert step["last_error"] == {
            "code": "server_error",
            "message": "the prompt was rejected mid-answer",
        }


def test_a_failed_run_does_not_show_the_upstream_url(
    client: openai.OpenAI, upstream_of: Any, caplog: pytest.LogCaptureFixture
) -> None:
    up = upstream_of(
        lambda body: FakeError(500, "upstream boom"), max_retries=3, initial_backoff=0.01
    )
    a = client.beta.assistants.create(model="gpt-4o")
    t = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    with caplog.at_level(logging.WARNING, logger="assistantd.engine"):
        run = client.beta.threads.runs.create_and_poll(thread_id=t.id, assistant_id=a.id)
    assert run.status == "failed" and run.last_error is not None
    assert run.last_error.code == "server_error"
    assert (
        run.last_error.message == "The model backend answered 500 after 4 attempts: upstream boom"
    )
    steps = client.beta.threads.runs.steps.list(thread_id=t.id, run_id=run.id).data
    assert all(up.host not in (s.last_error.message if s.last_error else "") for s in steps)
    # The server's log keeps the detail.
    assert (
        f"upstream {up.base_url}/chat/completions answered 500 after 4 attempts: upstream boom"
        in caplog.text
    )
