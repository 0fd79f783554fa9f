"""The chat-completions wire format: request bodies out, streamed chunks back to `ModelEvent`s.

Kept apart from the connection (`openai_compat.py`) so the parsing can be read, and reused,
without retries and sockets in the way.
"""

from __future__ import annotations

import json
import secrets
import string
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .base import (
    ChatMessage,
    ChatRequest,
    ContentPart,
    Finished,
    FinishReason,
    ImagePart,
    ModelError,
    ModelEvent,
    RefusalDelta,
    TextDelta,
    ToolCallArgumentsDelta,
    ToolCallStarted,
    ToolSpec,
    Usage,
    content_text,
    image_tokens,
)

_ID_ALPHABET = string.ascii_letters + string.digits


def new_tool_call_id() -> str:
    """A tool call id in OpenAI's shape: `call_` and 24 random alphanumerics."""
    return "call_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(24))


def content_to_wire(parts: list[ContentPart]) -> list[dict[str, Any]]:
    """Content parts as chat completions takes them, in order: text, and `image_url`."""
    out: list[dict[str, Any]] = []
    for part in parts:
        if isinstance(part, ImagePart):
            out.append({"type": "image_url", "image_url": {"url": part.url, "detail": part.detail}})
        else:
            out.append({"type": "text", "text": part.text})
    return out


def message_to_wire(message: ChatMessage) -> dict[str, Any]:
    content: Any = message.content
    if isinstance(content, list):
        # Only user messages carry images; any other role gets their placeholders.
        content = content_to_wire(content) if message.role == "user" else content_text(content)
    wire: dict[str, Any] = {"role": message.role, "content": content}
    if message.role == "assistant" and message.tool_calls:
        wire["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in message.tool_calls
        ]
    elif message.role == "tool":
        wire["tool_call_id"] = message.tool_call_id
        # Upstreams reject a tool message without content; an empty output is still an output.
        wire["content"] = content or ""
    elif content is None:
        wire["content"] = ""
    return wire


def tool_to_wire(tool: ToolSpec) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.name, "parameters": tool.parameters}
    if tool.description:
        function["description"] = tool.description
    if tool.strict is not None:
        function["strict"] = tool.strict
    return {"type": "function", "function": function}


def tool_choice_to_wire(choice: str) -> str | dict[str, Any]:
    if choice in ("auto", "none", "required"):
        return choice
    return {"type": "function", "function": {"name": choice}}


def build_chat_completions_body(request: ChatRequest) -> dict[str, Any]:
    """The streaming `POST /chat/completions` body for `request`."""
    body: dict[str, Any] = {
        "model": request.model,
        "messages": [message_to_wire(m) for m in request.messages],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    # tool_choice and parallel_tool_calls without tools are a 400 at OpenAI.
    if request.tools:
        body["tools"] = [tool_to_wire(t) for t in request.tools]
        body["tool_choice"] = tool_choice_to_wire(request.tool_choice)
        body["parallel_tool_calls"] = request.parallel_tool_calls
    if request.response_format is not None:
        body["response_format"] = request.response_format
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.max_tokens is not None:
        body["max_tokens"] = request.max_tokens
    return body


def prompt_text(request: ChatRequest) -> str:
    """Everything the prompt costs, as text, for estimating usage an upstream did not report."""
    parts = [content_text(m.content) for m in request.messages]
    parts += [c.name + c.arguments for m in request.messages for c in m.tool_calls]
    if request.tools:
        parts.append(json.dumps([tool_to_wire(t) for t in request.tools]))
    return "\n".join(parts)


def prompt_image_tokens(request: ChatRequest) -> int:
    """The estimated cost of the prompt's images (see `base.image_tokens`)."""
    return sum(
        image_tokens(part)
        for m in request.messages
        if isinstance(m.content, list)
        for part in m.content
        if isinstance(part, ImagePart)
    )


_FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}


_JOIN_EVERY = 64


@dataclass(slots=True)
class _UpstreamCall:
    index: int | None = None  # ours, assigned once started
    id: str | None = None
    name: str | None = None
    pending_arguments: list[str] = field(default_factory=list)


