from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Request

from assistantd.api.deps import Caller, Stores, UoW, check_id
from assistantd.core.http import JSONResponse
from assistantd.core.pagination import ListParams, list_params
from assistantd.threads import service
from assistantd.threads.schemas import ThreadCreate, ThreadModify

router = APIRouter(prefix="/v1/threads", tags=["threads"])


@router.post("")
async def create_thread(
    uow: UoW, caller: Caller, stores: Stores, body: Annotated[ThreadCreate | None, Body()] = None
) -> JSONResponse:
    return JSONResponse(await service.create_object(uow, caller, body or ThreadCreate(), stores))


@router.get("")
async def list_threads(
    request: Request, uow: UoW, caller: Caller, params: Annotated[ListParams, Depends(list_params)]
) -> JSONResponse:
    """Extension (OpenAI has no thread list): the project's threads, newest first by
    default, filtered by `metadata[key]=value` query parameters."""
    filters = service.metadata_filters(request.query_params.multi_items())
    return JSONResponse(await service.list_(uow, caller, params, filters))


@router.get("/{thread_id}")
async def retrieve_thread(thread_id: str, uow: UoW, caller: Caller) -> JSONResponse:
    check_id(thread_id, "thread_", "thread_id")
    return JSONResponse(await service.retrieve(uow, caller, thread_id))


@router.post("/{thread_id}")
async def modify_thread(
    thread_id: str, body: ThreadModify, uow: UoW, caller: Caller
) -> JSONResponse:
    check_id(thread_id, "thread_", "thread_id")
    return JSONResponse(await service.modify(uow, caller, thread_id, body))


@router.delete("/{thread_id}")
async def delete_thread(thread_id: str, uow: UoW, caller: Caller) -> JSONResponse:
    check_id(thread_id, "thread_", "thread_id")
    return JSONResponse(await service.delete(uow, caller, thread_id))
