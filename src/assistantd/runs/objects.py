"""Run and RunStep wire objects, the data of every stream event, and the lifecycle's vocabulary.

The `TypedDict`s are the objects as clients receive them, and as runs and steps are
stored (the engine's private state sits beside the body: `runs/state.py`). The untyped
constructors `new_run` and `new_step` are kept for the engine and the run service until
they take the typed ones (`run_object`, `step_object`).
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict, cast

from assistantd.core.ids import new_id, now_seconds
from assistantd.core.wire import ErrorDetail, JSONValue, LastError, Metadata, ToolResourcesWire
from assistantd.messages.wire import Annotation, ImageFile, IncompleteDetails, Message
from assistantd.threads.wire import Thread

ACTIVE = frozenset({"queued", "in_progress", "requires_action", "cancelling"})
TERMINAL = frozenset({"completed", "failed", "cancelled", "expired", "incomplete"})

RunStatus = Literal[
    "queued",
    "in_progress",
    "requires_action",
    "cancelling",
    "cancelled",
    "failed",
    "completed",
    "incomplete",
    "expired",
]
StepStatus = Literal["in_progress", "cancelled", "failed", "completed", "expired"]


class Usage(TypedDict):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class TruncationStrategy(TypedDict):
    type: Literal["auto", "last_messages"]
    last_messages: int | None


class FunctionCall(TypedDict):
    name: str
    arguments: str


class RequiredToolCall(TypedDict):
    id: str
    type: Literal["function"]
    function: FunctionCall


class SubmitToolOutputsAction(TypedDict):
    tool_calls: list[RequiredToolCall]


class RequiredAction(TypedDict):
    type: Literal["submit_tool_outputs"]
    submit_tool_outputs: SubmitToolOutputsAction


class Run(TypedDict):
    id: str
    object: Literal["thread.run"]
    created_at: int
    assistant_id: str
    thread_id: str
    status: RunStatus
    started_at: int | None
    expires_at: int | None
    cancelled_at: int | None
    failed_at: int | None
    completed_at: int | None
    required_action: RequiredAction | None
    last_error: LastError | None
    model: str
    instructions: str
    tools: list[dict[str, JSONValue]]
    # An extension the real API also sends: the resources this run's tools use.
    tool_resources: ToolResourcesWire
    metadata: Metadata
    temperature: float | None
    top_p: float | None
    max_completion_tokens: int | None
    max_prompt_tokens: int | None
    truncation_strategy: TruncationStrategy
    incomplete_details: IncompleteDetails | None
    usage: Usage | None
    response_format: JSONValue
    tool_choice: JSONValue
    parallel_tool_calls: bool


# -- step details ------------------------------------------------------------------------


class MessageCreation(TypedDict):
    message_id: str


class MessageCreationDetails(TypedDict):
    type: Literal["message_creation"]
    message_creation: MessageCreation


class FunctionToolCallFunction(TypedDict):
    name: str
    arguments: str
    output: str | None


class FunctionToolCall(TypedDict):
    id: str
    type: Literal["function"]
    function: FunctionToolCallFunction


class CodeLogsOutput(TypedDict):
    type: Literal["logs"]
    logs: str


class CodeImage(TypedDict):
    file_id: str


class CodeImageOutput(TypedDict):
    type: Literal["image"]
    image: CodeImage


CodeOutput = CodeLogsOutput | CodeImageOutput


class CodeInterpreterCall(TypedDict):
    input: str
    outputs: list[CodeOutput]


class CodeInterpreterToolCall(TypedDict):
    id: str
    type: Literal["code_interpreter"]
    code_interpreter: CodeInterpreterCall


class RankingOptions(TypedDict):
    ranker: str
    score_threshold: float


class ResultText(TypedDict):
    type: Literal["text"]
    text: str


class _FileSearchResultRequired(TypedDict):
    file_id: str
    file_name: str
    score: float


class FileSearchResult(_FileSearchResultRequired, total=False):
    # Only with `include[]=step_details.tool_calls[*].file_search.results[*].content`.
    content: list[ResultText]


class FileSearchCall(TypedDict):
    ranking_options: RankingOptions
    results: list[FileSearchResult]


class FileSearchToolCall(TypedDict):
    id: str
    type: Literal["file_search"]
    file_search: FileSearchCall


ToolCall = FunctionToolCall | CodeInterpreterToolCall | FileSearchToolCall


class ToolCallsDetails(TypedDict):
    type: Literal["tool_calls"]
    tool_calls: list[ToolCall]


StepDetails = MessageCreationDetails | ToolCallsDetails


class RunStep(TypedDict):
    id: str
    object: Literal["thread.run.step"]
    created_at: int
    assistant_id: str
    thread_id: str
    run_id: str
    type: Literal["message_creation", "tool_calls"]
    status: StepStatus
    step_details: StepDetails
    last_error: LastError | None
    expired_at: int | None
    # An extension: the spec names it `expired_at`; the real API also sent `expires_at`.
    expires_at: int | None
    cancelled_at: int | None
    failed_at: int | None
    completed_at: int | None
    metadata: Metadata
    usage: Usage | None


# -- stream event data -------------------------------------------------------------------


class TextDelta(TypedDict, total=False):
    value: str
    annotations: list[Annotation]


class TextDeltaPart(TypedDict):
    index: int
    type: Literal["text"]
    text: TextDelta


class ImageFileDeltaPart(TypedDict):
    index: int
    type: Literal["image_file"]
    image_file: ImageFile


class RefusalDeltaPart(TypedDict):
    index: int
    type: Literal["refusal"]
    refusal: str


MessageDeltaContent = TextDeltaPart | ImageFileDeltaPart | RefusalDeltaPart


class MessageDeltaBody(TypedDict):
    content: list[MessageDeltaContent]


class MessageDelta(TypedDict):
    """`thread.message.delta`: one content part's new piece."""

    id: str
    object: Literal["thread.message.delta"]
    delta: MessageDeltaBody


