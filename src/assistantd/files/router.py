from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import FileResponse, StreamingResponse

from assistantd.api.deps import Caller, UoW, check_id
from assistantd.context import app_context
from assistantd.core.http import JSONResponse
from assistantd.core.pagination import ListParams, file_list_params
from assistantd.core.settings import Settings
from assistantd.files import service, storage
from assistantd.files.multipart import receive_upload

router = APIRouter(prefix="/v1/files", tags=["files"])


async def settings(request: Request) -> Settings:
    return app_context(request).settings


async def file_dependents(request: Request) -> service.FileDependents:
    return app_context(request).file_dependents


AppSettings = Annotated[Settings, Depends(settings)]
Dependents = Annotated[service.FileDependents, Depends(file_dependents)]


@router.post("")
async def upload_file(request: Request, uow: UoW, caller: Caller, cfg: AppSettings) -> JSONResponse:
    part = storage.new_part_path(cfg.data_dir, caller.project_id)
    upload = await receive_upload(
        request.headers.get("content-type"), request.stream(), part, cfg.max_upload_bytes
    )
    return JSONResponse(
        await service.create_from_upload(uow, caller.project_id, cfg.data_dir, upload)
    )


@router.get("")
async def list_files(
    uow: UoW,
    caller: Caller,
    params: Annotated[ListParams, Depends(file_list_params)],
    purpose: Annotated[str | None, Query()] = None,
) -> JSONResponse:
    return JSONResponse(await service.list_files(uow, caller.project_id, params, purpose))


@router.get("/{file_id}")
async def retrieve_file(file_id: str, uow: UoW, caller: Caller) -> JSONResponse:
    check_id(file_id, "file-", "file_id")
    return JSONResponse(await service.get_file(uow, caller.project_id, file_id))


@router.delete("/{file_id}")
async def delete_file(
    file_id: str, uow: UoW, caller: Caller, cfg: AppSettings, dependents: Dependents
) -> JSONResponse:
    check_id(file_id, "file-", "file_id")
    return JSONResponse(
        await service.delete_file(uow, dependents, cfg.data_dir, caller.project_id, file_id)
    )


@router.get("/{file_id}/content")
async def file_content(file_id: str, uow: UoW, caller: Caller, cfg: AppSettings) -> Any:
    check_id(file_id, "file-", "file_id")
    content = await service.open_content(uow, cfg.data_dir, caller.project_id, file_id)
    if content.path is not None:
        return FileResponse(
            content.path, media_type="application/octet-stream", filename=content.filename
        )
    assert content.chunks is not None
    # Bytes streamed from object storage, with the headers FileResponse would send.
    return StreamingResponse(
        content.chunks,
        media_type="application/octet-stream",
        headers={
            "content-length": str(content.size),
            "content-disposition": _disposition(content.filename),
        },
    )


def _disposition(filename: str) -> str:
    """`Content-Disposition` as Starlette's FileResponse writes it."""
    quoted = quote(filename)
    if quoted != filename:
        return f"attachment; filename*=utf-8''{quoted}"
    return f'attachment; filename="{filename}"'
