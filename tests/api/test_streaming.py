"""Streaming: the SSE wire order of CONTRACT.md §5 and the official SDK stream helpers."""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx
import openai
import pytest
from openai import AssistantEventHandler, AsyncAssistantEventHandler
from typing_extensions import override

from assistantd.llm.base import ModelError, TextDelta
from assistantd.testing.scripted import ScriptedBackend, text_turn, tool_call_turn
from assistantd.testing.server import Server, SwitchRouter, auth, make, make_settings, start_server
from assistantd.testing.sse import TEXT_RUN, names, read_sse

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


def test_text_run_wire_order(server: Server, models: SwitchRouter) -> None:
    models.use(ScriptedBackend([text_turn("Hello there today")]))
    a, t = make(server)
    with httpx.stream(
        "POST",
        f"{server.base_url}/threads/{t}/runs",
        headers=auth(server),
        json={"assistant_id": a, "stream": True},
    ) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        frames = read_sse(r)
    got = names(frames)
    assert got == TEXT_RUN + ["thread.message.delta"] * 3 + [
        "thread.message.completed",
        "thread.run.step.completed",
        "thread.run.completed",
        "done",
    ]
    assert frames[-1][1] == "[DONE]"
    ids = [int(f[2]) for f in frames if f[2] is not None]
    assert ids == list(range(1, len(ids) + 1))
    deltas = [f[1] for f in frames if f[0] == "thread.message.delta"]
    assert deltas[0]["delta"]["content"][0] == {
        "index": 0,
        "type": "text",
        "text": {"value": "Hello", "annotations": []},
    }
    assert "annotations" not in deltas[1]["delta"]["content"][0]["text"]  # scalars once
    assert "".join(d["delta"]["content"][0]["text"]["value"] for d in deltas) == "Hello there today"
    created = next(f[1] for f in frames if f[0] == "thread.message.created")
    assert created["content"] == [] and created["status"] == "in_progress"
    assert created["attachments"] == [] and created["metadata"] == {}
    completed = next(f[1] for f in frames if f[0] == "thread.message.completed")
    assert completed["content"][0]["text"]["value"] == "Hello there today"
    run_created = frames[0][1]
    assert (
        run_created["status"] == "queued"
        and run_created["expires_at"] == run_created["created_at"] + 600
    )
    final = next(f[1] for f in frames if f[0] == "thread.run.completed")
    assert final["usage"]["total_tokens"] > 0 and final["completed_at"] is not None


def test_create_thread_and_run_starts_with_thread_created(
    server: Server, models: SwitchRouter
) -> None:
    a, _ = make(server)
    with httpx.stream(
        "POST",
        f"{server.base_url}/threads/runs",
        headers=auth(server),
        json={
            "assistant_id": a,
            "stream": True,
            "thread": {"messages": [{"role": "user", "content": "x"}]},
        },
    ) as r:
        frames = read_sse(r)
    assert names(frames)[:2] == ["thread.created", "thread.run.created"]
    assert frames[0][1]["object"] == "thread"
    assert names(frames)[-2:] == ["thread.run.completed", "done"]


def test_function_calling_stream_and_continuation(server: Server, models: SwitchRouter) -> None:
    models.use(
        ScriptedBackend(
            [
                tool_call_turn("get_weather", {"city": "Paris"}, ("get_weather", {"city": "Rome"})),
                text_turn("Both sunny."),
            ]
        )
    )
    a, t = make(server, [WEATHER])
    with httpx.stream(
        "POST",
        f"{server.base_url}/threads/{t}/runs",
        headers=auth(server),
        json={"assistant_id": a, "stream": True},
    ) as r:
        frames = read_sse(r)
    got = names(frames)
    assert got[:5] == [
        "thread.run.created",
        "thread.run.queued",
        "thread.run.in_progress",
        "thread.run.step.created",
        "thread.run.step.in_progress",
    ]
    assert got[-2:] == ["thread.run.requires_action", "done"]
    assert "thread.run.step.completed" not in got
    step_created = frames[3][1]
    assert step_created["step_details"] == {"type": "tool_calls", "tool_calls": []}
    deltas = [
        f[1]["delta"]["step_details"]["tool_calls"][0]
        for f in frames
        if f[0] == "thread.run.step.delta"
    ]
    intro = [d for d in deltas if "id" in d]
    assert [d["index"] for d in intro] == [0, 1]
    assert intro[0]["function"] == {"name": "get_weather", "arguments": "", "output": None}
    for d in deltas:
        if "id" not in d:
            assert set(d["function"]) == {"arguments"}  # later deltas: fragments only
    args0 = "".join(d["function"]["arguments"] for d in deltas if d["index"] == 0)
    assert json.loads(args0) == {"city": "Paris"}
    run = frames[-2][1]
    calls = run["required_action"]["submit_tool_outputs"]["tool_calls"]

    with httpx.stream(
        "POST",
        f"{server.base_url}/threads/{t}/runs/{run['id']}/submit_tool_outputs",
        headers=auth(server),
        json={
            "stream": True,
            "tool_outputs": [{"tool_call_id": c["id"], "output": "sunny"} for c in calls],
        },
    ) as r:
        frames = read_sse(r)
    got = names(frames)
    assert got[:3] == ["thread.run.step.completed", "thread.run.queued", "thread.run.in_progress"]
    assert [c["function"]["output"] for c in frames[0][1]["step_details"]["tool_calls"]] == [
        "sunny",
        "sunny",
    ]
    assert got[-3:] == ["thread.run.step.completed", "thread.run.completed", "done"]
    assert "thread.message.created" in got


