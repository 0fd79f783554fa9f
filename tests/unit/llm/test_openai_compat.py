"""The OpenAI-compatible backend against a real HTTP server (the fake upstream)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from assistantd.llm.base import (
    ChatMessage,
    ChatRequest,
    Finished,
    ModelError,
    ModelEvent,
    ModelInvalidPrompt,
    ModelRateLimited,
    TextDelta,
    ToolCall,
    ToolCallArgumentsDelta,
    ToolCallStarted,
    ToolSpec,
)
from assistantd.llm.openai_compat import OpenAICompatBackend
from assistantd.testing.fake_upstream import (
    FakeError,
    FakeReply,
    FakeToolCall,
    FakeUpstream,
    Reply,
    sequence,
)

WEATHER = ToolSpec(
    name="get_weather",
    description="Weather in a city",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


def ask(text: str, **kwargs: Any) -> ChatRequest:
    return ChatRequest(model="gpt-test", messages=[ChatMessage("user", text)], **kwargs)


async def collect(backend: OpenAICompatBackend, request: ChatRequest) -> list[ModelEvent]:
    return [event async for event in backend.stream(request)]


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as up:
        yield up


async def test_streams_text_in_fragments_and_reports_usage(upstream: FakeUpstream) -> None:
    backend = OpenAICompatBackend(upstream.base_url, "sk-test")
    try:
        events = await collect(backend, ask("the quick brown fox"))
    finally:
        await backend.aclose()
    texts = [e.text for e in events if isinstance(e, TextDelta)]
    assert len(texts) == 4
    assert "".join(texts) == "the quick brown fox"
    finished = events[-1]
    assert isinstance(finished, Finished)
    assert finished.reason == "stop"
    assert finished.usage.completion_tokens == 4  # the upstream's count, not an estimate
    assert upstream.requests[0]["stream"] is True
    assert upstream.requests[0]["stream_options"] == {"include_usage": True}


async def test_request_body_maps_every_field(upstream: FakeUpstream) -> None:
    backend = OpenAICompatBackend(upstream.base_url)
    request = ChatRequest(
        model="gpt-test",
        messages=[
            ChatMessage("system", "be brief"),
            ChatMessage("user", "weather?"),
            ChatMessage("assistant", None, [ToolCall("call_1", "get_weather", '{"city":"Oslo"}')]),
            ChatMessage("tool", "rainy", tool_call_id="call_1"),
        ],
        tools=[WEATHER],
        tool_choice="get_weather",
        parallel_tool_calls=False,
        response_format={"type": "json_object"},
        temperature=0.2,
        top_p=0.9,
        max_tokens=50,
    )
    try:
        await collect(backend, request)
    finally:
        await backend.aclose()
    body = upstream.requests[0]
    assert body["model"] == "gpt-test"
    assert body["messages"][2] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
            }
        ],
    }
    assert body["messages"][3] == {"role": "tool", "content": "rainy", "tool_call_id": "call_1"}
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather in a city",
                "parameters": WEATHER.parameters,
            },
        }
    ]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert body["parallel_tool_calls"] is False
    assert body["response_format"] == {"type": "json_object"}
    assert (body["temperature"], body["top_p"], body["max_tokens"]) == (0.2, 0.9, 50)


async def test_no_tool_fields_without_tools(upstream: FakeUpstream) -> None:
    backend = OpenAICompatBackend(upstream.base_url)
    try:
        await collect(backend, ask("hi"))
    finally:
        await backend.aclose()
    body = upstream.requests[0]
    for key in ("tools", "tool_choice", "parallel_tool_calls", "temperature", "max_tokens"):
        assert key not in body


async def test_streams_parallel_tool_calls() -> None:
    calls = [
        FakeToolCall("get_weather", {"city": "Paris"}, id="call_a"),
        FakeToolCall("get_weather", {"city": "Tokyo, Japan"}, id="call_b"),
    ]
    with FakeUpstream(lambda _body: FakeReply(text="Checking.", tool_calls=calls)) as up:
        backend = OpenAICompatBackend(up.base_url)
        try:
            events = await collect(backend, ask("weather?", tools=[WEATHER]))
        finally:
            await backend.aclose()
    started = [e for e in events if isinstance(e, ToolCallStarted)]
    assert started == [
        ToolCallStarted(0, "call_a", "get_weather"),
        ToolCallStarted(1, "call_b", "get_weather"),
    ]
    for index, city in ((0, "Paris"), (1, "Tokyo, Japan")):
        fragments = [
            e.arguments
            for e in events
            if isinstance(e, ToolCallArgumentsDelta) and e.index == index
        ]
        assert len(fragments) > 1  # streamed, not delivered whole
        assert json.loads("".join(fragments)) == {"city": city}
    # each call is announced before its arguments
    first_args = next(
        i for i, e in enumerate(events) if isinstance(e, ToolCallArgumentsDelta) and e.index == 1
    )
    assert events.index(started[1]) < first_args
    assert events[-1] == Finished("tool_calls", events[-1].usage)  # type: ignore[union-attr]


async def test_retries_429_and_503_then_succeeds() -> None:
    script = sequence(
        FakeError(429, "slow down", retry_after_ms=10),
        FakeError(503, "overloaded", retry_after="0"),
        "finally",
    )
    with FakeUpstream(script) as up:
        backend = OpenAICompatBackend(up.base_url, max_retries=3)
        try:
            events = await collect(backend, ask("hi"))
        finally:
            await backend.aclose()
        assert len(up.requests) == 3
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["finally"]


async def test_exhausted_retries_raise_rate_limited_with_upstream_message() -> None:
    with FakeUpstream(
        lambda _b: FakeError(429, "quota exceeded for gpt-test", retry_after_ms=1)
    ) as up:
        backend = OpenAICompatBackend(up.base_url, max_retries=2)
        try:
            with pytest.raises(ModelRateLimited) as info:
                await collect(backend, ask("hi"))
        finally:
            await backend.aclose()
        assert len(up.requests) == 3
    assert info.value.code == "rate_limit_exceeded"
    assert "429" in info.value.message and "quota exceeded for gpt-test" in info.value.message
    assert "3 attempts" in info.value.message


async def test_400_is_invalid_prompt_without_retry() -> None:
    with FakeUpstream(
        lambda _b: FakeError(400, "This model's maximum context length is 8192")
    ) as up:
        backend = OpenAICompatBackend(up.base_url, max_retries=3)
        try:
            with pytest.raises(ModelInvalidPrompt, match="maximum context length is 8192"):
                await collect(backend, ask("hi"))
        finally:
            await backend.aclose()
        assert len(up.requests) == 1


async def test_5xx_after_retries_is_server_error() -> None:
    with FakeUpstream(lambda _b: FakeError(502, "bad gateway", retry_after_ms=1)) as up:
        backend = OpenAICompatBackend(up.base_url, max_retries=1)
        try:
            with pytest.raises(ModelError) as info:
                await collect(backend, ask("hi"))
        finally:
            await backend.aclose()
    assert type(info.value) is ModelError
    assert info.value.code == "server_error"
    assert "502" in info.value.message and "bad gateway" in info.value.message
    # What the client sees does not name the upstream; the log's copy (`detail`) does.
    assert info.value.message == "The model backend answered 502 after 2 attempts: bad gateway"
    assert (
        info.value.detail
        == f"upstream {up.base_url}/chat/completions answered 502 after 2 attempts: bad gateway"
    )


async def test_unreachable_upstream_is_retried_then_reported() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    backend = OpenAICompatBackend(
        f"http://127.0.0.1:{port}/v1", max_retries=2, initial_backoff=0.01
    )
    try:
        with pytest.raises(ModelError, match=r"could not reach upstream .* \(3 attempts\)") as info:
            await collect(backend, ask("hi"))
    finally:
        await backend.aclose()
    assert info.value.message == "Could not reach the model backend (3 attempts): ConnectError"
    assert f"127.0.0.1:{port}" in info.value.detail


async def test_silent_upstream_times_out_with_a_clear_message() -> None:
    with FakeUpstream(first_token_delay=2.0) as up:
        backend = OpenAICompatBackend(up.base_url, timeout=0.2)
        try:
            with pytest.raises(ModelError, match=r"timed out after 0.2s") as info:
                await collect(backend, ask("hi"))
        finally:
            await backend.aclose()
        assert info.value.message.startswith("The model backend timed out after 0.2s")
        assert up.base_url in info.value.detail


async def test_estimates_usage_when_upstream_sends_none() -> None:
    def no_usage_script(body: dict[str, Any]) -> Reply:
        body.pop("stream_options")  # the fake then omits the usage chunk, as old servers do
        return "four words of text"

    with FakeUpstream(no_usage_script) as up:
        backend = OpenAICompatBackend(up.base_url)
        try:
            events = await collect(backend, ask("a question that costs some tokens"))
        finally:
            await backend.aclose()
    finished = events[-1]
    assert isinstance(finished, Finished)
    assert finished.usage.prompt_tokens > 0 and finished.usage.completion_tokens > 0


async def test_non_streaming_answer_is_accepted() -> None:
    with FakeUpstream(
        lambda _b: FakeReply(tool_calls=[FakeToolCall("get_weather", {"city": "Rome"})])
    ) as up:
        backend = OpenAICompatBackend(up.base_url)
        try:
            # An upstream that ignores stream=true; drive the fake's non-streaming path directly.
            up.script = lambda _b: FakeReply(text="whole answer")
            async with backend._client.stream(
                "POST", f"{up.base_url}/chat/completions", json={"model": "m", "messages": []}
            ) as response:
                assert response.headers["content-type"] == "application/json"
                payload = json.loads(await response.aread())
        finally:
            await backend.aclose()
    assert payload["choices"][0]["message"]["content"] == "whole answer"


async def test_closing_the_stream_early_closes_the_connection() -> None:
    long_answer = " ".join(f"word{i}" for i in range(500))
    with FakeUpstream(lambda _b: long_answer, token_delay=0.005) as up:
        backend = OpenAICompatBackend(up.base_url)
        try:
            stream = backend.stream(ask("talk"))
            received = 0
            async for event in stream:
                if isinstance(event, TextDelta):
                    received += 1
                if received == 3:
                    break
            started = time.monotonic()
            await stream.aclose()  # type: ignore[attr-defined]
            # The server thread counts the hang-up; there is no event to await across threads.
            while up.disconnects == 0 and time.monotonic() - started < 5:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        finally:
            await backend.aclose()
        # the server noticed the hang-up and stopped producing the remaining ~497 words
        assert up.disconnects == 1


async def test_connection_is_reused_across_requests(upstream: FakeUpstream) -> None:
    backend = OpenAICompatBackend(upstream.base_url)
    try:
        for _ in range(5):
            await collect(backend, ask("again"))
    finally:
        await backend.aclose()
    assert upstream.connections == 1


async def test_connection_is_reused_after_slow_streams() -> None:
    with FakeUpstream(token_delay=0.001) as up:
        backend = OpenAICompatBackend(up.base_url)
        try:
            for _ in range(3):
                await collect(backend, ask("one two three"))
        finally:
            await backend.aclose()
        assert up.connections == 1
