"""The model backend interface: the only thing the run engine knows about models.

Every backend (OpenAI-compatible upstream, llama.cpp in-process, the scripted one in
`assistantd.testing`) turns its own wire format into the one stream of `ModelEvent`s
defined here.

Exceptions:

    ModelError            any failure of a model call; carries the run `last_error.code`
    ├── ModelRateLimited  upstream kept answering 429 after retries (`rate_limit_exceeded`)
    └── ModelInvalidPrompt the request cannot be served as asked (`invalid_prompt`)
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(slots=True)
class ToolCall:
    """A function call the model made: `arguments` is the JSON text it produced."""

    id: str
    name: str
    arguments: str


@dataclass(slots=True)
class TextPart:
    """Text in a message of several parts (a message of text only has string content)."""

    text: str


@dataclass(slots=True)
class ImagePart:
    """An image the model should see, in chat-completions terms (`image_url`).

    `url` is an http(s) URL or a `data:` URL. `placeholder` is the text a backend that
    cannot take images shows in its place (what every backend saw before images went
    upstream as images).
    """

    url: str
    detail: Literal["auto", "low", "high"] = "auto"
    placeholder: str = ""
    #: an `image_file`: `url` is empty until the prompt builder reads the stored file
    file_id: str | None = None


ContentPart = TextPart | ImagePart

# Prompt-token estimates for an image whose dimensions are not known here (OpenAI's
# published formula for gpt-4o-class models): `low` is 85 tokens; `high`/`auto` is 85 plus
# 170 per 512 px tile, and 765 (four tiles) is what a 1024x1024 image costs.
IMAGE_TOKENS_LOW = 85
IMAGE_TOKENS_HIGH = 85 + 170 * 4


def image_tokens(part: ImagePart) -> int:
    return IMAGE_TOKENS_LOW if part.detail == "low" else IMAGE_TOKENS_HIGH


def content_text(content: str | list[ContentPart] | None) -> str:
    """The content as plain text, images as their placeholders (for text-only backends)."""
    if content is None or isinstance(content, str):
        return content or ""
    return "\n".join(
        p for p in (c.text if isinstance(c, TextPart) else c.placeholder for c in content) if p
    )


@dataclass(slots=True)
class ChatMessage:
    """One message of the prompt, in chat-completions terms.

    `content` is a string, or a list of parts when the message carries images (only user
    messages do: chat completions takes images in user messages only).
    """

    role: Role
    content: str | list[ContentPart] | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None  # for role == "tool"


@dataclass(slots=True)
class ToolSpec:
    """A function the model may call. `parameters` is a JSON Schema object."""

    name: str
    description: str | None = None
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    strict: bool | None = None


# "auto" | "none" | "required" | a function name the model must call
ToolChoice = Literal["auto", "none", "required"] | str


@dataclass(slots=True)
class ChatRequest:
    """Everything one model call needs; `model` is the backend-side model name."""

    model: str
    messages: list[ChatMessage]
    tools: list[ToolSpec] = field(default_factory=list)
    tool_choice: ToolChoice = "auto"
    parallel_tool_calls: bool = True
    # None | {"type": "text"} | {"type": "json_object"} | {"type": "json_schema", "json_schema": {...}}
    response_format: dict[str, Any] | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(slots=True)
class TextDelta:
    """A fragment of assistant text, forwarded as soon as the backend produced it."""

    text: str


@dataclass(slots=True)
class RefusalDelta:
    """A fragment of the model's refusal (chat completions' `delta.refusal`, sent e.g. when a
    strict `json_schema` answer is declined): it becomes a `refusal` content part, not text."""

    text: str


@dataclass(slots=True)
class ToolCallStarted:
    """The model began tool call number `index` (0-based, contiguous) of this response."""

    index: int
    id: str
    name: str


@dataclass(slots=True)
class ToolCallArgumentsDelta:
    """A fragment of the JSON arguments of tool call `index`."""

    index: int
    arguments: str


FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]


@dataclass(slots=True)
class Finished:
    """The last event of every successful stream."""

    reason: FinishReason
    usage: Usage


ModelEvent = TextDelta | RefusalDelta | ToolCallStarted | ToolCallArgumentsDelta | Finished


class ModelError(Exception):
    """A model call failed; `code` is what the run's `last_error.code` will say.

    `message` is what the client sees (`last_error.message`); `detail`, for the server log
    and `str()`, may also name internal things such as the upstream's URL.
    """

    code: str = "server_error"

    def __init__(self, message: str, *, detail: str | None = None) -> None:
        super().__init__(detail or message)
        self.message = message
        self.detail = detail or message


class ModelRateLimited(ModelError):
    """The upstream answered 429 on every try."""

    code = "rate_limit_exceeded"


class ModelInvalidPrompt(ModelError):
    """The prompt cannot be served (too long for the context window, rejected by upstream 400)."""

    code = "invalid_prompt"


class ModelBackend(abc.ABC):
    """A source of chat completions. Implementations must not block the event loop."""

    #: tokens the model can attend to (prompt + completion); used by `truncation_strategy: auto`
    context_window: int = 8192
    #: whether the model takes image content parts; without, the prompt shows images as
    #: text placeholders (`ImagePart.placeholder`)
    supports_images: bool = False

    @abc.abstractmethod
    def stream(self, request: ChatRequest) -> AsyncIterator[ModelEvent]:
        """Yield the response as events, ending with exactly one `Finished`.

        Raises `ModelError` on failure. Closing the iterator early (`aclose()`, or the
        consuming task being cancelled) must stop generation promptly: that is how a run
        is cancelled mid-generation.
        """

    async def load(self) -> None:
        """Get ready to serve (e.g. load weights) without blocking the event loop.

        The engine awaits it before `count_tokens`, which must then be cheap.
        """
        return None

    def count_tokens(self, text: str) -> int:
        """Tokens `text` costs in this model's prompt; an estimate is fine for remote models."""
        return max(1, len(text) // 4) if text else 0

    async def aclose(self) -> None:
        """Release connections, threads and memory."""
        return None


class ModelRouter(abc.ABC):
    """Maps the model name a client asked for to a backend and the backend-side model name."""

    @abc.abstractmethod
    def resolve(self, requested_model: str) -> tuple[ModelBackend, str]:
        """Return (backend, model name to send it). Raises `ModelInvalidPrompt` if unknown."""

    async def aclose(self) -> None:
        return None