def test_python_sdk_event_handler(client: openai.OpenAI, models: SwitchRouter) -> None:
    models.use(
        ScriptedBackend(
            [tool_call_turn("get_weather", {"city": "Oslo"}), text_turn("It is cold in Oslo.")]
        )
    )
    a = client.beta.assistants.create(model="m", tools=[WEATHER])
    t = client.beta.threads.create(messages=[{"role": "user", "content": "weather?"}])
    seen: dict[str, Any] = {
        "text": "",
        "tool_created": [],
        "tool_args": "",
        "tool_done": [],
        "steps": [],
        "messages_done": [],
    }

    class Handler(AssistantEventHandler):
        @override
        def on_text_delta(self, delta: Any, snapshot: Any) -> None:
            seen["text"] += delta.value

        @override
        def on_tool_call_created(self, tool_call: Any) -> None:
            seen["tool_created"].append(tool_call.function.name)

        @override
        def on_tool_call_delta(self, delta: Any, snapshot: Any) -> None:
            if delta.function and delta.function.arguments:
                seen["tool_args"] += delta.function.arguments

        @override
        def on_tool_call_done(self, tool_call: Any) -> None:
            seen["tool_done"].append(tool_call.function.arguments)

        @override
        def on_run_step_done(self, run_step: Any) -> None:
            seen["steps"].append(run_step.type)

        @override
        def on_message_done(self, message: Any) -> None:
            seen["messages_done"].append(message.content[0].text.value)

    with client.beta.threads.runs.stream(
        thread_id=t.id, assistant_id=a.id, event_handler=Handler()
    ) as stream:
        stream.until_done()
        run = stream.get_final_run()
    assert run.status == "requires_action"
    assert seen["tool_created"] == ["get_weather"]
    assert json.loads(seen["tool_args"]) == {"city": "Oslo"}
    assert json.loads(seen["tool_done"][0]) == {"city": "Oslo"}
    call = run.required_action.submit_tool_outputs.tool_calls[0]

    with client.beta.threads.runs.submit_tool_outputs_stream(
        thread_id=run.thread_id,
        run_id=run.id,
        tool_outputs=[{"tool_call_id": call.id, "output": "-5C"}],
        event_handler=Handler(),
    ) as stream:
        stream.until_done()
        final = stream.get_final_run()
        messages = stream.get_final_messages()
    assert final.status == "completed"
    assert seen["text"] == "It is cold in Oslo."
    assert seen["messages_done"] == ["It is cold in Oslo."]
    assert messages[0].content[0].text.value == "It is cold in Oslo."
    assert seen["steps"] == ["tool_calls", "message_creation"]


def test_text_deltas_iterator_and_create_and_run_stream(
    client: openai.OpenAI, models: SwitchRouter
) -> None:
    models.use(ScriptedBackend([text_turn("one two three")]))
    a = client.beta.assistants.create(model="m")
    with client.beta.threads.create_and_run_stream(
        assistant_id=a.id, thread={"messages": [{"role": "user", "content": "count"}]}
    ) as stream:
        text = "".join(stream.text_deltas)
    assert text == "one two three"


