"""A run's lifecycle, as data and pure functions: which status may follow which, the
timestamp each ending sets, how a run's ending closes its open step and message, and which
statuses release the thread lock and the lease.

Everything that changes a run's status reads it here: the API side (`runs/service.py`:
cancel, submit_tool_outputs), the engine (`worker/engine.py`: start, pause, every ending)
and the store (`worker/store.py`, the columns a status sets). Nothing here does I/O; the
functions change the bodies they are given (in place, keeping their key order, which is
the wire's) and return nothing unless they say so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from assistantd.runs.objects import ACTIVE, TERMINAL, Usage, usage_object
from assistantd.runs.state import RunState, StepState

#: Each status and the statuses a run may move to from it. A run is resumed `in_progress`
#: after a crash, and an execution that ends as a cancel arrives may still end as it would
#: have (`cancelling` -> `completed`); every active status can expire or fail.
TRANSITIONS: Mapping[str, frozenset[str]] = {
    "queued": frozenset({"in_progress", "cancelling", "cancelled", "expired", "failed"}),
    "in_progress": frozenset(
        {
            "in_progress",
            "requires_action",
            "cancelling",
            "completed",
            "incomplete",
            "failed",
            "cancelled",
            "expired",
        }
    ),
    "requires_action": frozenset({"queued", "cancelling", "cancelled", "expired", "failed"}),
    "cancelling": frozenset({"cancelled", "completed", "incomplete", "failed", "expired"}),
    **{status: frozenset() for status in TERMINAL},
}

#: The run's timestamp for each ending that has one (`expired` keeps `expires_at`).
RUN_ENDED_AT: Mapping[str, str] = {
    "completed": "completed_at",
    "cancelled": "cancelled_at",
    "failed": "failed_at",
}
#: A step's timestamp for each of its endings.
STEP_ENDED_AT: Mapping[str, str] = {
    "completed": "completed_at",
    "cancelled": "cancelled_at",
    "failed": "failed_at",
    "expired": "expired_at",
}
#: The `incomplete_details.reason` of the message open when the run ended so; any other
#: ending (a token limit) leaves it `max_tokens`.
MESSAGE_REASON: Mapping[str, str] = {
    "cancelled": "run_cancelled",
    "failed": "run_failed",
    "expired": "run_expired",
}
#: The status of a step open when the run ended so; any other ending completes it.
STEP_ENDING: Mapping[str, str] = {
    "cancelled": "cancelled",
    "failed": "failed",
    "expired": "expired",
}
#: The codes a run step's `last_error` may carry (a run's may also say `invalid_prompt`).
STEP_ERROR_CODES = ("server_error", "rate_limit_exceeded")


def may_move(current: str, to: str) -> bool:
    return to in TRANSITIONS.get(current, frozenset())


def is_active(status: str) -> bool:
    return status in ACTIVE


def is_terminal(status: str) -> bool:
    return status in TERMINAL


# -- the lock and the lease --------------------------------------------------------------


def held_columns(status: str) -> dict[str, Any]:
    """The run row's lock and lease columns a status sets: an ending releases the thread
    lock (`active_thread_id`) and the lease; a pause for tool outputs releases the lease
    (nobody executes a run that waits for the client). Other statuses change neither."""
    if status in TERMINAL:
        return {"active_thread_id": None, "lease_owner": None, "lease_expires_at": None}
    if status == "requires_action":
        return {"lease_owner": None, "lease_expires_at": None}
    return {}


# -- tokens ------------------------------------------------------------------------------


def used_tokens(state: RunState) -> tuple[int, int]:
    """(prompt, completion) tokens the run's model calls have used so far."""
    return state.usage


def add_usage(state: RunState, prompt_tokens: int, completion_tokens: int) -> None:
    used_prompt, used_completion = state.usage
    state.usage = (used_prompt + prompt_tokens, used_completion + completion_tokens)


# -- endings -----------------------------------------------------------------------------


def step_error(error: Mapping[str, str] | None) -> dict[str, str] | None:
    """The run's `last_error` as the step that was open when it failed carries it."""
    if error is None:
        return None
    code = error.get("code")
    return {
        "code": code if code in STEP_ERROR_CODES else "server_error",
        "message": error.get("message", ""),
    }


def message_reason(run_status: str) -> str | None:
    """Why a message still open is incomplete when the run ends so (None: not the run's
    ending; the caller says, or it is a token limit)."""
    return MESSAGE_REASON.get(run_status)


