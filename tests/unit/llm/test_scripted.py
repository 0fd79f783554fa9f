"""The scripted backend: deterministic, and a real backend in how it streams and stops."""

from __future__ import annotations

import asyncio
import json

import pytest

from assistantd.llm.base import (
    ChatMessage,
    ChatRequest,
    Finished,
    ModelError,
    ModelEvent,
    ModelRateLimited,
    TextDelta,
    ToolCallArgumentsDelta,
    ToolCallStarted,
    Usage,
)
from assistantd.testing.scripted import ScriptedBackend, text_turn, tool_call_turn


def ask(text: str) -> ChatRequest:
    return ChatRequest(model="scripted", messages=[ChatMessage("user", text)])


async def collect(backend: ScriptedBackend, request: ChatRequest) -> list[ModelEvent]:
    return [event async for event in backend.stream(request)]


async def test_turns_are_consumed_in_order_and_requests_recorded() -> None:
    backend = ScriptedBackend(
        [
            tool_call_turn("get_weather", {"city": "Paris"}),
            text_turn("It is sunny."),
        ]
    )
    first = await collect(backend, ask("weather?"))
    second = await collect(backend, ask("thanks"))

    started = [e for e in first if isinstance(e, ToolCallStarted)]
    assert [s.name for s in started] == ["get_weather"]
    assert started[0].id.startswith("call_") and len(started[0].id) == 29
    arguments = "".join(e.arguments for e in first if isinstance(e, ToolCallArgumentsDelta))
    assert json.loads(arguments) == {"city": "Paris"}
    assert isinstance(first[-1], Finished) and first[-1].reason == "tool_calls"

    assert "".join(e.text for e in second if isinstance(e, TextDelta)) == "It is sunny."
    assert isinstance(second[-1], Finished) and second[-1].reason == "stop"
    assert second[-1].usage.prompt_tokens > 0
    assert [r.messages[0].content for r in backend.requests] == ["weather?", "thanks"]


async def test_running_out_of_turns_is_a_model_error() -> None:
    backend = ScriptedBackend([text_turn("only one")])
    await collect(backend, ask("1"))
    with pytest.raises(ModelError, match="no turn left"):
        await collect(backend, ask("2"))


async def test_exception_turn_is_raised() -> None:
    backend = ScriptedBackend([ModelRateLimited("slow down")])
    with pytest.raises(ModelRateLimited, match="slow down"):
        await collect(backend, ask("hi"))
    assert len(backend.requests) == 1


async def test_callable_script_and_explicit_finished() -> None:
    def script(request: ChatRequest) -> list[ModelEvent]:
        said = request.messages[-1].content or ""
        return [TextDelta(said.upper()), Finished("length", Usage(3, 1))]

    backend = ScriptedBackend(script)
    events = await collect(backend, ask("shout"))
    assert events == [TextDelta("SHOUT"), Finished("length", Usage(3, 1))]


async def test_finished_in_the_middle_is_rejected() -> None:
    backend = ScriptedBackend([[Finished("stop", Usage()), TextDelta("late")]])
    with pytest.raises(ValueError, match="only at its end"):
        await collect(backend, ask("hi"))


async def test_cancelling_mid_generation_stops_it() -> None:
    backend = ScriptedBackend([text_turn("one two three four five six seven eight")], delay=0.05)
    received: list[ModelEvent] = []

    async def consume() -> None:
        async for event in backend.stream(ask("count")):
            received.append(event)

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.12)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert 1 <= len(received) < 4
    assert not any(isinstance(e, Finished) for e in received)
    assert backend.interrupted == 1


async def test_early_close_is_recorded() -> None:
    backend = ScriptedBackend([text_turn("a b c d")])
    stream = backend.stream(ask("hi"))
    assert isinstance(await anext(stream), TextDelta)  # type: ignore[arg-type]
    await stream.aclose()  # type: ignore[attr-defined]
    assert backend.interrupted == 1
