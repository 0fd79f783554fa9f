from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from assistantd.api.deps import Caller, Stores, UoW, check_id
from assistantd.core.http import JSONResponse
from assistantd.core.pagination import ListParams, list_params
from assistantd.messages import service
from assistantd.messages.schemas import MessageCreate, MessageModify

router = APIRouter(prefix="/v1/threads/{thread_id}/messages", tags=["messages"])


@router.post("")
async def create_message(
    thread_id: str, body: MessageCreate, uow: UoW, caller: Caller, stores: Stores
) -> JSONResponse:
    check_id(thread_id, "thread_", "thread_id")
    return JSONResponse(await service.create(uow, caller, thread_id, body, stores))


@router.get("")
async def list_messages(
    thread_id: str,
    uow: UoW,
    caller: Caller,
    params: Annotated[ListParams, Depends(list_params)],
    run_id: Annotated[str | None, Query()] = None,
) -> JSONResponse:
    check_id(thread_id, "thread_", "thread_id")
    return JSONResponse(await service.list_(uow, caller, thread_id, params, run_id))


@router.get("/{message_id}")
async def retrieve_message(
    thread_id: str, message_id: str, uow: UoW, caller: Caller
) -> JSONResponse:
    check_id(thread_id, "thread_", "thread_id")
    check_id(message_id, "msg_", "message_id")
    return JSONResponse(await service.retrieve(uow, caller, thread_id, message_id))


@router.post("/{message_id}")
async def modify_message(
    thread_id: str, message_id: str, body: MessageModify, uow: UoW, caller: Caller
) -> JSONResponse:
    check_id(thread_id, "thread_", "thread_id")
    check_id(message_id, "msg_", "message_id")
    return JSONResponse(await service.modify(uow, caller, thread_id, message_id, body))


@router.delete("/{message_id}")
async def delete_message(thread_id: str, message_id: str, uow: UoW, caller: Caller) -> JSONResponse:
    check_id(thread_id, "thread_", "thread_id")
    check_id(message_id, "msg_", "message_id")
    return JSONResponse(await service.delete(uow, caller, thread_id, message_id))
