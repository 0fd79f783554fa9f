"""The `/v1/organization` routes of projects, keys, service accounts and the audit log."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request

from assistantd.admin import audit_logs, credentials, projects
from assistantd.admin.pagination import Cursor
from assistantd.admin.schemas import (
    AdminKeyCreate,
    ProjectCreate,
    ProjectUpdate,
    ServiceAccountCreate,
    ServiceAccountKeyCreate,
    ServiceAccountUpdate,
)
from assistantd.api.deps import AdminCaller, Keys, UoW
from assistantd.core.errors import InvalidRequest
from assistantd.core.http import JSONResponse
from assistantd.core.pagination import parse_limit

router = APIRouter(prefix="/v1/organization", tags=["admin"])

PROJECT = "/projects/{project_id}"
ACCOUNT = PROJECT + "/service_accounts/{service_account_id}"


def _cursor(limit: str | None, after: str | None) -> Cursor:
    return Cursor(limit=parse_limit(limit), after=after or None)


def _flag(value: str | None, param: str) -> bool:
    if value is None or value == "":
        return False
    if value.lower() in ("true", "1"):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise InvalidRequest(
        f"Invalid '{param}': expected a boolean, but got {value!r} instead.", param=param
    )


# --- projects ---------------------------------------------------------------------------


@router.get("/projects")
async def list_projects(
    uow: UoW,
    _: AdminCaller,
    limit: str | None = Query(None),
    after: str | None = Query(None),
    include_archived: str | None = Query(None),
) -> JSONResponse:
    archived = _flag(include_archived, "include_archived")
    return JSONResponse(await projects.list_(uow, _cursor(limit, after), archived))


@router.post("/projects")
async def create_project(body: ProjectCreate, uow: UoW, caller: AdminCaller) -> JSONResponse:
    return JSONResponse(await projects.create(uow, caller, body))


@router.get(PROJECT)
async def retrieve_project(project_id: str, uow: UoW, _: AdminCaller) -> JSONResponse:
    return JSONResponse(await projects.retrieve(uow, project_id))


@router.post(PROJECT)
async def modify_project(
    project_id: str, body: ProjectUpdate, uow: UoW, caller: AdminCaller
) -> JSONResponse:
    return JSONResponse(await projects.modify(uow, caller, project_id, body))


@router.post(PROJECT + "/archive")
async def archive_project(
    project_id: str, uow: UoW, caller: AdminCaller, keys: Keys
) -> JSONResponse:
    return JSONResponse(await projects.archive(uow, caller, project_id, keys))


# --- admin keys -------------------------------------------------------------------------


@router.get("/admin_api_keys")
async def list_admin_keys(
    uow: UoW,
    _: AdminCaller,
    limit: str | None = Query(None),
    after: str | None = Query(None),
    order: str | None = Query(None),
) -> JSONResponse:
    if order not in (None, "", "asc", "desc"):
        raise InvalidRequest(
            f"Invalid value: {order!r}. Supported values are: 'asc' and 'desc'.", param="order"
        )
    cursor = Cursor(limit=parse_limit(limit), after=after or None, descending=order == "desc")
    return JSONResponse(await credentials.list_admin_keys(uow, cursor))


@router.post("/admin_api_keys")
async def create_admin_key(body: AdminKeyCreate, uow: UoW, caller: AdminCaller) -> JSONResponse:
    return JSONResponse(await credentials.create_admin(uow, caller, body))


@router.get("/admin_api_keys/{key_id}")
async def retrieve_admin_key(key_id: str, uow: UoW, _: AdminCaller) -> JSONResponse:
    return JSONResponse(await credentials.retrieve_admin(uow, key_id))


@router.delete("/admin_api_keys/{key_id}")
async def delete_admin_key(key_id: str, uow: UoW, caller: AdminCaller) -> JSONResponse:
    return JSONResponse(await credentials.delete_admin(uow, caller, key_id))


# --- project keys -----------------------------------------------------------------------


@router.get(PROJECT + "/api_keys")
async def list_project_keys(
    project_id: str,
    uow: UoW,
    _: AdminCaller,
    limit: str | None = Query(None),
    after: str | None = Query(None),
    owner_project_access: str | None = Query(None),
) -> JSONResponse:
    return JSONResponse(
        await credentials.list_project_keys(
            uow, project_id, _cursor(limit, after), owner_project_access or None
        )
    )


@router.get(PROJECT + "/api_keys/{api_key_id}")
async def retrieve_project_key(
    project_id: str, api_key_id: str, uow: UoW, _: AdminCaller
) -> JSONResponse:
    return JSONResponse(await credentials.retrieve_project_key(uow, project_id, api_key_id))


@router.delete(PROJECT + "/api_keys/{api_key_id}")
async def delete_project_key(
    project_id: str, api_key_id: str, uow: UoW, caller: AdminCaller, keys: Keys
) -> JSONResponse:
    return JSONResponse(
        await credentials.delete_project_key(uow, caller, project_id, api_key_id, keys)
    )


# --- service accounts -------------------------------------------------------------------


@router.get(PROJECT + "/service_accounts")
async def list_service_accounts(
    project_id: str,
    uow: UoW,
    _: AdminCaller,
    limit: str | None = Query(None),
    after: str | None = Query(None),
) -> JSONResponse:
    return JSONResponse(await credentials.list_accounts(uow, project_id, _cursor(limit, after)))


@router.post(PROJECT + "/service_accounts")
async def create_service_account(
    project_id: str, body: ServiceAccountCreate, uow: UoW, caller: AdminCaller
) -> JSONResponse:
    return JSONResponse(await credentials.create_account(uow, caller, project_id, body))


@router.get(ACCOUNT)
async def retrieve_service_account(
    project_id: str, service_account_id: str, uow: UoW, _: AdminCaller
) -> JSONResponse:
    return JSONResponse(await credentials.retrieve_account(uow, project_id, service_account_id))


@router.post(ACCOUNT)
async def modify_service_account(
    project_id: str,
    service_account_id: str,
    body: ServiceAccountUpdate,
    uow: UoW,
    caller: AdminCaller,
) -> JSONResponse:
    return JSONResponse(
        await credentials.modify_account(uow, caller, project_id, service_account_id, body)
    )


@router.delete(ACCOUNT)
async def delete_service_account(
    project_id: str, service_account_id: str, uow: UoW, caller: AdminCaller, keys: Keys
) -> JSONResponse:
    return JSONResponse(
        await credentials.delete_account(uow, caller, project_id, service_account_id, keys)
    )


@router.post(ACCOUNT + "/api_keys")
async def create_service_account_key(
    project_id: str,
    service_account_id: str,
    uow: UoW,
    caller: AdminCaller,
    body: ServiceAccountKeyCreate | None = None,
) -> JSONResponse:
    return JSONResponse(
        await credentials.create_account_key(
            uow, caller, project_id, service_account_id, body or ServiceAccountKeyCreate()
        )
    )


# --- audit log --------------------------------------------------------------------------


@router.get("/audit_logs")
async def list_audit_logs(request: Request, uow: UoW, _: AdminCaller) -> JSONResponse:
    return JSONResponse(await audit_logs.list_(uow, audit_logs.parse(request.query_params)))
