"""Keys through the admin API: admin keys, project service accounts and project keys.

A project key made through the API always belongs to a service account (made with it, as
OpenAI makes them); deleting the account revokes its keys. Keys made with
`assistantd keys create` belong to the operator and can be deleted one by one.
"""

from __future__ import annotations

from typing import Any

from assistantd.admin import render
from assistantd.admin.pagination import Cursor, envelope, keyset_page
from assistantd.admin.schemas import (
    AdminKeyCreate,
    ServiceAccountCreate,
    ServiceAccountKeyCreate,
    ServiceAccountUpdate,
)
from assistantd.audit.service import record
from assistantd.core.db import UnitOfWork
from assistantd.core.errors import InvalidRequest, not_found
from assistantd.core.ids import new_id, next_seq, now_seconds
from assistantd.keys.cache import KeyCache, forget_on_commit
from assistantd.keys.models import AdminApiKey, ApiKey, ServiceAccount
from assistantd.keys.repository import (
    AdminKeyRepository,
    ApiKeyRepository,
    ServiceAccountRepository,
)
from assistantd.keys.service import AdminPrincipal, create_admin_key, create_key, revoke_key
from assistantd.projects.models import Project
from assistantd.projects.repository import ProjectRepository

SERVICE_ACCOUNT_KEY_NAME = "Secret Key"

# --- admin keys -------------------------------------------------------------------------


async def list_admin_keys(uow: UnitOfWork, cursor: Cursor) -> dict[str, Any]:
    rows, more = await keyset_page(
        uow.session, AdminApiKey, AdminApiKey.seq, [AdminApiKey.revoked_at.is_(None)], cursor
    )
    return envelope([render.admin_key(k) for k in rows], more)


async def create_admin(
    uow: UnitOfWork, caller: AdminPrincipal, body: AdminKeyCreate
) -> dict[str, Any]:
    key, secret = await create_admin_key(
        uow.session,
        body.name,
        expires_in_seconds=body.expires_in_seconds,
        admin_key_id=caller.key_id,
    )
    return render.admin_key_created(key, secret)


async def _admin_key(uow: UnitOfWork, key_id: str) -> AdminApiKey:
    key = await AdminKeyRepository(uow.session).get(key_id)
    if key is None or key.revoked_at is not None:
        raise not_found("admin API key", key_id)
    return key


async def retrieve_admin(uow: UnitOfWork, key_id: str) -> dict[str, Any]:
    return render.admin_key(await _admin_key(uow, key_id))


async def delete_admin(uow: UnitOfWork, caller: AdminPrincipal, key_id: str) -> dict[str, Any]:
    key = await _admin_key(uow, key_id)
    key.revoked_at = now_seconds()
    await uow.session.flush()
    await record(uow.session, "api_key.deleted", resource_id=key.id, admin_key_id=caller.key_id)
    return render.deleted("organization.admin_api_key.deleted", key.id)


# --- service accounts -------------------------------------------------------------------


async def _account(uow: UnitOfWork, project_id: str, account_id: str) -> ServiceAccount:
    sa = await ServiceAccountRepository(uow.session).get_live(project_id, account_id)
    if sa is None:
        raise not_found("service account", account_id)
    return sa


async def list_accounts(uow: UnitOfWork, project_id: str, cursor: Cursor) -> dict[str, Any]:
    await ProjectRepository(uow.session).require_active(project_id)
    where = [ServiceAccount.project_id == project_id, ServiceAccount.deleted_at.is_(None)]
    rows, more = await keyset_page(uow.session, ServiceAccount, ServiceAccount.seq, where, cursor)
    return envelope([render.service_account(sa) for sa in rows], more)


async def _new_key(
    uow: UnitOfWork,
    caller: AdminPrincipal,
    sa: ServiceAccount,
    name: str | None,
    scopes: list[str] | None = None,
) -> dict[str, Any]:
    key, secret = await create_key(
        uow.session,
        name or SERVICE_ACCOUNT_KEY_NAME,
        sa.project_id,
        service_account_id=sa.id,
        admin_key_id=caller.key_id,
        scopes=scopes,
    )
    return render.service_account_key(key, secret)


async def create_account(
    uow: UnitOfWork, caller: AdminPrincipal, project_id: str, body: ServiceAccountCreate
) -> dict[str, Any]:
    project = await ProjectRepository(uow.session).require_active(project_id)
    sa = ServiceAccount(
        id=new_id("svc_acct_"),
        project_id=project.id,
        name=body.name,
        role="member",
        seq=next_seq(),
        created_at=now_seconds(),
        deleted_at=None,
    )
    await ServiceAccountRepository(uow.session).insert(sa)
    await record(
        uow.session,
        "service_account.created",
        resource_id=sa.id,
        admin_key_id=caller.key_id,
        project=(project.id, project.name),
        details={"data": {"role": sa.role}},
    )
    key = None if body.create_service_account_only else await _new_key(uow, caller, sa, None)
    return {**render.service_account(sa), "api_key": key}


