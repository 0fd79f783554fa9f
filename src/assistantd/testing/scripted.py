"""A deterministic backend for tests: answers each request from a script.

It is a real `ModelBackend`, not a mock: it streams events with optional delays, ends every
stream with `Finished`, stops when the consumer closes it, and raises `ModelError`s.

    backend = ScriptedBackend([
        tool_call_turn("get_weather", {"city": "Paris"}),
        text_turn("It is sunny in Paris."),
    ])
    backend = ScriptedBackend(lambda request: text_turn(f"you said {request.messages[-1].content}"))
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any

from assistantd.llm.base import (
    ChatRequest,
    Finished,
    ModelBackend,
    ModelError,
    ModelEvent,
    TextDelta,
    ToolCallArgumentsDelta,
    ToolCallStarted,
    Usage,
)
from assistantd.llm.openai_wire import new_tool_call_id, prompt_text

Turn = list[ModelEvent] | Exception
Script = Callable[[ChatRequest], Turn] | Sequence[Turn]

_WORD_RE = re.compile(r"\s*\S+|\s+")


def text_turn(text: str) -> list[ModelEvent]:
    """A turn answering `text`, streamed a word at a time."""
    return [TextDelta(fragment) for fragment in _WORD_RE.findall(text)]


def tool_call_turn(
    name: str, arguments: dict[str, Any] | str, *more: tuple[str, dict[str, Any] | str]
) -> list[ModelEvent]:
    """A turn calling `name(arguments)` (and any `more` calls in parallel)."""
    events: list[ModelEvent] = []
    for index, (call_name, call_arguments) in enumerate(((name, arguments), *more)):
        text = call_arguments if isinstance(call_arguments, str) else json.dumps(call_arguments)
        events.append(ToolCallStarted(index, new_tool_call_id(), call_name))
        # Two fragments, so consumers exercise their argument accumulation.
        half = len(text) // 2
        events += [
            ToolCallArgumentsDelta(index, part) for part in (text[:half], text[half:]) if part
        ]
    return events


class ScriptedBackend(ModelBackend):
    """Answers each request with the next turn of a list, or with what a function returns.

    A turn is a list of events (a missing `Finished` is added, with usage estimated the way a
    remote backend would) or an exception, raised as the call's failure. `delay` seconds pass
    before each event, so a test can cancel a run mid-generation.
    """

    def __init__(self, script: Script, *, delay: float = 0.0, context_window: int = 8192) -> None:
        self._script = script
        self._next_turn = 0
        self.delay = delay
        self.context_window = context_window
        #: every request received, in order (deep copies: later changes by the caller don't show)
        self.requests: list[ChatRequest] = []
        #: streams closed by their consumer before the `Finished` event
        self.interrupted = 0
        self.closed = False

    def _turn_for(self, request: ChatRequest) -> Turn:
        if callable(self._script):
            return self._script(request)
        if self._next_turn >= len(self._script):
            raise ModelError(
                f"scripted backend has no turn left for request #{len(self.requests)}: "
                f"the script has {len(self._script)} turns"
            )
        turn = self._script[self._next_turn]
        self._next_turn += 1
        return turn

    async def stream(self, request: ChatRequest) -> AsyncIterator[ModelEvent]:
        if self.closed:
            raise ModelError("scripted backend was closed")
        self.requests.append(copy.deepcopy(request))
        turn = self._turn_for(request)
        if isinstance(turn, Exception):
            raise turn
        events = self._complete(request, turn)
        finished = False
        try:
            for event in events:
                if self.delay > 0:
                    await asyncio.sleep(self.delay)
                finished = isinstance(event, Finished)
                yield event
        finally:
            if not finished:
                self.interrupted += 1

    def _complete(self, request: ChatRequest, turn: Iterable[ModelEvent]) -> list[ModelEvent]:
        events = list(turn)
        finishes = [i for i, e in enumerate(events) if isinstance(e, Finished)]
        if finishes and finishes != [len(events) - 1]:
            raise ValueError("a scripted turn may hold one Finished event, and only at its end")
        if not finishes:
            called = any(isinstance(e, ToolCallStarted) for e in events)
            produced = "".join(
                e.text if isinstance(e, TextDelta) else e.arguments
                for e in events
                if isinstance(e, TextDelta | ToolCallArgumentsDelta)
            )
            usage = Usage(self.count_tokens(prompt_text(request)), self.count_tokens(produced))
            events.append(Finished("tool_calls" if called else "stop", usage))
        return events

    async def aclose(self) -> None:
        self.closed = True