def step_status_for_run(run_status: str) -> str:
    """The status a step still open takes when the run ends so."""
    return STEP_ENDING.get(run_status, "completed")


def step_status_for_message(message_status: str, reason: str | None) -> str:
    """The status of a message's creation step when the message closes so: a run's
    cancel, failure or expiry says which; otherwise (completed or cut off) it completed."""
    for run_status, run_reason in MESSAGE_REASON.items():
        if reason == run_reason:
            return STEP_ENDING[run_status]
    return {"completed": "completed", "incomplete": "completed"}.get(message_status, message_status)


def end_step(
    step: dict[str, Any],
    state: StepState,
    status: str,
    usage: Usage | None,
    now: int,
    last_error: dict[str, str] | None = None,
) -> None:
    """Close a step: its status, timestamp and usage (the usage it kept from its model call
    when none is given), and the error that ended it."""
    step["status"] = status
    step[STEP_ENDED_AT[status]] = now
    step["usage"] = usage if usage is not None else state.usage or usage_object(0, 0)
    state.usage = None
    if last_error is not None:
        step["last_error"] = last_error


def end_message(message: dict[str, Any], status: str, now: int, reason: str | None) -> None:
    """Close a message `completed`, or `incomplete` for `reason`."""
    message["status"] = status
    if status == "completed":
        message["completed_at"] = now
    else:
        message["incomplete_at"] = now
        message["incomplete_details"] = {"reason": reason}


def left_open_message(message: Mapping[str, Any], reason: str, now: int) -> dict[str, Any]:
    """A message an ending finds open that the engine did not track: incomplete for `reason`."""
    return dict(
        message, status="incomplete", incomplete_at=now, incomplete_details={"reason": reason}
    )


def end_run(run: dict[str, Any], state: RunState, status: str, now: int, **fields: Any) -> None:
    """Give the run its terminal status: no required action, its timestamp, no expiry
    left (unless that is how it ended), and the usage of all its model calls."""
    run.update(status=status, required_action=None, **fields)
    state.pending_step_id = None
    stamp = RUN_ENDED_AT.get(status)
    if stamp:
        run[stamp] = now
    if status != "expired":
        run["expires_at"] = None
    run["usage"] = usage_object(*used_tokens(state))


# -- pauses and resumes ------------------------------------------------------------------


def pause_for_outputs(
    run: dict[str, Any],
    state: RunState,
    step: dict[str, Any],
    step_state: StepState,
    usage: Usage,
    calls: list[dict[str, Any]],
) -> None:
    """The run waits for the client's outputs of function `calls` ({id, type, function});
    the tool step stays open, keeping its model call's usage for when it closes."""
    step_state.usage = usage
    run.update(
        status="requires_action",
        required_action={
            "type": "submit_tool_outputs",
            "submit_tool_outputs": {"tool_calls": calls},
        },
    )
    state.pending_step_id = step["id"]


def pending_call_ids(run: Mapping[str, Any]) -> list[str]:
    return [c["id"] for c in run["required_action"]["submit_tool_outputs"]["tool_calls"]]


def resume_with_outputs(
    run: Mapping[str, Any],
    state: RunState,
    step: Mapping[str, Any],
    step_state: StepState,
    outputs: Mapping[str, str],
    now: int,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The (step, run) after the client's tool outputs: the step completed with the
    outputs in its function calls (the usage it kept), the run queued again (no step
    pending). `state` and `step_state` change in place."""
    calls = []
    for call in step["step_details"]["tool_calls"]:
        if call["type"] == "function" and call["id"] in outputs:
            call = {**call, "function": {**call["function"], "output": outputs[call["id"]]}}
        calls.append(call)
    new_step = dict(step)
    new_step.update(
        step_details={"type": "tool_calls", "tool_calls": calls},
        status="completed",
        completed_at=now,
        usage=step_state.usage or step.get("usage"),
    )
    step_state.usage = None
    new_run = dict(run, status="queued", required_action=None)
    state.pending_step_id = None
    return new_step, new_run


def cancel_decision(status: str) -> str:
    """What a cancel request does to a run in `status`: "cancel" (it becomes `cancelling`),
    "already" (it is cancelling: answer as it is) or "refuse" (it has ended)."""
    if status == "cancelling":
        return "already"
    return "cancel" if may_move(status, "cancelling") else "refuse"


def accepts_tool_outputs(status: str) -> bool:
    return status == "requires_action"
