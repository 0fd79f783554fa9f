"""`/v1/organization/projects/{id}/rate_limits`, `…/spend_limit` and `/v1/organization/spend_limit`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from assistantd.api.deps import UoW
from assistantd.context import app_context
from assistantd.core.errors import InvalidRequest
from assistantd.core.http import JSONResponse
from assistantd.limits import service
from assistantd.limits.admin_auth import AdminCaller
from assistantd.limits.models import ORGANIZATION
from assistantd.limits.schemas import RateLimitUpdate, SpendLimitUpdate
from assistantd.limits.service import Limits
from assistantd.llm.router import model_catalog

router = APIRouter(prefix="/v1/organization", tags=["limits"])


async def _limits(request: Request) -> Limits:
    limits = app_context(request).limits
    assert limits is not None
    return limits


Governor = Annotated[Limits, Depends(_limits)]


def _catalog(request: Request) -> list[str]:
    ctx = app_context(request)
    catalog = ctx.model_catalog[0] if ctx.model_catalog is not None else model_catalog(ctx.settings)
    return [m.id for m in catalog.models]


def _project(project_id: str) -> str:
    if project_id == ORGANIZATION or not project_id:
        raise InvalidRequest(f"Invalid 'project_id': {project_id!r}.", param="project_id")
    return project_id


@router.get("/projects/{project_id}/rate_limits")
async def list_rate_limits(
    project_id: str,
    request: Request,
    uow: UoW,
    admin: AdminCaller,
    limits: Governor,
    limit: Annotated[int, Query(ge=1, le=100)] = 100,
    after: str | None = None,
    before: str | None = None,
) -> JSONResponse:
    return JSONResponse(
        await service.list_rate_limits(
            uow.session,
            limits,
            _project(project_id),
            _catalog(request),
            limit=limit,
            after=after,
            before=before,
        )
    )


@router.post("/projects/{project_id}/rate_limits/{rate_limit_id}")
async def update_rate_limit(
    project_id: str,
    rate_limit_id: str,
    body: RateLimitUpdate,
    request: Request,
    uow: UoW,
    admin: AdminCaller,
    limits: Governor,
) -> JSONResponse:
    changes = {
        k: v for k, v in body.model_dump(include=set(service.FIELDS)).items() if v is not None
    }
    return JSONResponse(
        await service.update_rate_limit(
            uow.session, limits, _project(project_id), rate_limit_id, changes, _catalog(request)
        )
    )


@router.get("/projects/{project_id}/spend_limit")
async def get_project_spend_limit(
    project_id: str, uow: UoW, admin: AdminCaller, limits: Governor
) -> JSONResponse:
    return JSONResponse(await service.get_spend_limit(uow.session, limits, _project(project_id)))


@router.post("/projects/{project_id}/spend_limit")
async def set_project_spend_limit(
    project_id: str, body: SpendLimitUpdate, uow: UoW, admin: AdminCaller, limits: Governor
) -> JSONResponse:
    return JSONResponse(
        await service.set_spend_limit(
            uow.session,
            limits,
            _project(project_id),
            body.threshold_amount,
            body.currency,
            body.interval,
        )
    )


@router.delete("/projects/{project_id}/spend_limit")
async def delete_project_spend_limit(
    project_id: str, uow: UoW, admin: AdminCaller, limits: Governor
) -> JSONResponse:
    return JSONResponse(await service.delete_spend_limit(uow.session, limits, _project(project_id)))


@router.get("/spend_limit")
async def get_org_spend_limit(uow: UoW, admin: AdminCaller, limits: Governor) -> JSONResponse:
    return JSONResponse(await service.get_spend_limit(uow.session, limits, ORGANIZATION))


@router.post("/spend_limit")
async def set_org_spend_limit(
    body: SpendLimitUpdate, uow: UoW, admin: AdminCaller, limits: Governor
) -> JSONResponse:
    return JSONResponse(
        await service.set_spend_limit(
            uow.session, limits, ORGANIZATION, body.threshold_amount, body.currency, body.interval
        )
    )


@router.delete("/spend_limit")
async def delete_org_spend_limit(uow: UoW, admin: AdminCaller, limits: Governor) -> JSONResponse:
    return JSONResponse(await service.delete_spend_limit(uow.session, limits, ORGANIZATION))
