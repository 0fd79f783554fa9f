"""The run lifecycle (`runs/lifecycle.py`) without a database: transitions, timestamps,
how an ending closes the step and message left open, what releases the lock and lease."""

from __future__ import annotations

from typing import Any

import pytest

from assistantd.runs import lifecycle
from assistantd.runs.objects import ACTIVE, TERMINAL, new_step
from assistantd.runs.state import RunState, StepState
from assistantd.testing.runs import run_body


def _run(**over: Any) -> dict[str, Any]:
    return run_body(**{"thread_id": "thread_1", "assistant_id": "asst_1", **over})


def test_every_status_has_its_transitions_and_endings_lead_nowhere() -> None:
    assert set(lifecycle.TRANSITIONS) == ACTIVE | TERMINAL
    for status in TERMINAL:
        assert lifecycle.TRANSITIONS[status] == frozenset()
    for status in ACTIVE:
        # Any active run can still end: it expires, or fails on a fault of ours.
        assert {"expired", "failed"} <= lifecycle.TRANSITIONS[status], status
    for targets in lifecycle.TRANSITIONS.values():
        assert targets <= ACTIVE | TERMINAL


@pytest.mark.parametrize(
    ("current", "to", "ok"),
    [
        ("queued", "in_progress", True),
        ("in_progress", "requires_action", True),
        ("requires_action", "queued", True),
        ("requires_action", "in_progress", False),  # outputs queue the run; a worker starts it
        ("queued", "completed", False),
        ("completed", "cancelling", False),
        ("cancelling", "cancelled", True),
        ("unknown", "queued", False),
    ],
)
def test_may_move(current: str, to: str, ok: bool) -> None:
    assert lifecycle.may_move(current, to) is ok


@pytest.mark.parametrize(
    ("status", "decision"),
    [
        ("queued", "cancel"),
        ("in_progress", "cancel"),
        ("requires_action", "cancel"),
        ("cancelling", "already"),
        *((s, "refuse") for s in sorted(TERMINAL)),
    ],
)
def test_cancel_decision(status: str, decision: str) -> None:
    assert lifecycle.cancel_decision(status) == decision


def test_only_requires_action_accepts_tool_outputs() -> None:
    assert [s for s in sorted(ACTIVE | TERMINAL) if lifecycle.accepts_tool_outputs(s)] == [
        "requires_action"
    ]


def test_endings_release_lock_and_lease_and_a_pause_only_the_lease() -> None:
    for status in TERMINAL:
        assert lifecycle.held_columns(status) == {
            "active_thread_id": None,
            "lease_owner": None,
            "lease_expires_at": None,
        }
    assert lifecycle.held_columns("requires_action") == {
        "lease_owner": None,
        "lease_expires_at": None,
    }
    for status in ("queued", "in_progress", "cancelling"):
        assert lifecycle.held_columns(status) == {}


@pytest.mark.parametrize(
    ("status", "stamp", "keeps_expiry"),
    [
        ("completed", "completed_at", False),
        ("cancelled", "cancelled_at", False),
        ("failed", "failed_at", False),
        ("incomplete", None, False),
        ("expired", None, True),
    ],
)
def test_end_run_sets_its_timestamp_usage_and_clears_the_pause(
    status: str, stamp: str | None, keeps_expiry: bool
) -> None:
    run = _run(status="requires_action", required_action={"type": "submit_tool_outputs"})
    state = RunState(pending_step_id="step_1", usage=(10, 5))
    keys = list(run)
    expires_at = run["expires_at"]
    lifecycle.end_run(run, state, status, 1234, last_error=None)
    assert run["status"] == status and run["required_action"] is None
    assert state.pending_step_id is None
    assert list(run) == keys  # the wire's key order
    for name in ("completed_at", "cancelled_at", "failed_at"):
        assert run[name] == (1234 if name == stamp else None)
    assert run["expires_at"] == (expires_at if keeps_expiry else None)
    assert run["usage"] == {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}


