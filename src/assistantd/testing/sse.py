"""Server-sent events read off a raw `httpx` stream, frame by frame, as a test checks them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx


def read_sse(response: httpx.Response) -> list[tuple[str, Any, str | None]]:
    """(event, data, id) for every frame, and `(":", line, None)` for each comment line."""
    return list(frames_of(response, comments=True))


def names(frames: list[tuple[str, Any, str | None]]) -> list[str]:
    return [f[0] for f in frames if f[0] != ":"]


def frames_of(
    response: httpx.Response, *, comments: bool = False
) -> Iterator[tuple[str, Any, str | None]]:
    """(event, data, id) of each frame as it arrives; with `comments`, also `(":", line, None)`
    for each comment line (a keep-alive)."""
    event = data = eid = None
    for line in response.iter_lines():
        if line.startswith(":"):
            if comments:
                yield ":", line, None
        elif line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data = line[6:]
        elif line.startswith("id: "):
            eid = line[4:]
        elif line == "" and event is not None:
            yield event, data if data == "[DONE]" else json.loads(data or "null"), eid
            event = data = eid = None


#: The events a text run's stream opens with, in order.
TEXT_RUN = [
    "thread.run.created",
    "thread.run.queued",
    "thread.run.in_progress",
    "thread.run.step.created",
    "thread.run.step.in_progress",
    "thread.message.created",
    "thread.message.in_progress",
]
