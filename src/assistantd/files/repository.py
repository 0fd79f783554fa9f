from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, func, or_, select

from assistantd.core.ids import now_seconds
from assistantd.core.repository import Repository
from assistantd.files.models import FileRow


def live(now: int | None = None) -> ColumnElement[bool]:
    """Files whose `expires_at` has not passed: expired files behave as deleted."""
    t = now_seconds() if now is None else now
    return or_(FileRow.expires_at.is_(None), FileRow.expires_at > t)


class FileRepository(Repository[FileRow]):
    model = FileRow
    kind = "file"

    async def get_live(self, project_id: str, file_id: str) -> FileRow | None:
        return await self.get(project_id, file_id, live())

    async def get_many(self, project_id: str, file_ids: Sequence[str]) -> dict[str, FileRow]:
        """The live files among `file_ids`, by id (unknown or expired ids are absent)."""
        if not file_ids:
            return {}
        stmt = select(FileRow).where(
            FileRow.project_id == project_id, FileRow.id.in_(list(set(file_ids))), live()
        )
        return {row.id: row for row in (await self.session.execute(stmt)).scalars()}

    async def existing_live(self, project_id: str, file_ids: Sequence[str]) -> set[str]:
        """The live files among `file_ids` (ids only: for checking references)."""
        return await self.existing_ids(project_id, file_ids, live())

    async def bytes_used(self, project_id: str, purpose: str) -> int:
        """The sum of the `bytes` of the project's live files of `purpose`."""
        size = FileRow.body["bytes"].as_integer()
        stmt = select(func.coalesce(func.sum(size), 0)).where(
            FileRow.project_id == project_id, FileRow.purpose == purpose, live()
        )
        return int((await self.session.execute(stmt)).scalar_one())

    async def expired(self, limit: int) -> Sequence[FileRow]:
        """Files past their `expires_at`, oldest expiry first, for the sweep to delete."""
        stmt = (
            select(FileRow)
            .where(FileRow.expires_at.is_not(None), FileRow.expires_at <= now_seconds())
            .order_by(FileRow.expires_at)
            .limit(limit)
        )
        return (await self.session.execute(stmt)).scalars().all()
