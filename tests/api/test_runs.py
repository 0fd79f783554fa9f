"""Runs over the official SDK with a scripted model: lifecycle, tools, locks, cancel, budgets."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import httpx
import openai
import pytest

from assistantd.llm.base import (
    ChatRequest,
    Finished,
    ModelError,
    ModelRateLimited,
    TextDelta,
    Usage,
)
from assistantd.testing.scripted import ScriptedBackend, text_turn, tool_call_turn
from assistantd.testing.server import Server, SwitchRouter, echo, make_settings, start_server

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
TIME = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
}


def setup(client: openai.OpenAI, **kw: Any) -> tuple[Any, Any]:
    a = client.beta.assistants.create(model="gpt-4o", instructions="You help.", **kw)
    t = client.beta.threads.create(messages=[{"role": "user", "content": "Hello"}])
    return a, t


def test_run_completes_with_every_field(
    client: openai.OpenAI, server: Server, models: SwitchRouter
) -> None:
    a, t = setup(client)
    created = client.beta.threads.runs.create(
        thread_id=t.id, assistant_id=a.id, metadata={"k": "v"}
    )
    assert created.status == "queued" and created.started_at is None
    assert created.expires_at == created.created_at + 600
    assert created.instructions == "You help." and created.model == "gpt-4o"
    assert created.truncation_strategy.type == "auto" and created.parallel_tool_calls is True
    run = client.beta.threads.runs.poll(created.id, thread_id=t.id)
    assert run.status == "completed"
    assert run.started_at is not None and run.completed_at is not None
    assert run.expires_at is None and run.failed_at is None and run.last_error is None
    assert run.usage.total_tokens == run.usage.prompt_tokens + run.usage.completion_tokens > 0
    assert run.metadata == {"k": "v"}
    msgs = client.beta.threads.messages.list(t.id, order="asc").data
    assert msgs[-1].role == "assistant" and msgs[-1].content[0].text.value == "You said: Hello"
    assert (
        msgs[-1].run_id == run.id
        and msgs[-1].assistant_id == a.id
        and msgs[-1].status == "completed"
    )
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=t.id).data
    assert [s.type for s in steps] == ["message_creation"]
    assert steps[0].step_details.message_creation.message_id == msgs[-1].id
    assert steps[0].status == "completed" and steps[0].usage is not None
    assert (
        client.beta.threads.runs.steps.retrieve(steps[0].id, thread_id=t.id, run_id=run.id)
        == steps[0]
    )
    raw = httpx.get(
        f"{server.base_url}/threads/{t.id}/runs/{run.id}",
        headers={"Authorization": f"Bearer {server.keys['alpha']}"},
    )
    assert raw.headers["openai-poll-after-ms"] == "25"
    assert {
        "id",
        "object",
        "created_at",
        "thread_id",
        "assistant_id",
        "status",
        "required_action",
        "last_error",
        "expires_at",
        "started_at",
        "cancelled_at",
        "failed_at",
        "completed_at",
        "model",
        "instructions",
        "tools",
        "metadata",
        "usage",
        "incomplete_details",
        "max_prompt_tokens",
        "max_completion_tokens",
        "truncation_strategy",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "temperature",
        "top_p",
    } <= set(raw.json())
    step_raw = httpx.get(
        f"{server.base_url}/threads/{t.id}/runs/{run.id}/steps",
        headers={"Authorization": f"Bearer {server.keys['alpha']}"},
    ).json()["data"][0]
    assert "expired_at" in step_raw and "expires_at" in step_raw


def test_create_and_poll_helpers_sync(client: openai.OpenAI, models: SwitchRouter) -> None:
    a, t = setup(client)
    run = client.beta.threads.runs.create_and_poll(thread_id=t.id, assistant_id=a.id)
    assert run.status == "completed"
    run2 = client.beta.threads.create_and_run_poll(
        assistant_id=a.id, thread={"messages": [{"role": "user", "content": "ping"}]}
    )
    assert run2.status == "completed" and run2.thread_id != t.id
    last = client.beta.threads.messages.list(run2.thread_id).data[0]
    assert last.content[0].text.value == "You said: ping"


async def test_helpers_async(server: Server, models: SwitchRouter) -> None:
    async with server.async_client() as client:
        a = await client.beta.assistants.create(model="m")
        t = await client.beta.threads.create(messages=[{"role": "user", "content": "async"}])
        run = await client.beta.threads.runs.create_and_poll(thread_id=t.id, assistant_id=a.id)
        assert run.status == "completed"
        models.use(
            ScriptedBackend([tool_call_turn("get_weather", {"city": "Oslo"}), text_turn("Cold.")])
        )
        t2 = await client.beta.threads.create(messages=[{"role": "user", "content": "weather?"}])
        run = await client.beta.threads.runs.create_and_poll(
            thread_id=t2.id, assistant_id=a.id, tools=[WEATHER]
        )
        assert run.status == "requires_action"
        call = run.required_action.submit_tool_outputs.tool_calls[0]
        run = await client.beta.threads.runs.submit_tool_outputs_and_poll(
            run_id=run.id,
            thread_id=t2.id,
            tool_outputs=[{"tool_call_id": call.id, "output": "-3C"}],
        )
        assert run.status == "completed"
        models.use(ScriptedBackend(echo))
        run = await client.beta.threads.create_and_run_poll(assistant_id=a.id)
        assert run.status == "completed"


def test_function_calling_round_trip(client: openai.OpenAI, models: SwitchRouter) -> None:
    backend = models.use(
        ScriptedBackend(
            [
                tool_call_turn("get_weather", {"city": "Paris"}, ("get_time", {})),
                tool_call_turn("get_weather", {"city": "Rome"}),
                text_turn("Paris is sunny, Rome is warm."),
            ]
        )
    )
    a, t = setup(client, tools=[WEATHER, TIME])
    run = client.beta.threads.runs.create_and_poll(thread_id=t.id, assistant_id=a.id)
    assert run.status == "requires_action"
    calls = run.required_action.submit_tool_outputs.tool_calls
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    assert json.loads(calls[0].function.arguments) == {"city": "Paris"}
    assert len({c.id for c in calls}) == 2 and all(c.id.startswith("call_") for c in calls)

    # Every pending call needs its output in one request.
    with pytest.raises(openai.BadRequestError) as e:
        client.beta.threads.runs.submit_tool_outputs(
            run_id=run.id,
            thread_id=t.id,
            tool_outputs=[{"tool_call_id": calls[0].id, "output": "x"}],
        )
    assert calls[1].id in e.value.body["message"]
    assert client.beta.threads.runs.retrieve(run.id, thread_id=t.id).status == "requires_action"

    run = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id,
        thread_id=t.id,
        tool_outputs=[
            {"tool_call_id": calls[0].id, "output": "sunny"},
            {"tool_call_id": calls[1].id, "output": "noon"},
        ],
    )
    assert run.status == "requires_action"  # a second round of tools
    call2 = run.required_action.submit_tool_outputs.tool_calls[0]
    run = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id, thread_id=t.id, tool_outputs=[{"tool_call_id": call2.id, "output": "warm"}]
    )
    assert run.status == "completed"

    steps = client.beta.threads.runs.steps.list(run.id, thread_id=t.id, order="asc").data
    assert [s.type for s in steps] == ["tool_calls", "tool_calls", "message_creation"]
    first = steps[0].step_details.tool_calls
    assert [c.function.output for c in first] == ["sunny", "noon"]
    assert all(s.status == "completed" for s in steps)
    # The model saw the outputs on the next call.
    third = backend.requests[2].messages
    tool_msgs = [m for m in third if m.role == "tool"]
    assert [m.content for m in tool_msgs] == ["sunny", "noon", "warm"]
    assert tool_msgs[0].tool_call_id == calls[0].id


def test_parallel_tool_calls_false_keeps_one(client: openai.OpenAI, models: SwitchRouter) -> None:
    backend = models.use(
        ScriptedBackend(
            [tool_call_turn("get_weather", {"city": "Paris"}, ("get_time", {})), text_turn("ok")]
        )
    )
    a, t = setup(client, tools=[WEATHER, TIME])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=t.id, assistant_id=a.id, parallel_tool_calls=False
    )
    assert len(run.required_action.submit_tool_outputs.tool_calls) == 1
    assert backend.requests[0].parallel_tool_calls is False


def test_submit_when_not_waiting_is_400(client: openai.OpenAI, models: SwitchRouter) -> None:
    a, t = setup(client)
    run = client.beta.threads.runs.create_and_poll(thread_id=t.id, assistant_id=a.id)
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.runs.submit_tool_outputs(
            run_id=run.id, thread_id=t.id, tool_outputs=[{"tool_call_id": "call_x", "output": "x"}]
        )


def test_thread_lock(client: openai.OpenAI, models: SwitchRouter) -> None:
    models.use(ScriptedBackend(lambda r: text_turn("slow " * 40), delay=0.02))
    a, t = setup(client)
    run = client.beta.threads.runs.create(thread_id=t.id, assistant_id=a.id)
    with pytest.raises(openai.BadRequestError) as e:
        client.beta.threads.messages.create(t.id, role="user", content="more")
    assert (
        e.value.body["message"] == f"Can't add messages to {t.id} while a run {run.id} is active."
    )
    with pytest.raises(openai.BadRequestError) as e:
        client.beta.threads.runs.create(thread_id=t.id, assistant_id=a.id)
    assert e.value.body["message"] == f"Thread {t.id} already has an active run {run.id}."
    assert client.beta.threads.runs.poll(run.id, thread_id=t.id).status == "completed"
    client.beta.threads.messages.create(t.id, role="user", content="now fine")


def test_concurrent_creates_exactly_one_wins(server: Server, models: SwitchRouter) -> None:
    models.use(ScriptedBackend(lambda r: text_turn("x " * 30), delay=0.02))
    h = {"Authorization": f"Bearer {server.keys['alpha']}"}
    a = httpx.post(f"{server.base_url}/assistants", json={"model": "m"}, headers=h).json()
    for _ in range(3):
        t = httpx.post(f"{server.base_url}/threads", headers=h).json()
        results: list[int] = []
        barrier = threading.Barrier(8)

        def go(
            tid: str = t["id"], barrier: threading.Barrier = barrier, results: list[int] = results
        ) -> None:
            barrier.wait()
            r = httpx.post(
                f"{server.base_url}/threads/{tid}/runs", json={"assistant_id": a["id"]}, headers=h
            )
            results.append(r.status_code)

        threads = [threading.Thread(target=go) for _ in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert sorted(results) == [200] + [400] * 7
        runs = httpx.get(f"{server.base_url}/threads/{t['id']}/runs", headers=h).json()["data"]
        assert len(runs) == 1


def wait_for_a_step(client: openai.OpenAI, run: Any) -> None:
    """Until the run has its first step (the model is being called), at most 5 s."""
    deadline = time.monotonic() + 5
    while not client.beta.threads.runs.steps.list(run.id, thread_id=run.thread_id).data:
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_cancel_mid_generation(client: openai.OpenAI, models: SwitchRouter) -> None:
    backend = models.use(ScriptedBackend(lambda r: text_turn("word " * 500), delay=0.01))
    a, t = setup(client)
    run = client.beta.threads.runs.create(thread_id=t.id, assistant_id=a.id)
    wait_for_a_step(client, run)
    cancelling = client.beta.threads.runs.cancel(run.id, thread_id=t.id)
    assert cancelling.status == "cancelling"
    final = client.beta.threads.runs.poll(run.id, thread_id=t.id)
    assert final.status == "cancelled" and final.cancelled_at is not None, final
    assert backend.interrupted == 1  # the model stream was closed, not drained
    msg = client.beta.threads.messages.list(t.id).data[0]
    assert msg.status == "incomplete" and msg.incomplete_details.reason == "run_cancelled"
    # Generation stopped where it was: far from the 500 words the model would have written.
    words = msg.content[0].text.value.split() if msg.content else []
    assert len(words) < 250
    step = client.beta.threads.runs.steps.list(run.id, thread_id=t.id).data[0]
    assert step.status == "cancelled" and step.cancelled_at is not None
    with pytest.raises(openai.BadRequestError) as e:
        client.beta.threads.runs.cancel(run.id, thread_id=t.id)
    assert "cancelled" in e.value.body["message"]
    client.beta.threads.messages.create(t.id, role="user", content="unlocked")


def test_cancel_while_waiting_for_outputs(client: openai.OpenAI, models: SwitchRouter) -> None:
    models.use(ScriptedBackend([tool_call_turn("get_weather", {"city": "X"})]))
    a, t = setup(client, tools=[WEATHER])
    run = client.beta.threads.runs.create_and_poll(thread_id=t.id, assistant_id=a.id)
    assert run.status == "requires_action"
    client.beta.threads.runs.cancel(run.id, thread_id=t.id)
    final = client.beta.threads.runs.poll(run.id, thread_id=t.id)
    assert final.status == "cancelled" and final.required_action is None
    step = client.beta.threads.runs.steps.list(run.id, thread_id=t.id).data[0]
    assert step.status == "cancelled"


def test_model_error_fails_run_and_unlocks(client: openai.OpenAI, models: SwitchRouter) -> None:
    models.use(
        ScriptedBackend(
            [
                ModelRateLimited("upstream said 429 three times"),
                ModelError("upstream returned 503: overloaded"),
            ]
        )
    )
    a, t = setup(client)
    run = client.beta.threads.runs.create_and_poll(thread_id=t.id, assistant_id=a.id)
    assert run.status == "failed" and run.failed_at is not None
    assert run.last_error.code == "rate_limit_exceeded" and "429" in run.last_error.message
    run = client.beta.threads.runs.create_and_poll(thread_id=t.id, assistant_id=a.id)
    assert run.last_error.code == "server_error" and "503" in run.last_error.message
    client.beta.threads.messages.create(t.id, role="user", content="usable again")


def test_unknown_tool_from_model_fails_clearly(client: openai.OpenAI, models: SwitchRouter) -> None:
    models.use(ScriptedBackend([tool_call_turn("rm_rf", {})]))
    a, t = setup(client, tools=[WEATHER])
    run = client.beta.threads.runs.create_and_poll(thread_id=t.id, assistant_id=a.id)
    assert run.status == "failed" and "rm_rf" in run.last_error.message


def test_max_steps_bounds_tool_loops(
    server: Server, client: openai.OpenAI, models: SwitchRouter
) -> None:
    models.use(ScriptedBackend(lambda r: tool_call_turn("get_time", {})))
    a, t = setup(client, tools=[TIME])
    run = client.beta.threads.runs.create_and_poll(thread_id=t.id, assistant_id=a.id)
    for _ in range(server.settings.run_max_steps + 1):
        if run.status != "requires_action":
            break
        calls = run.required_action.submit_tool_outputs.tool_calls
        run = client.beta.threads.runs.submit_tool_outputs_and_poll(
            run_id=run.id,
            thread_id=t.id,
            tool_outputs=[{"tool_call_id": c.id, "output": "t"} for c in calls],
        )
    assert run.status == "failed" and "ASSISTANTD_RUN_MAX_STEPS" in run.last_error.message


def test_completion_budget_makes_run_incomplete(
    client: openai.OpenAI, models: SwitchRouter
) -> None:
    def long(request: ChatRequest) -> Any:
        n = request.max_tokens or 10_000
        return [TextDelta("tok ") for _ in range(n)] + [Finished("length", Usage(10, n))]

    backend = models.use(ScriptedBackend(long))
    a, t = setup(client)
    run = client.beta.threads.runs.create_and_poll(
        thread_id=t.id, assistant_id=a.id, max_completion_tokens=256
    )
    assert run.status == "incomplete"
    assert run.incomplete_details.reason == "max_completion_tokens"
    assert backend.requests[0].max_tokens == 256
    msg = client.beta.threads.messages.list(t.id).data[0]
    assert msg.status == "incomplete" and msg.incomplete_details.reason == "max_tokens"


def test_completion_budget_spans_tool_rounds(client: openai.OpenAI, models: SwitchRouter) -> None:
    backend = models.use(
        ScriptedBackend(
            [
                [*tool_call_turn("get_time", {}), Finished("tool_calls", Usage(50, 200))],
                text_turn("done"),
            ]
        )
    )
    a, t = setup(client, tools=[TIME])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=t.id, assistant_id=a.id, max_completion_tokens=300
    )
    call = run.required_action.submit_tool_outputs.tool_calls[0]
    run = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id, thread_id=t.id, tool_outputs=[{"tool_call_id": call.id, "output": "noon"}]
    )
    assert backend.requests[1].max_tokens == 100
    assert run.status == "completed"
    assert run.usage.completion_tokens >= 200


def test_prompt_budget(client: openai.OpenAI, models: SwitchRouter) -> None:
    a = client.beta.assistants.create(model="m")
    t = client.beta.threads.create(messages=[{"role": "user", "content": "word " * 2000}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=t.id, assistant_id=a.id, max_prompt_tokens=256
    )
    assert run.status == "incomplete" and run.incomplete_details.reason == "max_prompt_tokens"


def test_context_options_reach_the_model(client: openai.OpenAI, models: SwitchRouter) -> None:
    backend = models.use(ScriptedBackend(lambda r: text_turn("ok")))
    a = client.beta.assistants.create(
        model="base-model", instructions="BASE", tools=[WEATHER, TIME], temperature=0.3
    )
    t = client.beta.threads.create(
        messages=[{"role": "user", "content": f"m{i}"} for i in range(6)]
    )
    run = client.beta.threads.runs.create_and_poll(
        thread_id=t.id,
        assistant_id=a.id,
        model="override-model",
        additional_instructions="EXTRA",
        additional_messages=[{"role": "user", "content": "added"}],
        tools=[TIME],
        tool_choice={"type": "function", "function": {"name": "get_time"}},
        top_p=0.5,
        response_format={"type": "json_object"},
        truncation_strategy={"type": "last_messages", "last_messages": 3},
    )
    assert run.model == "override-model" and run.instructions == "BASE\n\nEXTRA"
    assert [tool.function.name for tool in run.tools] == ["get_time"]
    req = backend.requests[0]
    assert models.requested[-1] == "override-model"
    assert req.messages[0].role == "system" and req.messages[0].content == "BASE\n\nEXTRA"
    assert [m.content for m in req.messages[1:]] == ["m4", "m5", "added"]
    assert [s.name for s in req.tools] == ["get_time"] and req.tool_choice == "get_time"
    assert (req.temperature, req.top_p) == (0.3, 0.5)
    assert req.response_format == {"type": "json_object"}

    run = client.beta.threads.runs.create_and_poll(
        thread_id=t.id, assistant_id=a.id, instructions="OVERRIDE", tool_choice="none"
    )
    req = backend.requests[1]
    assert req.messages[0].content == "OVERRIDE" and req.tool_choice == "none"
    assert run.tool_choice == "none"


def test_auto_truncation_drops_oldest_first(client: openai.OpenAI, models: SwitchRouter) -> None:
    backend = models.use(ScriptedBackend(lambda r: text_turn("ok"), context_window=1024 + 300))
    a = client.beta.assistants.create(model="m")
    t = client.beta.threads.create(
        messages=[{"role": "user", "content": f"old{i} " + "x" * 200} for i in range(20)]
        + [{"role": "user", "content": "newest"}]
    )
    client.beta.threads.runs.create_and_poll(thread_id=t.id, assistant_id=a.id)
    sent = [m.content for m in backend.requests[0].messages]
    assert sent[-1] == "newest" and len(sent) < 21
    assert sent[0].startswith("old") and int(sent[0][3:].split()[0]) > 0


def test_validation(client: openai.OpenAI, server: Server) -> None:
    a, t = setup(client)
    h = {"Authorization": f"Bearer {server.keys['alpha']}"}
    cases = [
        ({}, "assistant_id"),
        ({"assistant_id": "nope"}, "assistant_id"),
        ({"assistant_id": a.id, "temperature": 5}, "temperature"),
        ({"assistant_id": a.id, "max_prompt_tokens": 10}, "max_prompt_tokens"),
        (
            {
                "assistant_id": a.id,
                "truncation_strategy": {"type": "last_messages", "last_messages": 0},
            },
            "truncation_strategy.last_messages",
        ),
        ({"assistant_id": a.id, "tool_choice": "sometimes"}, "tool_choice"),
        (
            {
                "assistant_id": a.id,
                "tool_choice": {"type": "function", "function": {"name": "nope"}},
            },
            "tool_choice",
        ),
        (
            {
                "assistant_id": a.id,
                "tools": [{"type": "function", "function": {"name": f"f{i}"}} for i in range(21)],
            },
            "tools",
        ),
    ]
    for body, param in cases:
        r = httpx.post(f"{server.base_url}/threads/{t.id}/runs", json=body, headers=h)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["error"]["param"] is not None and r.json()["error"]["param"].startswith(
            param
        ), r.json()
    assert httpx.get(f"{server.base_url}/threads/{t.id}/runs", headers=h).json()["data"] == []
    r = httpx.post(
        f"{server.base_url}/threads/{t.id}/runs?include[]=bogus",
        json={"assistant_id": a.id},
        headers=h,
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "include"
    with pytest.raises(openai.NotFoundError) as e:
        client.beta.threads.runs.create(thread_id=t.id, assistant_id="asst_missing")
    assert e.value.body["message"] == "No assistant found with id 'asst_missing'."
    with pytest.raises(openai.NotFoundError) as e:
        client.beta.threads.runs.retrieve("run_missing", thread_id=t.id)
    assert e.value.body["message"] == "No run found with id 'run_missing'."


def test_runs_list_modify_and_isolation(
    client: openai.OpenAI, other_client: openai.OpenAI, models: SwitchRouter
) -> None:
    a, t = setup(client)
    ids = [
        client.beta.threads.runs.create_and_poll(thread_id=t.id, assistant_id=a.id).id
        for _ in range(3)
    ]
    listed = [r.id for r in client.beta.threads.runs.list(t.id, limit=2)]
    assert listed == ids[::-1]
    r = client.beta.threads.runs.update(ids[0], thread_id=t.id, metadata={"x": "y"})
    assert r.metadata == {"x": "y"}
    with pytest.raises(openai.NotFoundError):
        other_client.beta.threads.runs.retrieve(ids[0], thread_id=t.id)
    with pytest.raises(openai.NotFoundError):
        other_client.beta.threads.runs.create(thread_id=t.id, assistant_id=a.id)


def test_run_messages_filter(client: openai.OpenAI, models: SwitchRouter) -> None:
    a, t = setup(client)
    run = client.beta.threads.runs.create_and_poll(thread_id=t.id, assistant_id=a.id)
    by_run = client.beta.threads.messages.list(t.id, run_id=run.id).data
    assert len(by_run) == 1 and by_run[0].role == "assistant"


def test_expiry_of_unanswered_requires_action(tmp_path: Any) -> None:

    srv, stop = start_server(make_settings(tmp_path, run_expires_seconds=2))
    try:
        srv.models.use(ScriptedBackend([tool_call_turn("get_time", {})]))
        with srv.client() as client:
            a, t = setup(client, tools=[TIME])
            run = client.beta.threads.runs.create_and_poll(thread_id=t.id, assistant_id=a.id)
            assert run.status == "requires_action"
            deadline = time.monotonic() + 10
            while run.status == "requires_action":
                assert time.monotonic() < deadline
                time.sleep(0.2)
                run = client.beta.threads.runs.retrieve(run.id, thread_id=t.id)
            assert run.status == "expired"
            step = client.beta.threads.runs.steps.list(run.id, thread_id=t.id).data[0]
            assert step.status == "expired" and step.expired_at is not None
            with pytest.raises(openai.BadRequestError):
                client.beta.threads.runs.submit_tool_outputs(
                    run_id=run.id,
                    thread_id=t.id,
                    tool_outputs=[
                        {
                            "tool_call_id": run.required_action.submit_tool_outputs.tool_calls[0].id
                            if run.required_action
                            else "call_x",
                            "output": "late",
                        }
                    ],
                )
            client.beta.threads.messages.create(t.id, role="user", content="unlocked")
    finally:
        stop()


def test_overlong_run_expires(tmp_path: Any) -> None:

    srv, stop = start_server(make_settings(tmp_path, run_expires_seconds=2))
    try:
        srv.models.use(ScriptedBackend(lambda r: text_turn("slow " * 1000), delay=0.05))
        with srv.client() as client:
            a, t = setup(client)
            run = client.beta.threads.runs.create_and_poll(thread_id=t.id, assistant_id=a.id)
            assert run.status == "expired"
            msg = client.beta.threads.messages.list(t.id).data[0]
            assert msg.status == "incomplete" and msg.incomplete_details.reason == "run_expired"
    finally:
        stop()


def test_run_outlives_its_connection(server: Server, models: SwitchRouter) -> None:
    models.use(ScriptedBackend(lambda r: text_turn("x " * 20), delay=0.01))
    h = {"Authorization": f"Bearer {server.keys['alpha']}"}
    a = httpx.post(f"{server.base_url}/assistants", json={"model": "m"}, headers=h).json()
    t = httpx.post(
        f"{server.base_url}/threads",
        headers=h,
        json={"messages": [{"role": "user", "content": "hi"}]},
    ).json()
    with httpx.Client() as c:
        run = c.post(
            f"{server.base_url}/threads/{t['id']}/runs", json={"assistant_id": a["id"]}, headers=h
        ).json()
    deadline = time.monotonic() + 10
    while True:
        status = httpx.get(
            f"{server.base_url}/threads/{t['id']}/runs/{run['id']}", headers=h
        ).json()["status"]
        if status == "completed":
            break
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_async_concurrent_runs(server: Server, models: SwitchRouter) -> None:
    async def main() -> list[str]:
        async with server.async_client() as client:
            a = await client.beta.assistants.create(model="m")

            async def one(i: int) -> str:
                t = await client.beta.threads.create(
                    messages=[{"role": "user", "content": f"n{i}"}]
                )
                r = await client.beta.threads.runs.create_and_poll(
                    thread_id=t.id, assistant_id=a.id
                )
                return r.status

            return await asyncio.gather(*(one(i) for i in range(12)))

    assert asyncio.run(main()) == ["completed"] * 12


def test_empty_assistant_message_is_not_sent_to_the_model(
    client: openai.OpenAI, models: SwitchRouter
) -> None:
    """A run cancelled before its first token leaves an empty assistant message; later runs
    do not send it upstream as an empty assistant turn."""
    models.use(ScriptedBackend(lambda r: text_turn("too late"), delay=5.0))
    a, t = setup(client)
    run = client.beta.threads.runs.create(thread_id=t.id, assistant_id=a.id)
    wait_for_a_step(client, run)
    client.beta.threads.runs.cancel(run.id, thread_id=t.id)
    assert client.beta.threads.runs.poll(run.id, thread_id=t.id).status == "cancelled"
    empty = client.beta.threads.messages.list(t.id).data[0]
    assert empty.role == "assistant" and empty.content == []
    seen: list[list[tuple[str, Any]]] = []

    def record(request: Any) -> Any:
        seen.append([(m.role, m.content) for m in request.messages])
        return text_turn("ok")

    models.use(ScriptedBackend(record))
    client.beta.threads.messages.create(t.id, role="user", content="again")
    assert (
        client.beta.threads.runs.create_and_poll(thread_id=t.id, assistant_id=a.id).status
        == "completed"
    )
    roles = [role for role, _ in seen[0] if role != "system"]
    assert roles == ["user", "user"], seen[0]