async def test_async_event_handler(server: Server, models: SwitchRouter) -> None:
    models.use(ScriptedBackend([text_turn("async streaming works")]))
    parts: list[str] = []

    class Handler(AsyncAssistantEventHandler):
        @override
        async def on_text_delta(self, delta: Any, snapshot: Any) -> None:
            parts.append(delta.value)

    async with server.async_client() as client:
        a = await client.beta.assistants.create(model="m")
        t = await client.beta.threads.create(messages=[{"role": "user", "content": "go"}])
        async with client.beta.threads.runs.stream(
            thread_id=t.id, assistant_id=a.id, event_handler=Handler()
        ) as stream:
            await stream.until_done()
            run = await stream.get_final_run()
    assert run.status == "completed" and "".join(parts) == "async streaming works"


def test_errors_before_the_run_are_json(
    server: Server, client: openai.OpenAI, models: SwitchRouter
) -> None:
    models.use(ScriptedBackend(lambda r: text_turn("slow " * 50), delay=0.02))
    a, t = make(server)
    r = httpx.post(
        f"{server.base_url}/threads/{t}/runs",
        headers=auth(server),
        json={"assistant_id": "asst_missing", "stream": True},
    )
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/json")
    first = client.beta.threads.runs.create(thread_id=t, assistant_id=a)
    with pytest.raises(openai.BadRequestError):
        with client.beta.threads.runs.stream(thread_id=t, assistant_id=a) as s:
            s.until_done()
    client.beta.threads.runs.poll(first.id, thread_id=t)


def test_failure_during_run_ends_with_failed_then_done(
    server: Server, models: SwitchRouter
) -> None:
    models.use(ScriptedBackend([ModelError("upstream returned 500: boom")]))
    a, t = make(server)
    with httpx.stream(
        "POST",
        f"{server.base_url}/threads/{t}/runs",
        headers=auth(server),
        json={"assistant_id": a, "stream": True},
    ) as r:
        frames = read_sse(r)
    assert names(frames)[-2:] == ["thread.run.failed", "done"]
    assert frames[-2][1]["last_error"] == {
        "code": "server_error",
        "message": "upstream returned 500: boom",
    }
    assert "error" not in names(frames)


def test_cancel_during_stream(server: Server, client: openai.OpenAI, models: SwitchRouter) -> None:
    models.use(ScriptedBackend(lambda r: text_turn("word " * 300), delay=0.01))
    a, t = make(server)
    seen: list[str] = []
    with httpx.stream(
        "POST",
        f"{server.base_url}/threads/{t}/runs",
        headers=auth(server),
        json={"assistant_id": a, "stream": True},
    ) as r:
        event = None
        run_id = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
                seen.append(event)
            elif line.startswith("data: ") and event == "thread.run.created":
                run_id = json.loads(line[6:])["id"]
            if (
                event == "thread.message.delta"
                and seen.count("thread.message.delta") == 3
                and run_id
            ):
                client.beta.threads.runs.cancel(run_id, thread_id=t)
                event = "sent"
    tail = [e for e in seen if e != "thread.message.delta"][-5:]
    assert tail == [
        "thread.run.cancelling",
        "thread.message.incomplete",
        "thread.run.step.cancelled",
        "thread.run.cancelled",
        "done",
    ]


def test_disconnect_does_not_stop_the_run(
    server: Server, client: openai.OpenAI, models: SwitchRouter
) -> None:
    models.use(ScriptedBackend(lambda r: text_turn("part " * 60), delay=0.01))
    a, t = make(server)
    run_id = None
    with httpx.stream(
        "POST",
        f"{server.base_url}/threads/{t}/runs",
        headers=auth(server),
        json={"assistant_id": a, "stream": True},
    ) as r:
        for line in r.iter_lines():
            if line.startswith("data: {") and run_id is None:
                run_id = json.loads(line[6:])["id"]
            if "thread.message.delta" in line:
                break  # hang up mid-message
    assert run_id
    run = client.beta.threads.runs.poll(run_id, thread_id=t)
    assert run.status == "completed"
    assert client.beta.threads.messages.list(t).data[0].content[0].text.value == "part " * 60


def test_events_replay_with_last_event_id(server: Server, models: SwitchRouter) -> None:
    models.use(ScriptedBackend([text_turn("replay me please")]))
    a, t = make(server)
    with httpx.stream(
        "POST",
        f"{server.base_url}/threads/{t}/runs",
        headers=auth(server),
        json={"assistant_id": a, "stream": True},
    ) as r:
        original = read_sse(r)
    run_id = original[0][1]["id"]
    with httpx.stream(
        "GET", f"{server.base_url}/threads/{t}/runs/{run_id}/events", headers=auth(server)
    ) as r:
        again = read_sse(r)
    assert [(f[0], f[2]) for f in again] == [(f[0], f[2]) for f in original]
    with httpx.stream(
        "GET",
        f"{server.base_url}/threads/{t}/runs/{run_id}/events",
        headers=dict(auth(server), **{"Last-Event-ID": "8"}),
    ) as r:
        rest = read_sse(r)
    assert rest[0][2] == "9" and names(rest) == names(original)[8:]