class ChunkParser:
    """Turns `chat.completion.chunk` objects into events, tolerating servers' quirks.

    Upstream tool-call indexes become ours (0-based, contiguous, in order of appearance);
    a call is announced once both its id and name are known, and argument fragments that
    arrive before that are held back until then. A call whose index reappears with a
    different id is a new call (some servers number every call 0).
    """

    def __init__(self) -> None:
        self._calls: dict[int, _UpstreamCall] = {}
        self._started = 0
        self.finish_reason: FinishReason | None = None
        self.usage: Usage | None = None
        self.text_parts: list[str] = []

    @property
    def saw_tool_calls(self) -> bool:
        return self._started > 0 or bool(self._calls)

    def feed(self, chunk: dict[str, Any]) -> Iterator[ModelEvent]:
        error = chunk.get("error")
        if error:
            message = error.get("message") if isinstance(error, dict) else str(error)
            raise ModelError(f"upstream reported an error mid-stream: {message}")
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.usage = Usage(
                prompt_tokens=int(usage.get("prompt_tokens") or 0),
                completion_tokens=int(usage.get("completion_tokens") or 0),
            )
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue  # we never ask for n > 1
            # A non-streamed completion carries `message` where a chunk carries `delta`.
            delta = choice.get("delta") or choice.get("message") or {}
            content = delta.get("content")
            if content:
                self._keep_text(content)
                yield TextDelta(content)
            refusal = delta.get("refusal")
            if refusal and isinstance(refusal, str):
                self._keep_text(refusal)
                yield RefusalDelta(refusal)
            for call in delta.get("tool_calls") or ():
                yield from self._feed_tool_call(call)
            reason = choice.get("finish_reason")
            if reason:
                self.finish_reason = _FINISH_REASONS.get(reason, "stop")

    def _keep_text(self, text: str) -> None:
        self.text_parts.append(text)
        if len(self.text_parts) >= _JOIN_EVERY:
            # One string instead of a small object per token: held for the whole answer
            # (only to estimate usage an upstream does not report).
            self.text_parts[:] = ["".join(self.text_parts)]

    def _feed_tool_call(self, fragment: dict[str, Any]) -> Iterator[ModelEvent]:
        upstream_index = fragment.get("index")
        if upstream_index is None:
            upstream_index = max(self._calls, default=0)
        call_id = fragment.get("id") or None
        function = fragment.get("function") or {}
        state = self._calls.get(upstream_index)
        if state is None or (call_id and state.id and call_id != state.id):
            yield from self._flush(state)
            state = self._calls[upstream_index] = _UpstreamCall()
        if call_id and not state.id:
            state.id = call_id
        if function.get("name") and not state.name:
            state.name = function["name"]
        arguments = function.get("arguments")
        if state.index is None and state.id and state.name:
            yield from self._start(state)
        if arguments:
            if state.index is None:
                state.pending_arguments.append(arguments)
            else:
                yield ToolCallArgumentsDelta(state.index, arguments)

    def _start(self, state: _UpstreamCall) -> Iterator[ModelEvent]:
        assert state.id is not None and state.name is not None
        state.index = self._started
        self._started += 1
        yield ToolCallStarted(state.index, state.id, state.name)
        if state.pending_arguments:
            yield ToolCallArgumentsDelta(state.index, "".join(state.pending_arguments))
            state.pending_arguments.clear()

    def _flush(self, state: _UpstreamCall | None) -> Iterator[ModelEvent]:
        # A call that never got an id (some servers omit it) still gets one, so the run
        # can answer it; a call that never got a name cannot be answered and is dropped.
        if state is None or state.index is not None or not state.name:
            return
        state.id = state.id or new_tool_call_id()
        yield from self._start(state)

    def finish(self, estimate_usage: Usage) -> Iterator[ModelEvent]:
        """The events that close the stream: late tool-call starts, then `Finished`."""
        for state in list(self._calls.values()):
            yield from self._flush(state)
        reason = self.finish_reason or "stop"
        if self._started and reason == "stop":
            reason = "tool_calls"  # some servers say "stop" after a tool call
        yield Finished(reason, self.usage or estimate_usage)


class LineSplitter:
    """A byte stream's lines (ended by LF, CRLF or CR, as SSE allows), decoded as UTF-8.

    Used instead of httpx's `aiter_lines()`, whose text and line decoders are two more
    async-generator layers held by every open upstream stream.
    """

    __slots__ = ("_rest",)

    def __init__(self) -> None:
        self._rest = b""

    def feed(self, chunk: bytes) -> list[str]:
        data = self._rest + chunk
        # A CR at the end may be the first half of a CRLF: decide with the next chunk.
        keep = b"\r" if data.endswith(b"\r") else b""
        if keep:
            data = data[:-1]
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        *lines, rest = data.split(b"\n")
        self._rest = rest + keep
        return [line.decode("utf-8", errors="replace") for line in lines]

    def flush(self) -> list[str]:
        rest, self._rest = self._rest, b""
        rest = rest.rstrip(b"\r")
        return [rest.decode("utf-8", errors="replace")] if rest else []


@dataclass(slots=True)
class SSEDecoder:
    """Server-sent events, line by line: yields each event's data once its blank line arrives."""

    _data: list[str] = field(default_factory=list)

    def feed_line(self, line: str) -> str | None:
        if not line:
            if not self._data:
                return None
            data = "\n".join(self._data)
            self._data.clear()
            return data
        if line.startswith(":"):
            return None  # comment / keep-alive
        name, _, value = line.partition(":")
        if name == "data":
            self._data.append(value[1:] if value.startswith(" ") else value)
        return None

    def flush(self) -> str | None:
        return self.feed_line("")
