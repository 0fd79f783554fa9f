"""`/v1/organization/projects/{id}/rate_limits`, `…/spend_limit` and `/v1/organization/spend_limit`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from assistantd.api.deps import AdminCaller, UoW
from assistantd.audit import service as audit
from assistantd.context import app_context
from assistantd.core.errors import InvalidRequest
from assistantd.core.http import JSONResponse
from assistantd.limits import service
from assistantd.limits.models import ORGANIZATION
from assistantd.limits.schemas import RateLimitUpdate, SpendLimitUpdate
from assistantd.limits.service import Limits
from assistantd.llm.router import model_catalog
from assistantd.projects.models import Project
from assistantd.projects.repository import ProjectRepository

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


async def _project(uow: UoW, project_id: str) -> Project:
    """The project of the path: 404 when there is none (`*` is no project id)."""
    if project_id == ORGANIZATION:
        raise InvalidRequest(f"Invalid 'project_id': {project_id!r}.", param="project_id")
    return await ProjectRepository(uow.session).require(project_id)


async def _audit(
    uow: UoW,
    admin_key_id: str,
    event: str,
    project: Project | None,
    changes: dict[str, object] | None,
) -> None:
    """Spend-limit changes are audited as `spend_limit.updated` / `spend_limit.deleted`
    (the spec's AuditLogEventType has no spend-limit type)."""
    resource = f"spend_limit-{project.id if project else 'organization'}"
    await audit.record(
        uow.session,
        event,
        resource_id=resource,
        admin_key_id=admin_key_id,
        project=(project.id, project.name) if project else None,
        details={"changes_requested": changes} if changes is not None else None,
    )


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
    project = await _project(uow, project_id)
    return JSONResponse(
        await service.list_rate_limits(
            uow.session,
            limits,
            project.id,
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
    project = await _project(uow, project_id)
    changes = {
        k: v for k, v in body.model_dump(include=set(service.FIELDS)).items() if v is not None
    }
    out = await service.update_rate_limit(
        uow.session, limits, project.id, rate_limit_id, changes, _catalog(request)
    )
    await audit.record(
        uow.session,
        "rate_limit.updated",
        resource_id=out["id"],
        admin_key_id=admin.key_id,
        project=(project.id, project.name),
        details={"changes_requested": changes},
    )
    return JSONResponse(out)


@router.get("/projects/{project_id}/spend_limit")
async def get_project_spend_limit(
    project_id: str, uow: UoW, admin: AdminCaller, limits: Governor
) -> JSONResponse:
    project = await _project(uow, project_id)
    return JSONResponse(await service.get_spend_limit(uow.session, limits, project.id))


@router.post("/projects/{project_id}/spend_limit")
async def set_project_spend_limit(
    project_id: str, body: SpendLimitUpdate, uow: UoW, admin: AdminCaller, limits: Governor
) -> JSONResponse:
    project = await _project(uow, project_id)
    out = await service.set_spend_limit(
        uow.session, limits, project.id, body.threshold_amount, body.currency, body.interval
    )
    await _audit(uow, admin.key_id, "spend_limit.updated", project, body.model_dump())
    return JSONResponse(out)


@router.delete("/projects/{project_id}/spend_limit")
async def delete_project_spend_limit(
    project_id: str, uow: UoW, admin: AdminCaller, limits: Governor
) -> JSONResponse:
    project = await _project(uow, project_id)
    out = await service.delete_spend_limit(uow.session, limits, project.id)
    await _audit(uow, admin.key_id, "spend_limit.deleted", project, None)
    return JSONResponse(out)


@router.get("/spend_limit")
async def get_org_spend_limit(uow: UoW, admin: AdminCaller, limits: Governor) -> JSONResponse:
    return JSONResponse(await service.get_spend_limit(uow.session, limits, ORGANIZATION))


@router.post("/spend_limit")
async def set_org_spend_limit(
    body: SpendLimitUpdate, uow: UoW, admin: AdminCaller, limits: Governor
) -> JSONResponse:
    out = await service.set_spend_limit(
        uow.session, limits, ORGANIZATION, body.threshold_amount, body.currency, body.interval
    )
    await _audit(uow, admin.key_id, "spend_limit.updated", None, body.model_dump())
    return JSONResponse(out)


@router.delete("/spend_limit")
async def delete_org_spend_limit(uow: UoW, admin: AdminCaller, limits: Governor) -> JSONResponse:
    out = await service.delete_spend_limit(uow.session, limits, ORGANIZATION)
    await _audit(uow, admin.key_id, "spend_limit.deleted", None, None)
    return JSONResponse(out)
