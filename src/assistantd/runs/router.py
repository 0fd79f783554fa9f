from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Response

from assistantd.api.deps import Caller, Runtime, UoW, check_id
from assistantd.core.db import UnitOfWork
from assistantd.core.errors import InvalidRequest
from assistantd.core.http import JSONResponse
from assistantd.core.pagination import ListParams, list_params
from assistantd.events.sse import frames, sse_response
from assistantd.runs import service
from assistantd.runs.objects import TERMINAL
from assistantd.runs.runtime import RunRuntime
from assistantd.runs.schemas import RunCreate, RunModify, SubmitToolOutputs, ThreadAndRunCreate

router = APIRouter(tags=["runs"])

# How long a poll-helper GET of a moving run may wait for it to settle.
LONG_POLL_SECONDS = 2.0
# Largest event id a resume may name (JavaScript's safe integers; no log comes near it).
MAX_EVENT_ID = 2**53 - 1


async def include_param(
    include_brackets: Annotated[list[str] | None, Query(alias="include[]")] = None,
    include: Annotated[list[str] | None, Query()] = None,
) -> list[str]:
    """Both SDKs send `include[]=…` (brackets style); plain `include` is accepted too."""
    return [*(include_brackets or []), *(include or [])]


Include = Annotated[list[str], Depends(include_param)]


def run_response(rt: RunRuntime, run: dict[str, Any]) -> JSONResponse:
    # The SDK poll helpers wait this long between polls (their default is 1–5 s).
    return JSONResponse(run, headers={"openai-poll-after-ms": str(rt.settings.poll_after_ms)})


def _ids(thread_id: str, run_id: str | None = None) -> None:
    check_id(thread_id, "thread_", "thread_id")
    if run_id is not None:
        check_id(run_id, "run_", "run_id")


async def stream_run(uow: UnitOfWork, rt: RunRuntime, run_id: str, after: int = 0) -> Response:
    """Commit (the dispatcher then announces and starts the run), and stream the run's
    events after seq `after`."""
    await uow.commit()
    return _follow(rt, run_id, after)


def _follow(rt: RunRuntime, run_id: str, after: int) -> Response:
    return sse_response(
        frames(rt.bus, run_id, after, keepalive=rt.settings.stream_keepalive_seconds)
    )


@router.post("/v1/threads/runs")
async def create_thread_and_run(
    body: ThreadAndRunCreate, uow: UoW, caller: Caller, rt: Runtime
) -> Any:
    _thread, run = await service.create_thread_and_run(uow, caller, rt, body)
    if body.stream:
        return await stream_run(uow, rt, run["id"])
    return run_response(rt, run)


@router.post("/v1/threads/{thread_id}/runs")
async def create_run(
    thread_id: str, body: RunCreate, uow: UoW, caller: Caller, rt: Runtime, include: Include
) -> Any:
    _ids(thread_id)
    run = await service.create(uow, caller, rt, thread_id, body, include)
    if body.stream:
        return await stream_run(uow, rt, run["id"])
    return run_response(rt, run)


@router.get("/v1/threads/{thread_id}/runs")
async def list_runs(
    thread_id: str, uow: UoW, caller: Caller, params: Annotated[ListParams, Depends(list_params)]
) -> JSONResponse:
    _ids(thread_id)
    return JSONResponse(await service.list_(uow, caller, thread_id, params))


@router.get("/v1/threads/{thread_id}/runs/{run_id}")
async def retrieve_run(
    thread_id: str,
    run_id: str,
    uow: UoW,
    caller: Caller,
    rt: Runtime,
    poll_helper: Annotated[str | None, Header(alias="x-stainless-poll-helper")] = None,
) -> JSONResponse:
    _ids(thread_id, run_id)
    run = await service.retrieve(uow, caller, thread_id, run_id)
    if poll_helper == "true" and run["status"] in service.MOVING:
        # An SDK poll helper is waiting for the run to settle: answer when it does (or
        # after a short while) instead of making it sleep and ask again.
        await uow.commit()
        if await service.wait_until_settled(rt, run_id, LONG_POLL_SECONDS):
            run = await service.retrieve(uow, caller, thread_id, run_id)
    return run_response(rt, run)


@router.post("/v1/threads/{thread_id}/runs/{run_id}")
async def modify_run(
    thread_id: str, run_id: str, body: RunModify, uow: UoW, caller: Caller, rt: Runtime
) -> JSONResponse:
    _ids(thread_id, run_id)
    return run_response(rt, await service.modify(uow, caller, thread_id, run_id, body))


@router.post("/v1/threads/{thread_id}/runs/{run_id}/cancel")
async def cancel_run(
    thread_id: str, run_id: str, uow: UoW, caller: Caller, rt: Runtime
) -> JSONResponse:
    _ids(thread_id, run_id)
    return run_response(rt, await service.cancel(uow, caller, rt, thread_id, run_id))


@router.post("/v1/threads/{thread_id}/runs/{run_id}/submit_tool_outputs")
async def submit_tool_outputs(
    thread_id: str, run_id: str, body: SubmitToolOutputs, uow: UoW, caller: Caller, rt: Runtime
) -> Any:
    _ids(thread_id, run_id)
    start = await rt.bus.position(run_id)
    run = await service.submit_tool_outputs(uow, caller, rt, thread_id, run_id, body)
    if body.stream:
        return await stream_run(uow, rt, run_id, start)
    return run_response(rt, run)


@router.get("/v1/threads/{thread_id}/runs/{run_id}/steps")
async def list_run_steps(
    thread_id: str,
    run_id: str,
    uow: UoW,
    caller: Caller,
    params: Annotated[ListParams, Depends(list_params)],
    include: Include,
) -> JSONResponse:
    _ids(thread_id, run_id)
    return JSONResponse(await service.list_steps(uow, caller, thread_id, run_id, params, include))


@router.get("/v1/threads/{thread_id}/runs/{run_id}/steps/{step_id}")
async def retrieve_run_step(
    thread_id: str, run_id: str, step_id: str, uow: UoW, caller: Caller, include: Include
) -> JSONResponse:
    _ids(thread_id, run_id)
    check_id(step_id, "step_", "step_id")
    return JSONResponse(
        await service.retrieve_step(uow, caller, thread_id, run_id, step_id, include)
    )


@router.get("/v1/threads/{thread_id}/runs/{run_id}/events")
async def run_events(
    thread_id: str,
    run_id: str,
    uow: UoW,
    caller: Caller,
    rt: Runtime,
    last_event_id: Annotated[str | None, Header()] = None,
    after: Annotated[int | None, Query(ge=0, le=MAX_EVENT_ID)] = None,
) -> Any:
    """Extension: replay the run's events (from `Last-Event-ID` or `after`) and follow live ones."""
    _ids(thread_id, run_id)
    run = await service.retrieve(uow, caller, thread_id, run_id)
    start = after or 0
    if last_event_id is not None:
        try:
            start = int(last_event_id)
        except ValueError:
            start = -1
        if not 0 <= start <= MAX_EVENT_ID:
            raise InvalidRequest(
                f"Invalid 'Last-Event-ID': {last_event_id!r}; expected an event id.",
                param="Last-Event-ID",
            )
    await uow.commit()
    if run["status"] in TERMINAL and start >= await rt.bus.position(run_id):
        # The client has seen every event of a run that will publish no more: nothing to
        # follow, so the stream ends at once instead of waiting for a `done` that never comes.
        return sse_response(_nothing())
    return _follow(rt, run_id, start)


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield b""
