"""Project lookups: by id, whether one is active, and the page the admin API lists."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from assistantd.core.errors import InvalidRequest, not_found
from assistantd.core.ids import new_id, next_seq, now_seconds
from assistantd.projects.models import Project


class ProjectRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, project_id: str, *, for_update: bool = False) -> Project | None:
        stmt = select(Project).where(Project.id == project_id)
        if for_update:
            stmt = stmt.with_for_update()
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def require(self, project_id: str, *, for_update: bool = False) -> Project:
        """The project, archived or not; OpenAI's 404 when there is none."""
        project = await self.get(project_id, for_update=for_update)
        if project is None:
            raise not_found("project", project_id)
        return project

    async def require_active(self, project_id: str, *, for_update: bool = False) -> Project:
        """The project, to change it or what belongs to it: 404 if none, 400 if archived."""
        project = await self.require(project_id, for_update=for_update)
        if not project.active:
            raise InvalidRequest(
                f"Project '{project_id}' is archived and cannot be used or updated.",
                param="project_id",
            )
        return project

    async def is_active(self, project_id: str) -> bool:
        """Whether the project exists and is not archived (one indexed read)."""
        stmt = select(Project.archived_at).where(Project.id == project_id)
        row = (await self.session.execute(stmt)).first()
        return row is not None and row.archived_at is None

    async def insert(self, project: Project) -> Project:
        self.session.add(project)
        await self.session.flush()
        return project

    async def create(
        self, name: str, *, project_id: str | None = None, external_key_id: str | None = None
    ) -> Project:
        project = Project(
            id=project_id or new_id("proj_"),
            name=name,
            seq=next_seq(),
            created_at=now_seconds(),
            archived_at=None,
            external_key_id=external_key_id,
        )
        return await self.insert(project)

    async def ensure(self, project_id: str) -> Project:
        """The project with this id, made (named after its id) if there is none yet.

        `assistantd keys create --project NAME` names projects this way, as it always has.
        """
        return await self.get(project_id) or await self.create(project_id, project_id=project_id)

    async def all(self) -> Sequence[Project]:
        stmt = select(Project).order_by(Project.seq, Project.id)
        return (await self.session.execute(stmt)).scalars().all()