async def retrieve_account(uow: UnitOfWork, project_id: str, account_id: str) -> dict[str, Any]:
    await ProjectRepository(uow.session).require(project_id)
    return render.service_account(await _account(uow, project_id, account_id))


async def modify_account(
    uow: UnitOfWork,
    caller: AdminPrincipal,
    project_id: str,
    account_id: str,
    body: ServiceAccountUpdate,
) -> dict[str, Any]:
    project = await ProjectRepository(uow.session).require_active(project_id)
    sa = await _account(uow, project_id, account_id)
    changes: dict[str, Any] = {}
    if body.name is not None:
        sa.name = changes["name"] = body.name
    if body.role is not None:
        sa.role = changes["role"] = body.role
    await uow.session.flush()
    await record(
        uow.session,
        "service_account.updated",
        resource_id=sa.id,
        admin_key_id=caller.key_id,
        project=(project.id, project.name),
        details={"changes_requested": changes},
    )
    return render.service_account(sa)


async def delete_account(
    uow: UnitOfWork,
    caller: AdminPrincipal,
    project_id: str,
    account_id: str,
    keys: KeyCache | None = None,
) -> dict[str, Any]:
    project = await ProjectRepository(uow.session).require_active(project_id)
    sa = await _account(uow, project_id, account_id)
    sa.deleted_at = now_seconds()
    for key_id in await ApiKeyRepository(uow.session).live_ids_of_account(sa.id):
        await revoke_key(uow.session, key_id, admin_key_id=caller.key_id)
    forget_on_commit(uow, keys)
    await record(
        uow.session,
        "service_account.deleted",
        resource_id=sa.id,
        admin_key_id=caller.key_id,
        project=(project.id, project.name),
    )
    return render.deleted("organization.project.service_account.deleted", sa.id)


async def create_account_key(
    uow: UnitOfWork,
    caller: AdminPrincipal,
    project_id: str,
    account_id: str,
    body: ServiceAccountKeyCreate,
) -> dict[str, Any]:
    await ProjectRepository(uow.session).require_active(project_id)
    sa = await _account(uow, project_id, account_id)
    return await _new_key(uow, caller, sa, body.name, body.scopes)


# --- project keys -----------------------------------------------------------------------

ACCESS = ("active", "inactive", "any")


async def _owners(uow: UnitOfWork, keys: list[ApiKey]) -> dict[str, ServiceAccount]:
    ids = {k.service_account_id for k in keys if k.service_account_id}
    return await ServiceAccountRepository(uow.session).by_ids(ids)


async def list_project_keys(
    uow: UnitOfWork, project_id: str, cursor: Cursor, owner_project_access: str | None
) -> dict[str, Any]:
    if owner_project_access is not None and owner_project_access not in ACCESS:
        raise InvalidRequest(
            f"Invalid value: {owner_project_access!r}. Supported values are: 'active', 'inactive' and 'any'.",
            param="owner_project_access",
        )
    project = await ProjectRepository(uow.session).require(project_id)
    state = "active" if project.active else "inactive"
    if owner_project_access in ("active", "inactive") and owner_project_access != state:
        return envelope([], False)
    where = [ApiKey.project_id == project_id, ApiKey.revoked_at.is_(None)]
    rows, more = await keyset_page(uow.session, ApiKey, ApiKey.created_at, where, cursor)
    owners = await _owners(uow, rows)
    data = [
        render.project_key(k, owners.get(k.service_account_id or ""), project.active) for k in rows
    ]
    return envelope(data, more)


async def _project_key(uow: UnitOfWork, project_id: str, key_id: str) -> tuple[ApiKey, Project]:
    project = await ProjectRepository(uow.session).require(project_id)
    key = await ApiKeyRepository(uow.session).get(key_id)
    if key is None or key.project_id != project_id or key.revoked_at is not None:
        raise not_found("API key", key_id)
    return key, project


async def retrieve_project_key(uow: UnitOfWork, project_id: str, key_id: str) -> dict[str, Any]:
    key, project = await _project_key(uow, project_id, key_id)
    owners = await _owners(uow, [key])
    return render.project_key(key, owners.get(key.service_account_id or ""), project.active)


async def delete_project_key(
    uow: UnitOfWork,
    caller: AdminPrincipal,
    project_id: str,
    key_id: str,
    keys: KeyCache | None = None,
) -> dict[str, Any]:
    key, _ = await _project_key(uow, project_id, key_id)
    if key.service_account_id is not None:
        raise InvalidRequest(
            f"API key '{key_id}' belongs to service account '{key.service_account_id}': delete the "
            "service account instead.",
            param="api_key_id",
        )
    await revoke_key(uow.session, key.id, admin_key_id=caller.key_id)
    forget_on_commit(uow, keys)
    return render.deleted("organization.project.api_key.deleted", key.id)
