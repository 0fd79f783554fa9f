"""`/v1/organization/usage/*` and `/v1/organization/costs`: OpenAI's reports over the usage table."""

from __future__ import annotations

from fastapi import APIRouter, Request

from assistantd.api.deps import AdminCaller, UoW
from assistantd.context import app_context
from assistantd.core.http import JSONResponse
from assistantd.usage import service

router = APIRouter(prefix="/v1/organization", tags=["usage"])


@router.get("/usage/completions")
async def completions(request: Request, uow: UoW, admin: AdminCaller) -> JSONResponse:
    query = service.parse(request.query_params, service.COMPLETIONS_GROUPS)
    return JSONResponse(await service.completions(uow.session, query))


@router.get("/usage/embeddings")
async def embeddings(request: Request, uow: UoW, admin: AdminCaller) -> JSONResponse:
    query = service.parse(request.query_params, service.EMBEDDINGS_GROUPS)
    return JSONResponse(await service.embeddings(uow.session, query))


@router.get("/usage/file_search_calls")
async def file_search_calls(request: Request, uow: UoW, admin: AdminCaller) -> JSONResponse:
    query = service.parse(request.query_params, service.FILE_SEARCH_GROUPS)
    return JSONResponse(await service.file_search_calls(uow.session, query))


@router.get("/usage/code_interpreter_sessions")
async def code_interpreter_sessions(request: Request, uow: UoW, admin: AdminCaller) -> JSONResponse:
    query = service.parse(request.query_params, service.PROJECT_GROUPS)
    return JSONResponse(await service.code_interpreter_sessions(uow.session, query))


@router.get("/usage/vector_stores")
async def vector_stores(request: Request, uow: UoW, admin: AdminCaller) -> JSONResponse:
    query = service.parse(request.query_params, service.PROJECT_GROUPS)
    return JSONResponse(await service.vector_stores(uow.session, query))


@router.get("/costs")
async def costs(request: Request, uow: UoW, admin: AdminCaller) -> JSONResponse:
    query = service.parse(request.query_params, service.COSTS_GROUPS, costs=True)
    limits = app_context(request).limits
    assert limits is not None
    return JSONResponse(await service.costs(uow.session, query, limits.pricing))
