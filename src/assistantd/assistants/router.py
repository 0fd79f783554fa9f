from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from assistantd.api.deps import Caller, Stores, UoW, check_id
from assistantd.assistants import service
from assistantd.assistants.schemas import AssistantCreate, AssistantModify
from assistantd.core.http import JSONResponse
from assistantd.core.pagination import ListParams, list_params

router = APIRouter(prefix="/v1/assistants", tags=["assistants"])


@router.post("")
async def create_assistant(
    body: AssistantCreate, uow: UoW, caller: Caller, stores: Stores
) -> JSONResponse:
    return JSONResponse(await service.create(uow, caller, body, stores))


@router.get("")
async def list_assistants(
    uow: UoW, caller: Caller, params: Annotated[ListParams, Depends(list_params)]
) -> JSONResponse:
    return JSONResponse(await service.list_(uow, caller, params))


@router.get("/{assistant_id}")
async def retrieve_assistant(assistant_id: str, uow: UoW, caller: Caller) -> JSONResponse:
    check_id(assistant_id, "asst_", "assistant_id")
    return JSONResponse(await service.retrieve_object(uow, caller, assistant_id))


@router.post("/{assistant_id}")
async def modify_assistant(
    assistant_id: str, body: AssistantModify, uow: UoW, caller: Caller, stores: Stores
) -> JSONResponse:
    check_id(assistant_id, "asst_", "assistant_id")
    return JSONResponse(await service.modify(uow, caller, assistant_id, body, stores))


@router.delete("/{assistant_id}")
async def delete_assistant(assistant_id: str, uow: UoW, caller: Caller) -> JSONResponse:
    check_id(assistant_id, "asst_", "assistant_id")
    return JSONResponse(await service.delete(uow, caller, assistant_id))
