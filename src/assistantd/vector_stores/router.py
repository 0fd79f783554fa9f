from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from assistantd.api.deps import Caller, Stores, UoW, check_id
from assistantd.core.errors import InvalidRequest
from assistantd.core.http import JSONResponse
from assistantd.core.pagination import ListParams, list_params
from assistantd.vector_stores import service
from assistantd.vector_stores.schemas import (
    FILE_STATUSES,
    FileBatchCreate,
    SearchRequest,
    VectorStoreCreate,
    VectorStoreFileCreate,
    VectorStoreFileUpdate,
    VectorStoreModify,
)

router = APIRouter(prefix="/v1/vector_stores", tags=["vector_stores"])

Params = Annotated[ListParams, Depends(list_params)]

# Ingestion takes seconds, not milliseconds: the SDK poll helpers need not hammer the
# database (on SQLite every read takes the write lock) faster than this.
POLL_AFTER_MS = "200"


def polled(obj: Mapping[str, Any]) -> JSONResponse:
    return JSONResponse(obj, headers={"openai-poll-after-ms": POLL_AFTER_MS})


async def status_filter(filter: Annotated[str | None, Query()] = None) -> str | None:
    if filter is None or filter == "":
        return None
    if filter not in FILE_STATUSES:
        supported = ", ".join(f"'{s}'" for s in FILE_STATUSES)
        raise InvalidRequest(
            f"Invalid value for 'filter': {filter!r}. Supported values are: {supported}.",
            param="filter",
        )
    return filter


StatusFilter = Annotated[str | None, Depends(status_filter)]


def _vs(vector_store_id: str, file_id: str | None = None, batch_id: str | None = None) -> None:
    check_id(vector_store_id, "vs_", "vector_store_id")
    if file_id is not None:
        check_id(file_id, "file-", "file_id")
    if batch_id is not None:
        check_id(batch_id, "vsfb_", "batch_id")


@router.post("")
async def create_vector_store(
    body: VectorStoreCreate, uow: UoW, caller: Caller, rt: Stores
) -> JSONResponse:
    return polled(await service.create(rt, uow, caller.project_id, body))


@router.get("")
async def list_vector_stores(uow: UoW, caller: Caller, params: Params) -> JSONResponse:
    return JSONResponse(await service.list_(uow, caller.project_id, params))


@router.get("/{vector_store_id}")
async def retrieve_vector_store(vector_store_id: str, uow: UoW, caller: Caller) -> JSONResponse:
    _vs(vector_store_id)
    return polled(await service.retrieve(uow, caller.project_id, vector_store_id))


@router.post("/{vector_store_id}")
async def modify_vector_store(
    vector_store_id: str, body: VectorStoreModify, uow: UoW, caller: Caller
) -> JSONResponse:
    _vs(vector_store_id)
    return JSONResponse(await service.modify(uow, caller.project_id, vector_store_id, body))


@router.delete("/{vector_store_id}")
async def delete_vector_store(
    vector_store_id: str, uow: UoW, caller: Caller, rt: Stores
) -> JSONResponse:
    _vs(vector_store_id)
    return JSONResponse(await service.delete(rt, uow, caller.project_id, vector_store_id))


@router.post("/{vector_store_id}/search")
async def search_vector_store(
    vector_store_id: str, body: SearchRequest, uow: UoW, caller: Caller, rt: Stores
) -> JSONResponse:
    _vs(vector_store_id)
    return JSONResponse(await service.search(rt, uow, caller.project_id, vector_store_id, body))


# -- files -------------------------------------------------------------------------------


@router.post("/{vector_store_id}/files")
async def create_vector_store_file(
    vector_store_id: str, body: VectorStoreFileCreate, uow: UoW, caller: Caller, rt: Stores
) -> JSONResponse:
    _vs(vector_store_id, body.file_id)
    return polled(await service.attach_file(rt, uow, caller.project_id, vector_store_id, body))


@router.get("/{vector_store_id}/files")
async def list_vector_store_files(
    vector_store_id: str, uow: UoW, caller: Caller, params: Params, status: StatusFilter
) -> JSONResponse:
    _vs(vector_store_id)
    return JSONResponse(
        await service.list_files(uow, caller.project_id, vector_store_id, params, status)
    )


@router.get("/{vector_store_id}/files/{file_id}")
async def retrieve_vector_store_file(
    vector_store_id: str, file_id: str, uow: UoW, caller: Caller
) -> JSONResponse:
    _vs(vector_store_id, file_id)
    return polled(await service.retrieve_file(uow, caller.project_id, vector_store_id, file_id))


@router.post("/{vector_store_id}/files/{file_id}")
async def update_vector_store_file(
    vector_store_id: str,
    file_id: str,
    body: VectorStoreFileUpdate,
    uow: UoW,
    caller: Caller,
    rt: Stores,
) -> JSONResponse:
    _vs(vector_store_id, file_id)
    return JSONResponse(
        await service.update_file(rt, uow, caller.project_id, vector_store_id, file_id, body)
    )


@router.delete("/{vector_store_id}/files/{file_id}")
async def delete_vector_store_file(
    vector_store_id: str, file_id: str, uow: UoW, caller: Caller, rt: Stores
) -> JSONResponse:
    _vs(vector_store_id, file_id)
    return JSONResponse(
        await service.detach_file(rt, uow, caller.project_id, vector_store_id, file_id)
    )


@router.get("/{vector_store_id}/files/{file_id}/content")
async def vector_store_file_content(
    vector_store_id: str, file_id: str, uow: UoW, caller: Caller, rt: Stores
) -> JSONResponse:
    _vs(vector_store_id, file_id)
    return JSONResponse(
        await service.file_content(rt, uow, caller.project_id, vector_store_id, file_id)
    )


# -- file batches ------------------------------------------------------------------------


@router.post("/{vector_store_id}/file_batches")
async def create_file_batch(
    vector_store_id: str, body: FileBatchCreate, uow: UoW, caller: Caller, rt: Stores
) -> JSONResponse:
    _vs(vector_store_id)
    return polled(await service.create_batch(rt, uow, caller.project_id, vector_store_id, body))


@router.get("/{vector_store_id}/file_batches/{batch_id}")
async def retrieve_file_batch(
    vector_store_id: str, batch_id: str, uow: UoW, caller: Caller
) -> JSONResponse:
    _vs(vector_store_id, batch_id=batch_id)
    return polled(await service.retrieve_batch(uow, caller.project_id, vector_store_id, batch_id))


@router.post("/{vector_store_id}/file_batches/{batch_id}/cancel")
async def cancel_file_batch(
    vector_store_id: str, batch_id: str, uow: UoW, caller: Caller
) -> JSONResponse:
    _vs(vector_store_id, batch_id=batch_id)
    return JSONResponse(
        await service.cancel_batch(uow, caller.project_id, vector_store_id, batch_id)
    )


@router.get("/{vector_store_id}/file_batches/{batch_id}/files")
async def list_file_batch_files(
    vector_store_id: str,
    batch_id: str,
    uow: UoW,
    caller: Caller,
    params: Params,
    status: StatusFilter,
) -> JSONResponse:
    _vs(vector_store_id, batch_id=batch_id)
    return JSONResponse(
        await service.list_batch_files(
            uow, caller.project_id, vector_store_id, batch_id, params, status
        )
    )
