"""Projects through the admin API: list, create, retrieve, modify, archive.

Projects cannot be deleted, only archived; an archived project's keys stop working
(`keys.service.authenticate` reads the project with the key; this process's cache of valid
keys, `keys/cache.py`, is emptied on the commit, other processes refuse them within
`ASSISTANTD_AUTH_CACHE_SECONDS`) and it can no longer be changed. The default project (the
static keys' and the CLI's default) can be neither modified nor archived, as OpenAI's
default project.
"""

from __future__ import annotations

from typing import Any

from assistantd.admin import render
from assistantd.admin.pagination import Cursor, envelope, keyset_page
from assistantd.admin.schemas import ProjectCreate, ProjectUpdate
from assistantd.audit.service import record
from assistantd.core.db import UnitOfWork
from assistantd.core.errors import InvalidRequest
from assistantd.core.ids import now_seconds
from assistantd.keys.cache import KeyCache, forget_on_commit
from assistantd.keys.service import AdminPrincipal
from assistantd.projects.models import DEFAULT_PROJECT, Project
from assistantd.projects.repository import ProjectRepository


async def list_(uow: UnitOfWork, cursor: Cursor, include_archived: bool) -> dict[str, Any]:
    where = [] if include_archived else [Project.archived_at.is_(None)]
    rows, more = await keyset_page(uow.session, Project, Project.seq, where, cursor)
    return envelope([render.project(p) for p in rows], more)


async def create(uow: UnitOfWork, caller: AdminPrincipal, body: ProjectCreate) -> dict[str, Any]:
    p = await ProjectRepository(uow.session).create(body.name, external_key_id=body.external_key_id)
    await record(
        uow.session,
        "project.created",
        resource_id=p.id,
        admin_key_id=caller.key_id,
        project=(p.id, p.name),
        details={"data": {"name": p.name, "title": p.name}},
    )
    return render.project(p)


async def retrieve(uow: UnitOfWork, project_id: str) -> dict[str, Any]:
    return render.project(await ProjectRepository(uow.session).require(project_id))


def _not_default(project_id: str, doing: str) -> None:
    if project_id == DEFAULT_PROJECT:
        raise InvalidRequest(f"The default project cannot be {doing}.", param="project_id")


async def modify(
    uow: UnitOfWork, caller: AdminPrincipal, project_id: str, body: ProjectUpdate
) -> dict[str, Any]:
    repo = ProjectRepository(uow.session)
    await repo.require(project_id)
    _not_default(project_id, "modified")
    p = await repo.require_active(project_id, for_update=True)
    changes: dict[str, Any] = {}
    if body.name is not None:
        p.name = changes["title"] = body.name
    if "external_key_id" in body.model_fields_set:
        p.external_key_id = body.external_key_id
    await uow.session.flush()
    await record(
        uow.session,
        "project.updated",
        resource_id=p.id,
        admin_key_id=caller.key_id,
        project=(p.id, p.name),
        details={"changes_requested": changes},
    )
    return render.project(p)


async def archive(
    uow: UnitOfWork, caller: AdminPrincipal, project_id: str, keys: KeyCache | None = None
) -> dict[str, Any]:
    repo = ProjectRepository(uow.session)
    p = await repo.require(project_id, for_update=True)
    _not_default(project_id, "archived")
    if p.archived_at is None:
        p.archived_at = now_seconds()
        await uow.session.flush()
        await record(
            uow.session,
            "project.archived",
            resource_id=p.id,
            admin_key_id=caller.key_id,
            project=(p.id, p.name),
        )
        forget_on_commit(uow, keys)  # its keys are refused from the commit on
    return render.project(p)