class ToolCallsDeltaDetails(TypedDict):
    type: Literal["tool_calls"]
    # Entries carry `index` and the pieces of one call that changed (first its id and type).
    tool_calls: list[dict[str, Any]]


class RunStepDeltaBody(TypedDict):
    step_details: ToolCallsDeltaDetails


class RunStepDelta(TypedDict):
    """`thread.run.step.delta`: a tool call's new pieces."""

    id: str
    object: Literal["thread.run.step.delta"]
    delta: RunStepDeltaBody


def message_delta(message_id: str, part: MessageDeltaContent) -> MessageDelta:
    return {"id": message_id, "object": "thread.message.delta", "delta": {"content": [part]}}


def step_delta(step_id: str, tool_call: dict[str, Any]) -> RunStepDelta:
    return {
        "id": step_id,
        "object": "thread.run.step.delta",
        "delta": {"step_details": {"type": "tool_calls", "tool_calls": [tool_call]}},
    }


#: The data each stream event carries, by event name (`thread.run.*` share the Run …).
#: `done` carries the text `[DONE]`, not JSON.
STREAM_EVENT_DATA: dict[str, type] = {
    "thread.created": Thread,
    **{
        f"thread.run.{s}": Run
        for s in (
            "created",
            "queued",
            "in_progress",
            "requires_action",
            "completed",
            "incomplete",
            "failed",
            "cancelling",
            "cancelled",
            "expired",
        )
    },
    **{
        f"thread.run.step.{s}": RunStep
        for s in ("created", "in_progress", "completed", "failed", "cancelled", "expired")
    },
    "thread.run.step.delta": RunStepDelta,
    **{
        f"thread.message.{s}": Message
        for s in ("created", "in_progress", "completed", "incomplete")
    },
    "thread.message.delta": MessageDelta,
    "error": ErrorDetail,
}


# -- constructors ------------------------------------------------------------------------


def run_object(
    *,
    thread_id: str,
    assistant_id: str,
    model: str,
    instructions: str,
    tools: list[dict[str, JSONValue]],
    tool_resources: ToolResourcesWire,
    metadata: Metadata,
    temperature: float | None,
    top_p: float | None,
    max_prompt_tokens: int | None,
    max_completion_tokens: int | None,
    truncation_strategy: TruncationStrategy,
    tool_choice: JSONValue,
    parallel_tool_calls: bool,
    response_format: JSONValue,
    expires_in: int,
) -> Run:
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


def step_object(
    run: Run, step_type: Literal["message_creation", "tool_calls"], details: StepDetails
) -> RunStep:
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


def usage_object(prompt: int, completion: int) -> Usage:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def step_wire(body: dict[str, Any], include_content: bool) -> RunStep:
    """A stored step as the API shows it: file_search result `content` only when
    `include[]` asked for it (the stored body has it)."""
    out = dict(body)
    details = out.get("step_details") or {}
    if details.get("type") == "tool_calls":
        calls = []
        for call in details["tool_calls"]:
            if (
                call.get("type") == "file_search"
                and not include_content
                and call["file_search"].get("results")
            ):
                results = [
                    {k: v for k, v in r.items() if k != "content"}
                    for r in call["file_search"]["results"]
                ]
                call = {**call, "file_search": {**call["file_search"], "results": results}}
            calls.append(call)
        out["step_details"] = {"type": "tool_calls", "tool_calls": calls}
    return cast(RunStep, out)


# -- untyped, for the engine and the run service (same objects, `dict[str, Any]`) ----------


def new_run(
    *,
    thread_id: str,
    assistant_id: str,
    model: str,
    instructions: str,
    tools: list[dict[str, Any]],
    tool_resources: ToolResourcesWire,
    metadata: dict[str, str],
    temperature: float | None,
    top_p: float | None,
    max_prompt_tokens: int | None,
    max_completion_tokens: int | None,
    truncation_strategy: dict[str, Any],
    tool_choice: Any,
    parallel_tool_calls: bool,
    response_format: Any,
    expires_in: int,
) -> dict[str, Any]:
    return cast(
        dict[str, Any],
        run_object(
            thread_id=thread_id,
            assistant_id=assistant_id,
            model=model,
            instructions=instructions,
            tools=tools,
            tool_resources=tool_resources,
            metadata=metadata,
            temperature=temperature,
            top_p=top_p,
            max_prompt_tokens=max_prompt_tokens,
            max_completion_tokens=max_completion_tokens,
            truncation_strategy=cast(TruncationStrategy, truncation_strategy),
            tool_choice=tool_choice,
            parallel_tool_calls=parallel_tool_calls,
            response_format=response_format,
            expires_in=expires_in,
        ),
    )


def new_step(run: dict[str, Any], step_type: str, details: dict[str, Any]) -> dict[str, Any]:
    return cast(
        dict[str, Any],
        step_object(cast(Run, run), cast(Any, step_type), cast(StepDetails, details)),
    )


def step_view(body: dict[str, Any], include_content: bool) -> dict[str, Any]:
    """`step_wire` as an untyped dict."""
    return cast(dict[str, Any], step_wire(body, include_content))
