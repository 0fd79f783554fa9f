"""Run and RunStep wire objects, and the lifecycle's vocabulary."""

from __future__ import annotations

from typing import Any

from assistantd.core.ids import new_id, now_seconds

ACTIVE = frozenset({"queued", "in_progress", "requires_action", "cancelling"})
TERMINAL = frozenset({"completed", "failed", "cancelled", "expired", "incomplete"})


def new_run(*, thread_id: str, assistant_id: str, model: str, instructions: str,
            tools: list[dict[str, Any]], tool_resources: dict[str, Any], metadata: dict[str, str],
            temperature: float | None, top_p: float | None, max_prompt_tokens: int | None,
            max_completion_tokens: int | None, truncation_strategy: dict[str, Any],
            tool_choice: Any, parallel_tool_calls: bool, response_format: Any,
            expires_in: int) -> dict[str, Any]:
    created = now_seconds()
    return {
        "id": new_id("run_"),
        "object": "thread.run",
        "created_at": created,
        "assistant_id": assistant_id,
        "thread_id": thread_id,
        "status": "queued",
        "started_at": None,
        "expires_at": created + expires_in,
        "cancelled_at": None,
        "failed_at": None,
        "completed_at": None,
        "required_action": None,
        "last_error": None,
        "model": model,
        "instructions": instructions,
        "tools": tools,
        "tool_resources": tool_resources,
        "metadata": metadata,
        "temperature": temperature,
        "top_p": top_p,
        "max_completion_tokens": max_completion_tokens,
        "max_prompt_tokens": max_prompt_tokens,
        "truncation_strategy": truncation_strategy,
        "incomplete_details": None,
        "usage": None,
        "response_format": response_format,
        "tool_choice": tool_choice,
        "parallel_tool_calls": parallel_tool_calls,
    }


def new_step(run: dict[str, Any], step_type: str, details: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": new_id("step_"),
        "object": "thread.run.step",
        "created_at": now_seconds(),
        "assistant_id": run["assistant_id"],
        "thread_id": run["thread_id"],
        "run_id": run["id"],
        "type": step_type,
        "status": "in_progress",
        "step_details": details,
        "last_error": None,
        # The spec names it expired_at; the real API also sent expires_at. Both, always.
        "expired_at": None,
        "expires_at": run["expires_at"],
        "cancelled_at": None,
        "failed_at": None,
        "completed_at": None,
        "metadata": {},
        "usage": None,
    }


def usage_dict(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def step_view(body: dict[str, Any], include_content: bool) -> dict[str, Any]:
    """A step as the API shows it: internal `_` keys dropped (also inside tool calls), and
    file_search result `content` only when `include[]` asked for it."""
    out = {k: v for k, v in body.items() if not k.startswith("_")}
    details = out.get("step_details") or {}
    if details.get("type") == "tool_calls":
        calls = []
        for call in details["tool_calls"]:
            call = {k: v for k, v in call.items() if not k.startswith("_")}
            if call.get("type") == "file_search" and not include_content and call["file_search"].get("results"):
                results = [{k: v for k, v in r.items() if k != "content"} for r in call["file_search"]["results"]]
                call = {**call, "file_search": {**call["file_search"], "results": results}}
            calls.append(call)
        out["step_details"] = {"type": "tool_calls", "tool_calls": calls}
    return out
