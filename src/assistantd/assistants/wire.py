"""The Assistant object, as stored in `assistants.body` and sent as it is."""

from __future__ import annotations

from typing import Literal, TypedDict

from assistantd.core.wire import JSONValue, Metadata, ToolResourcesWire


class Assistant(TypedDict):
    id: str
    object: Literal["assistant"]
    created_at: int
    name: str | None
    description: str | None
    model: str
    instructions: str | None
    tools: list[dict[str, JSONValue]]
    tool_resources: ToolResourcesWire
    metadata: Metadata
    top_p: float | None
    temperature: float | None
    response_format: JSONValue


def assistant_object(assistant_id: str, created_at: int, model: str) -> Assistant:
    """A new assistant with every field at its default; the request's fields go over it."""
    return {
        "id": assistant_id,
        "object": "assistant",
        "created_at": created_at,
        "name": None,
        "description": None,
        "model": model,
        "instructions": None,
        "tools": [],
        "tool_resources": {},
        "metadata": {},
        "top_p": 1.0,
        "temperature": 1.0,
        "response_format": "auto",
    }
