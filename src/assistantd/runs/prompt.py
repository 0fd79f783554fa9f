"""Turning a thread and a run's steps into the model's prompt, and fitting it to budgets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from assistantd.llm.base import ChatMessage, ModelBackend, ToolCall, ToolSpec


def message_text(content: list[dict[str, Any]]) -> str:
    """The text a model sees for a message's content parts."""
    parts = []
    for part in content:
        if part["type"] == "text":
            parts.append(part["text"]["value"])
        elif part["type"] == "image_file":
            parts.append(f"[image file {part['image_file']['file_id']}]")
        elif part["type"] == "image_url":
            parts.append(f"[image {part['image_url']['url']}]")
        elif part["type"] == "refusal":
            parts.append(part.get("refusal", ""))
    return "\n".join(p for p in parts if p)


def history_messages(messages: list[dict[str, Any]]) -> list[ChatMessage]:
    """Thread messages from before this run, as chat messages."""
    return [ChatMessage(role=m["role"], content=message_text(m["content"])) for m in messages]


def run_turns(steps: list[dict[str, Any]], messages_by_id: dict[str, dict[str, Any]]) -> list[ChatMessage]:
    """What this run already did (its steps, in order) as chat messages.

    A message step directly followed by a tool step of the same model call becomes one
    assistant message carrying both text and tool calls, as the model produced it.
    """
    out: list[ChatMessage] = []
    for step in steps:
        details = step["step_details"]
        if step["status"] in ("failed", "cancelled", "expired"):
            continue  # interrupted work (e.g. a crash mid-message) is not part of the story
        if details["type"] == "message_creation":
            msg = messages_by_id.get(details["message_creation"]["message_id"])
            if msg is not None:
                out.append(ChatMessage(role="assistant", content=message_text(msg["content"])))
            continue
        calls: list[ToolCall] = []
        results: list[ChatMessage] = []
        for call in details["tool_calls"]:
            kind = call["type"]
            if kind == "function":
                fn = call["function"]
                calls.append(ToolCall(call["id"], fn["name"], fn["arguments"]))
                results.append(ChatMessage(role="tool", content=fn.get("output") or "", tool_call_id=call["id"]))
            else:
                payload = call.get("_model_call") or {}
                calls.append(ToolCall(call["id"], payload.get("name", kind), payload.get("arguments", "{}")))
                results.append(ChatMessage(role="tool", content=call.get("_output", ""), tool_call_id=call["id"]))
        if out and out[-1].role == "assistant" and not out[-1].tool_calls and step.get("_joins_previous"):
            out[-1].tool_calls = calls
        else:
            out.append(ChatMessage(role="assistant", content=None, tool_calls=calls))
        out.extend(results)
    return out


def function_specs(tools: list[dict[str, Any]]) -> list[ToolSpec]:
    specs = []
    for tool in tools:
        if tool["type"] == "function":
            fn = tool["function"]
            specs.append(ToolSpec(name=fn["name"], description=fn.get("description"),
                                  parameters=fn.get("parameters") or {"type": "object", "properties": {}},
                                  strict=fn.get("strict")))
    return specs


@dataclass
class Fitted:
    messages: list[ChatMessage]
    prompt_tokens: int
    dropped: int


def count(backend: ModelBackend, messages: list[ChatMessage]) -> int:
    total = 0
    for m in messages:
        total += 4 + backend.count_tokens(m.content or "")
        for c in m.tool_calls:
            total += backend.count_tokens(c.name) + backend.count_tokens(c.arguments)
    return total


def fit(backend: ModelBackend, system: list[ChatMessage], history: list[ChatMessage],
        current: list[ChatMessage], truncation: dict[str, Any], limit: int) -> Fitted:
    """Apply `truncation_strategy` and drop the oldest history until the prompt fits `limit`.

    The run's own turns and the newest history message are never dropped: without them
    the model would not know what it is answering.
    """
    dropped = 0
    if truncation.get("type") == "last_messages" and truncation.get("last_messages"):
        keep = int(truncation["last_messages"])
        dropped = max(0, len(history) - keep)
        history = history[dropped:]
    fixed = count(backend, system) + count(backend, current)
    costs = [count(backend, [m]) for m in history]
    total = fixed + sum(costs)
    start = 0
    if truncation.get("type", "auto") in ("auto", "last_messages"):
        while total > limit and start < len(history) - 1:
            total -= costs[start]
            start += 1
    return Fitted(system + history[start:] + current, total, dropped + start)
