"""The Thread object, as stored in `threads.body` and sent as it is."""

from __future__ import annotations

from typing import Literal, TypedDict

from assistantd.core.wire import Metadata, ToolResourcesWire


class Thread(TypedDict):
    id: str
    object: Literal["thread"]
    created_at: int
    metadata: Metadata
    tool_resources: ToolResourcesWire


def thread_object(
    thread_id: str, created_at: int, metadata: Metadata | None, tool_resources: ToolResourcesWire
) -> Thread:
    return {
        "id": thread_id,
        "object": "thread",
        "created_at": created_at,
        "metadata": metadata or {},
        "tool_resources": tool_resources,
    }
