"""The stream's delta events a run sends as it goes, built in one place."""

from __future__ import annotations

from typing import Any


def message_delta(message_id: str, part: dict[str, Any]) -> dict[str, Any]:
    """`thread.message.delta`: one content part's fragment (`part` carries its `index`)."""
    return {"id": message_id, "object": "thread.message.delta", "delta": {"content": [part]}}


def image_file(file_id: str) -> dict[str, Any]:
    """An `image_file` content part (a figure the code interpreter drew)."""
    return {"type": "image_file", "image_file": {"file_id": file_id, "detail": "auto"}}


def step_delta(step_id: str, tool_call: dict[str, Any]) -> dict[str, Any]:
    """`thread.run.step.delta`: one tool call's fragment (`tool_call` carries its `index`)."""
    return {
        "id": step_id,
        "object": "thread.run.step.delta",
        "delta": {"step_details": {"type": "tool_calls", "tool_calls": [tool_call]}},
    }
