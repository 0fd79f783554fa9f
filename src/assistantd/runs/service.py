"""Rules and state changes for runs and run steps, on the API side.

Runs execute in the worker (`worker/`); here they are created, read, modified, cancelled
and given tool outputs. Each change hands its events to the dispatcher (`runs/dispatch.py`),
which publishes them after the commit and starts or stops the run.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy.exc import IntegrityError

from assistantd.assistants import service as assistants
from assistantd.assistants.wire import Assistant
from assistantd.core.db import UnitOfWork
from assistantd.core.errors import ActiveRunConflict, InvalidRequest, not_found
from assistantd.core.ids import next_seq, now_seconds
from assistantd.core.pagination import ListParams
from assistantd.core.resources import tool_resources_object
from assistantd.core.schemas import response_format_wire, tool_wire
from assistantd.core.wire import ListPage, ToolResourcesWire, list_of
from assistantd.keys.service import Principal
from assistantd.messages import service as messages
from assistantd.runs import lifecycle
from assistantd.runs.dispatch import Announcement
from assistantd.runs.models import RunRow
from assistantd.runs.objects import new_run as new_run_body
from assistantd.runs.objects import step_view
from assistantd.runs.repository import RunRepository, RunStepRepository
from assistantd.runs.runtime import RunRuntime
from assistantd.runs.schemas import (
    RunCreate,
    RunModify,
    RunOptions,
    SubmitToolOutputs,
    ThreadAndRunCreate,
    tool_choice_wire,
)
from assistantd.runs.state import RunState, StepState
from assistantd.threads import service as threads
from assistantd.threads.repository import ThreadRepository
from assistantd.threads.schemas import ThreadCreate
from assistantd.threads.wire import Thread
from assistantd.vector_stores import service as vector_stores
from assistantd.vector_stores.references import References

FILE_SEARCH_CONTENT = "step_details.tool_calls[*].file_search.results[*].content"


def _validate_include(include: list[str]) -> bool:
    for value in include:
        if value != FILE_SEARCH_CONTENT:
            raise InvalidRequest(
                f"Invalid value: '{value}'. Supported values are: '{FILE_SEARCH_CONTENT}'.",
                param="include",
            )
    return bool(include)


async def _build_run(
    uow: UnitOfWork,
    caller: Principal,
    rt: RunRuntime,
    thread_id: str,
    req: RunOptions,
    assistant: Assistant,
    *,
    instructions_extra: str | None,
    include_content: bool,
    tool_resources: ToolResourcesWire | None = None,
) -> RunRow:
    fields = req.model_fields_set
    instructions = (
        req.instructions if req.instructions is not None else (assistant.get("instructions") or "")
    )
    if instructions_extra:
        instructions = (
            f"{instructions}\n\n{instructions_extra}" if instructions else instructions_extra
        )
    tools = (
        [tool_wire(t) for t in req.tools]
        if req.tools is not None
        else list(assistant.get("tools", []))
    )
    tool_choice = tool_choice_wire(req.tool_choice)
    if isinstance(tool_choice, dict) and tool_choice.get("type") == "function":
        names = {t["function"]["name"] for t in tools if t["type"] == "function"}
        wanted = tool_choice["function"]["name"]
        if wanted not in names:
            raise InvalidRequest(
                f"Invalid 'tool_choice': function '{wanted}' is not one of the run's tools.",
                param="tool_choice",
            )
    elif isinstance(tool_choice, dict) and tool_choice["type"] not in {t["type"] for t in tools}:
        raise InvalidRequest(
            f"Invalid 'tool_choice': tool '{tool_choice['type']}' is not one of the run's tools.",
            param="tool_choice",
        )
    body = new_run_body(
        thread_id=thread_id,
        assistant_id=req.assistant_id,
        model=req.model or assistant["model"],
        instructions=instructions,
        tools=tools,
        tool_resources=tool_resources or {},
        metadata=req.metadata or {},
        temperature=req.temperature
        if "temperature" in fields and req.temperature is not None
        else assistant.get("temperature", 1.0),
        top_p=req.top_p
        if "top_p" in fields and req.top_p is not None
        else assistant.get("top_p", 1.0),
        max_prompt_tokens=req.max_prompt_tokens,
        max_completion_tokens=req.max_completion_tokens,
        truncation_strategy=(
            req.truncation_strategy.model_dump()
            if req.truncation_strategy
            else {"type": "auto", "last_messages": None}
        ),
        tool_choice=tool_choice,
        parallel_tool_calls=req.parallel_tool_calls,
        response_format=(
            response_format_wire(req.response_format)
            if req.response_format is not None
            else assistant.get("response_format", "auto")
        ),
        expires_in=rt.settings.run_expires_seconds,
    )
    # What the engine needs that the wire object does not show.
    state = RunState(include_content=include_content, api_key_id=caller.key_id)
    if rt.limits is not None:
        await rt.limits.admit(uow.session, caller.project_id, body["model"])
    row = RunRow(
        id=body["id"],
        project_id=caller.project_id,
        seq=next_seq(),
        created_at=body["created_at"],
        thread_id=thread_id,
        status="queued",
        active_thread_id=thread_id,
        body=body,
        state=state.dump(),
    )
    # This process's worker takes the run in the same transaction (no separate claim).
    lease = rt.dispatcher.lease_for_create()
    if lease is not None:
        row.lease_owner, row.lease_expires_at = lease
    repo = RunRepository(uow.session)
    try:
        if uow.session.get_bind().dialect.name == "sqlite":
            # BEGIN IMMEDIATE serializes writers: the active-run check above cannot be raced.
            await repo.insert_untracked(row)
        else:
            # A concurrent create may win between the check and this insert; the savepoint
            # keeps the transaction usable to name the winner.
            async with uow.session.begin_nested():
                await repo.insert_untracked(row)
    except IntegrityError:
        # Lost the race for the thread lock to a concurrent create.
        active = await repo.active_for_thread(thread_id)
        raise ActiveRunConflict(
            f"Thread {thread_id} already has an active run {active or '(just started)'}."
        ) from None
    return row


def _announce(
    uow: UnitOfWork, rt: RunRuntime, row: RunRow, run: dict[str, Any], thread: Thread | None = None
) -> None:
    # Event data is untyped on its way to the bus (`Announcement`).
    events: list[Announcement] = (
        [] if thread is None else [("thread.created", cast(dict[str, Any], thread))]
    )
    events += [("thread.run.created", run), ("thread.run.queued", run)]
    # The worker starts from the row as created (it holds the lease): no read back.
    rt.dispatcher.submit(
        uow, run["id"], events, created=(row.project_id, row.body, RunState.load(row.state))
    )


async def create(
    uow: UnitOfWork,
    caller: Principal,
    rt: RunRuntime,
    thread_id: str,
    req: RunCreate,
    include: list[str],
) -> dict[str, Any]:
    include_content = _validate_include(include)
    await ThreadRepository(uow.session).require_read(caller.project_id, thread_id)
    active = await RunRepository(uow.session).active_for_thread(thread_id)
    if active is not None:
        raise ActiveRunConflict(f"Thread {thread_id} already has an active run {active}.")
    assistant = await assistants.retrieve_object(uow, caller, req.assistant_id)
    await (
        References()
        .messages(req.additional_messages, "additional_messages")
        .check(uow.session, caller.project_id)
    )
    if req.additional_messages:
        await messages.add_user_messages(uow, caller, thread_id, req.additional_messages, rt.stores)
    row = await _build_run(
        uow,
        caller,
        rt,
        thread_id,
        req,
        assistant,
        instructions_extra=req.additional_instructions,
        include_content=include_content,
    )
    run = dict(row.body)
    _announce(uow, rt, row, run)
    return run


async def create_thread_and_run(
    uow: UnitOfWork, caller: Principal, rt: RunRuntime, req: ThreadAndRunCreate
) -> tuple[Thread, dict[str, Any]]:
    assistant = await assistants.retrieve_object(uow, caller, req.assistant_id)
    treq = req.thread or ThreadCreate()
    await (
        threads.references(treq, "thread")
        .tool_resources(req.tool_resources)
        .check(uow.session, caller.project_id)
    )
    thread = await threads.create_object(uow, caller, treq, rt.stores, checked=True)
    # The top-level resources are this run's (they replace the assistant's for it); the
    # thread keeps only its own.
    resources = await vector_stores.resolve_store_helpers(
        uow,
        rt.stores,
        caller.project_id,
        req.tool_resources,
        expires_after_days=vector_stores.THREAD_STORE_EXPIRY_DAYS,
    )
    row = await _build_run(
        uow,
        caller,
        rt,
        thread["id"],
        req,
        assistant,
        instructions_extra=None,
        include_content=False,
        tool_resources=tool_resources_object(resources),
    )
    run = dict(row.body)
    _announce(uow, rt, row, run, thread)
    return thread, run


async def retrieve(
    uow: UnitOfWork, caller: Principal, thread_id: str, run_id: str
) -> dict[str, Any]:
    # A run is deleted with its thread, so finding it proves the thread; only a miss needs
    # the thread looked up, to say which of the two is not there. (Polls hit this.)
    row = await RunRepository(uow.session).read(caller.project_id, run_id, thread_id=thread_id)
    if row is None:
        await ThreadRepository(uow.session).require_read(caller.project_id, thread_id)
        raise not_found("run", run_id)
    return dict(row.body)


async def list_(
    uow: UnitOfWork, caller: Principal, thread_id: str, params: ListParams
) -> ListPage[dict[str, Any]]:
    await ThreadRepository(uow.session).require_read(caller.project_id, thread_id)
    rows, more = await RunRepository(uow.session).list_page(
        caller.project_id, params, thread_id=thread_id
    )
    return list_of([dict(r.body) for r in rows], more)


async def modify(
    uow: UnitOfWork, caller: Principal, thread_id: str, run_id: str, req: RunModify
) -> dict[str, Any]:
    await ThreadRepository(uow.session).require_read(caller.project_id, thread_id)
    repo = RunRepository(uow.session)
    row = await repo.require_read(caller.project_id, run_id, thread_id=thread_id)
    body = dict(row.body)
    if "metadata" in req.model_fields_set:
        body["metadata"] = req.metadata or {}
        # The one UPDATE every run change takes (`repository.py::body_update`).
        await repo.write("run", body)
    return body


async def cancel(
    uow: UnitOfWork, caller: Principal, rt: RunRuntime, thread_id: str, run_id: str
) -> dict[str, Any]:
    await ThreadRepository(uow.session).require_read(caller.project_id, thread_id)
    repo = RunRepository(uow.session)
    row = await repo.require_read(caller.project_id, run_id, thread_id=thread_id)
    decision = lifecycle.cancel_decision(row.status)
    if decision == "refuse":
        raise InvalidRequest(f"Cannot cancel run with status '{row.status}'.")
    if decision == "already":
        return dict(row.body)
    body = dict(row.body, status="cancelling")
    await repo.write("run", body)
    run = dict(body)
    rt.dispatcher.cancel(uow, run_id, [("thread.run.cancelling", run)])
    return run


async def submit_tool_outputs(
    uow: UnitOfWork,
    caller: Principal,
    rt: RunRuntime,
    thread_id: str,
    run_id: str,
    req: SubmitToolOutputs,
) -> dict[str, Any]:
    await ThreadRepository(uow.session).require_read(caller.project_id, thread_id)
    repo = RunRepository(uow.session)
    row = await repo.require_read(caller.project_id, run_id, thread_id=thread_id)
    if not lifecycle.accepts_tool_outputs(row.status):
        raise InvalidRequest(f'Runs in status "{row.status}" do not accept tool outputs.')
    if row.body.get("expires_at") and now_seconds() >= row.body["expires_at"]:
        raise InvalidRequest(
            f"Run {run_id} has expired; its tool outputs can no longer be submitted."
        )
    pending = lifecycle.pending_call_ids(row.body)
    given = [o.tool_call_id for o in req.tool_outputs]
    if sorted(given) != sorted(pending) or len(set(given)) != len(given):
        raise InvalidRequest(f"Expected tool outputs for call_ids {pending}, got {given}")
    outputs = {o.tool_call_id: o.output for o in req.tool_outputs}
    if rt.limits is not None:
        await rt.limits.admit(uow.session, caller.project_id, row.body["model"])

    state = RunState.load(row.state)
    step_row = (
        await RunStepRepository(uow.session).read(caller.project_id, state.pending_step_id)
        if state.pending_step_id is not None
        else None
    )
    if step_row is None:  # pragma: no cover - the engine always records it
        raise InvalidRequest(f"Run {run_id} has no pending tool step.")
    step_state = StepState.load(step_row.state)
    step, body = lifecycle.resume_with_outputs(
        row.body, state, step_row.body, step_state, outputs, now_seconds()
    )
    await repo.write("step", step, step_state)
    await repo.write("run", body, state)
    run = dict(body)
    rt.dispatcher.submit(
        uow,
        run_id,
        [
            ("thread.run.step.completed", step_view(step, state.include_content)),
            ("thread.run.queued", run),
        ],
    )
    return run


async def list_steps(
    uow: UnitOfWork,
    caller: Principal,
    thread_id: str,
    run_id: str,
    params: ListParams,
    include: list[str],
) -> ListPage[dict[str, Any]]:
    include_content = _validate_include(include)
    await ThreadRepository(uow.session).require_read(caller.project_id, thread_id)
    await RunRepository(uow.session).require(caller.project_id, run_id, thread_id=thread_id)
    rows, more = await RunStepRepository(uow.session).list_page(
        caller.project_id, params, run_id=run_id
    )
    return list_of([step_view(r.body, include_content) for r in rows], more)


async def retrieve_step(
    uow: UnitOfWork,
    caller: Principal,
    thread_id: str,
    run_id: str,
    step_id: str,
    include: list[str],
) -> dict[str, Any]:
    include_content = _validate_include(include)
    await ThreadRepository(uow.session).require_read(caller.project_id, thread_id)
    await RunRepository(uow.session).require(caller.project_id, run_id, thread_id=thread_id)
    row = await RunStepRepository(uow.session).require(caller.project_id, step_id, run_id=run_id)
    return step_view(row.body, include_content)


# Statuses a poll helper keeps polling through (the SDKs stop on every other one).
MOVING = frozenset({"queued", "in_progress", "cancelling"})
SETTLING_EVENTS = frozenset(
    {
        "thread.run.requires_action",
        "thread.run.completed",
        "thread.run.failed",
        "thread.run.cancelled",
        "thread.run.expired",
        "thread.run.incomplete",
    }
)


async def wait_until_settled(rt: RunRuntime, run_id: str, within: float) -> bool:
    """Wait for the run's next pause or end on the event bus; False on timeout."""
    import asyncio

    async def settle() -> bool:
        start = max(0, await rt.bus.position(run_id) - 1)
        async for event in rt.bus.subscribe(run_id, start):
            if event is not None and event.event in SETTLING_EVENTS:
                return True
        return True  # `done`: whatever happened, it is in the database now

    try:
        return await asyncio.wait_for(settle(), within)
    except TimeoutError:
        return False