def test_end_run_without_model_calls_has_zero_usage() -> None:
    run = _run()
    lifecycle.end_run(run, RunState(), "cancelled", 1)
    assert run["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


def test_usage_adds_up_over_model_calls() -> None:
    state = RunState()
    assert lifecycle.used_tokens(state) == (0, 0)
    lifecycle.add_usage(state, 7, 3)
    lifecycle.add_usage(state, 2, 1)
    assert lifecycle.used_tokens(state) == (9, 4)
    assert RunState.load(state.dump()).usage == (9, 4)


@pytest.mark.parametrize(
    ("run_status", "reason", "step_status"),
    [
        ("cancelled", "run_cancelled", "cancelled"),
        ("failed", "run_failed", "failed"),
        ("expired", "run_expired", "expired"),
        ("completed", None, "completed"),
        ("incomplete", None, "completed"),
    ],
)
def test_an_ending_maps_to_message_reason_and_step_status(
    run_status: str, reason: str | None, step_status: str
) -> None:
    assert lifecycle.message_reason(run_status) == reason
    assert lifecycle.step_status_for_run(run_status) == step_status
    if reason is not None:
        assert lifecycle.step_status_for_message("incomplete", reason) == step_status


@pytest.mark.parametrize(
    ("message_status", "reason", "step_status"),
    [
        ("completed", None, "completed"),
        ("incomplete", "max_tokens", "completed"),
        ("incomplete", "content_filter", "completed"),
        ("incomplete", "run_failed", "failed"),
    ],
)
def test_a_message_ending_maps_to_its_step(
    message_status: str, reason: str | None, step_status: str
) -> None:
    assert lifecycle.step_status_for_message(message_status, reason) == step_status


def test_end_step_takes_the_usage_it_kept_and_the_error() -> None:
    step = new_step(_run(), "tool_calls", {"type": "tool_calls", "tool_calls": []})
    keys = list(step)
    state = StepState(usage={"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3})
    error = {"code": "server_error", "message": "boom"}
    lifecycle.end_step(step, state, "failed", None, 99, error)
    assert list(step) == keys and state.usage is None
    assert (step["status"], step["failed_at"], step["last_error"]) == ("failed", 99, error)
    assert step["usage"] == {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    other = new_step(_run(), "message_creation", {"type": "message_creation"})
    lifecycle.end_step(other, StepState(), "expired", None, 5)
    assert other["expired_at"] == 5 and other["usage"]["total_tokens"] == 0


def test_end_message() -> None:
    done: dict[str, Any] = {
        "status": "in_progress",
        "completed_at": None,
        "incomplete_at": None,
        "incomplete_details": None,
    }
    cut = dict(done)
    lifecycle.end_message(done, "completed", 3, None)
    assert done == {
        "status": "completed",
        "completed_at": 3,
        "incomplete_at": None,
        "incomplete_details": None,
    }
    lifecycle.end_message(cut, "incomplete", 4, "run_cancelled")
    assert cut["incomplete_at"] == 4 and cut["incomplete_details"] == {"reason": "run_cancelled"}
    assert lifecycle.left_open_message(
        {"id": "msg_1", "status": "in_progress"}, "max_tokens", 5
    ) == {
        "id": "msg_1",
        "status": "incomplete",
        "incomplete_at": 5,
        "incomplete_details": {"reason": "max_tokens"},
    }


@pytest.mark.parametrize(
    ("code", "kept"),
    [
        ("rate_limit_exceeded", "rate_limit_exceeded"),
        ("server_error", "server_error"),
        ("invalid_prompt", "server_error"),  # a run's code a step may not carry
    ],
)
def test_step_error(code: str, kept: str) -> None:
    assert lifecycle.step_error({"code": code, "message": "m"}) == {"code": kept, "message": "m"}
    assert lifecycle.step_error(None) is None


def test_a_pause_and_its_resume() -> None:
    run = _run(status="in_progress")
    step = new_step(
        run,
        "tool_calls",
        {
            "type": "tool_calls",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "f", "arguments": "{}", "output": None},
                },
                {
                    "id": "call_2",
                    "type": "code_interpreter",
                    "code_interpreter": {"input": "", "outputs": []},
                },
            ],
        },
    )
    usage = {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}
    calls = [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    state, step_state = RunState(), StepState()
    keys = list(run)
    lifecycle.pause_for_outputs(run, state, step, step_state, usage, calls)
    assert run["status"] == "requires_action" and state.pending_step_id == step["id"]
    assert step_state.usage == usage and list(run) == keys
    assert lifecycle.pending_call_ids(run) == ["call_1"]

    new_step_body, queued = lifecycle.resume_with_outputs(
        run, state, step, step_state, {"call_1": "42"}, 77
    )
    assert queued["status"] == "queued" and queued["required_action"] is None
    assert state.pending_step_id is None and run["status"] == "requires_action"  # not changed
    assert new_step_body["status"] == "completed" and new_step_body["completed_at"] == 77
    assert new_step_body["usage"] == usage and step_state.usage is None
    first, second = new_step_body["step_details"]["tool_calls"]
    assert first["function"]["output"] == "42"
    assert second == step["step_details"]["tool_calls"][1]
    assert step["step_details"]["tool_calls"][0]["function"]["output"] is None  # not changed