def test_events_resume_bounds(server: Server, models: SwitchRouter) -> None:
    """A resume past the end of a finished run ends at once; ids out of range are a 400."""
    models.use(ScriptedBackend([text_turn("all of it")]))
    a, t = make(server)
    with httpx.stream(
        "POST",
        f"{server.base_url}/threads/{t}/runs",
        headers=auth(server),
        json={"assistant_id": a, "stream": True},
    ) as r:
        original = read_sse(r)
    run_id, last = original[0][1]["id"], original[-1][2]
    url = f"{server.base_url}/threads/{t}/runs/{run_id}/events"
    for after in (last, "99999999"):
        with httpx.stream(
            "GET", url, headers=dict(auth(server), **{"Last-Event-ID": after}), timeout=5
        ) as r:
            assert r.status_code == 200 and read_sse(r) == []
    for bad in ("-5", "x", str(2**64)):
        r = httpx.get(url, headers=dict(auth(server), **{"Last-Event-ID": bad}), timeout=5)
        assert r.status_code == 400 and r.json()["error"]["param"] == "Last-Event-ID", r.text
    r = httpx.get(url, params={"after": str(10**23)}, headers=auth(server), timeout=5)
    assert r.status_code == 400 and r.json()["error"]["param"] == "after", r.text


def test_events_replay_follows_a_live_run(server: Server, models: SwitchRouter) -> None:
    models.use(ScriptedBackend(lambda r: text_turn("live " * 30), delay=0.01))
    a, t = make(server)
    run = httpx.post(
        f"{server.base_url}/threads/{t}/runs", headers=auth(server), json={"assistant_id": a}
    ).json()
    with httpx.stream(
        "GET", f"{server.base_url}/threads/{t}/runs/{run['id']}/events", headers=auth(server)
    ) as r:
        frames = read_sse(r)
    assert names(frames)[0] == "thread.run.created" and names(frames)[-2:] == [
        "thread.run.completed",
        "done",
    ]
    assert names(frames).count("thread.message.delta") == len(text_turn("live " * 30))


def test_keepalive_pings_while_model_is_silent(tmp_path: Any) -> None:
    srv, stop = start_server(make_settings(tmp_path, stream_keepalive_seconds=0.1))
    try:

        class Slow(ScriptedBackend):
            async def stream(self, request: Any) -> Any:  # type: ignore[override]
                import asyncio

                await asyncio.sleep(0.5)
                async for e in super().stream(request):
                    yield e

        srv.models.use(Slow([text_turn("finally")]))
        a, t = make(srv)
        with httpx.stream(
            "POST",
            f"{srv.base_url}/threads/{t}/runs",
            headers=auth(srv),
            json={"assistant_id": a, "stream": True},
        ) as r:
            frames = read_sse(r)
        assert any(f[0] == ":" for f in frames)
        assert names(frames)[-1] == "done"
    finally:
        stop()


def test_token_forwarded_as_produced(server: Server, models: SwitchRouter) -> None:
    """Each fragment reaches the client before the model produces the next one (no batching).

    The backend emits a token only when the test allows it, and the test allows the next one
    only after it has read the previous delta off the wire: any buffering deadlocks, and the
    read timeout turns that into a failure.
    """
    import asyncio

    allow = threading.Semaphore(0)

    class Gated(ScriptedBackend):
        async def stream(self, request: Any) -> Any:  # type: ignore[override]
            async for event in super().stream(request):
                if isinstance(event, TextDelta):
                    await asyncio.to_thread(allow.acquire, True, 10)
                yield event

    models.use(Gated([text_turn("a b c d e f")]))
    a, t = make(server)
    seen = 0
    with httpx.stream(
        "POST",
        f"{server.base_url}/threads/{t}/runs",
        headers=auth(server),
        json={"assistant_id": a, "stream": True},
        timeout=httpx.Timeout(5.0),
    ) as r:
        allow.release()
        for line in r.iter_lines():
            if line == "event: thread.message.delta":
                seen += 1
                allow.release()
    assert seen == 6
