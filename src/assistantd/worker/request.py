"""What the model sees, in one place: the request of one model call of a run, and what the
run's tools see along with it, built from the run and its context without any I/O.

`build_chat_request` decides the system prompt, the history fitted to the context window
and the run's token budget, the tool specs and the sampling options. `tool_view` gathers
the files and stores the tools may use and the citations earlier tool calls of the run
made (so annotations keep their numbering across model calls).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from assistantd.llm.base import ChatMessage, ChatRequest, ModelBackend
from assistantd.worker import prompt as prompts
from assistantd.worker.annotations import Annotator
from assistantd.worker.store import RunContext
from assistantd.worker.tools.base import ServerTool
from assistantd.worker.tools.gateways import merged_resources

# Tokens kept free for the answer when `truncation_strategy: auto` fits a prompt.
COMPLETION_RESERVE = 1024


class OverBudget(Exception):
    """The run's `max_prompt_tokens` or `max_completion_tokens` leaves no room for another
    model call: the run ends `incomplete` for `reason`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class ToolView:
    """What a model call's tools see of the run."""

    resources: dict[str, list[str]]  # tool type -> file or vector store ids
    thread_stores: list[str]  # the thread's and the run's stores (may still be ingesting)
    last_user_text: str
    annotator: Annotator = field(default_factory=Annotator)  # citations made so far
    file_search_calls: int = 0


def tool_view(context: RunContext, run: Mapping[str, Any]) -> ToolView:
    thread, history = context.thread, context.history
    view = ToolView(
        resources=merged_resources(context.assistant, thread, history, run),
        thread_stores=[
            vs
            for owner in (thread, run)
            for vs in (((owner or {}).get("tool_resources") or {}).get("file_search") or {}).get(
                "vector_store_ids"
            )
            or []
        ],
        last_user_text=next(
            (prompts.message_text(m["content"]) for m in reversed(history) if m["role"] == "user"),
            "",
        ),
    )
    for step in context.steps:
        for call in step.body["step_details"].get("tool_calls") or []:
            kept = step.state.calls.get(call["id"])
            if call["type"] == "file_search":
                citations = kept.get("citations", []) if kept is not None else []
                for k, (fid, _name) in enumerate(citations):
                    view.annotator.citations[(view.file_search_calls, k)] = fid
                view.file_search_calls += 1
            elif call["type"] == "code_interpreter" and kept is not None:
                view.annotator.sandbox_files.update(kept.get("files", {}))
    return view


def build_chat_request(
    context: RunContext,
    run: Mapping[str, Any],
    backend: ModelBackend,
    model_name: str,
    server_tools: Mapping[str, ServerTool],
    *,
    used: tuple[int, int] = (0, 0),
) -> ChatRequest:
    """The next model call's request; `OverBudget` when the run's token limits allow none.
    `used`: the (prompt, completion) tokens the run's model calls have used so far.

    Image parts are left for `prompt.load_images` (the one step that reads files).
    """
    used_prompt, used_completion = used
    system_text = run.get("instructions") or ""
    system = [ChatMessage(role="system", content=system_text)] if system_text else []
    images = backend.supports_images
    current = prompts.run_turns(context.steps, context.own_messages, images=images)
    limit = backend.context_window - COMPLETION_RESERVE
    if run.get("max_prompt_tokens"):
        limit = min(limit, run["max_prompt_tokens"] - used_prompt)
    fitted = prompts.fit(
        backend,
        system,
        prompts.history_messages(context.history, images=images),
        current,
        run.get("truncation_strategy") or {"type": "auto"},
        limit,
    )
    if (
        run.get("max_prompt_tokens")
        and used_prompt + fitted.prompt_tokens > run["max_prompt_tokens"]
    ):
        raise OverBudget("max_prompt_tokens")

    max_tokens = None
    if run.get("max_completion_tokens"):
        max_tokens = run["max_completion_tokens"] - used_completion
        if max_tokens <= 0:
            raise OverBudget("max_completion_tokens")

    tool_choice = run.get("tool_choice") or "auto"
    if isinstance(tool_choice, dict):
        tool_choice = tool_choice.get("function", {}).get("name") or tool_choice["type"]
    specs = prompts.function_specs(run.get("tools") or [])
    for tool in run.get("tools") or []:
        server = server_tools.get(tool["type"])
        if server is not None:
            specs.append(server.spec(tool))
    rf = run.get("response_format")
    return ChatRequest(
        model=model_name,
        messages=fitted.messages,
        tools=specs,
        tool_choice=tool_choice if specs else "none",
        parallel_tool_calls=bool(run.get("parallel_tool_calls", True)),
        response_format=rf if isinstance(rf, dict) else None,
        temperature=run.get("temperature"),
        top_p=run.get("top_p"),
        max_tokens=max_tokens,
    )
