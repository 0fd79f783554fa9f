"""All queries of vector stores, their files and file batches."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, func, or_, select, update

from assistantd.core.repository import Repository
from assistantd.vector_stores.models import (
    VectorStoreFileBatchRow,
    VectorStoreFileRow,
    VectorStoreRow,
)
from assistantd.vector_stores.wire import FileCountsWire


@dataclass(slots=True)
class FileCounts:
    """`file_counts` of a store or batch, plus the bytes its completed files use."""

    in_progress: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    usage_bytes: int = 0

    @property
    def total(self) -> int:
        return self.in_progress + self.completed + self.failed + self.cancelled

    def wire(self) -> FileCountsWire:
        return {
            "in_progress": self.in_progress,
            "completed": self.completed,
            "failed": self.failed,
            "cancelled": self.cancelled,
            "total": self.total,
        }


class VectorStoreRepository(Repository[VectorStoreRow]):
    model = VectorStoreRow
    kind = "vector store"

    async def due_for_expiry(self, now: int, limit: int) -> Sequence[VectorStoreRow]:
        stmt = (
            select(VectorStoreRow)
            .where(
                VectorStoreRow.expires_at.is_not(None),
                VectorStoreRow.expires_at <= now,
                VectorStoreRow.expired_at.is_(None),
            )
            .limit(limit)
        )
        return (await self.session.execute(stmt)).scalars().all()


class VectorStoreFileRepository(Repository[VectorStoreFileRow]):
    model = VectorStoreFileRow
    kind = "vector store file"

    async def get_in_store(
        self, project_id: str, vector_store_id: str, file_id: str, *, for_update: bool = False
    ) -> VectorStoreFileRow | None:
        return await self.get(
            project_id,
            file_id,
            VectorStoreFileRow.vector_store_id == vector_store_id,
            for_update=for_update,
        )

    async def by_key(self, vector_store_id: str, file_id: str) -> VectorStoreFileRow | None:
        """A store file by its key alone (the worker acts for every project)."""
        m = VectorStoreFileRow
        stmt = select(m).where(m.vector_store_id == vector_store_id, m.id == file_id)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def _counts(self, key: Any, where: ColumnElement[bool]) -> dict[str, FileCounts]:
        m = VectorStoreFileRow
        stmt = (
            select(key, m.status, func.count(), func.coalesce(func.sum(m.usage_bytes), 0))
            .where(where)
            .group_by(key, m.status)
        )
        out: dict[str, FileCounts] = {}
        for owner, status, n, used in (await self.session.execute(stmt)).all():
            c = out.setdefault(owner, FileCounts())
            if status in ("in_progress", "completed", "failed", "cancelled"):
                setattr(c, status, int(n))
            c.usage_bytes += int(used)
        return out

    async def counts_by_store(self, store_ids: Sequence[str]) -> dict[str, FileCounts]:
        """Counts computed from the file rows at read time, so they are never stale."""
        if not store_ids:
            return {}
        m = VectorStoreFileRow
        return await self._counts(m.vector_store_id, m.vector_store_id.in_(list(store_ids)))

    async def counts_by_batch(self, batch_ids: Sequence[str]) -> dict[str, FileCounts]:
        if not batch_ids:
            return {}
        m = VectorStoreFileRow
        return await self._counts(m.batch_id, m.batch_id.in_(list(batch_ids)))

    async def rows_of_file(self, project_id: str, file_id: str) -> Sequence[VectorStoreFileRow]:
        """Every store attachment of a file (for deleting the file)."""
        m = VectorStoreFileRow
        stmt = select(m).where(m.project_id == project_id, m.id == file_id)
        return (await self.session.execute(stmt)).scalars().all()

    async def delete_store_files(self, vector_store_id: str) -> None:
        await self.delete_where(VectorStoreFileRow.vector_store_id == vector_store_id)

    async def cancel_batch(self, batch_id: str) -> int:
        """Mark the batch's unfinished files `cancelled`; returns how many were."""
        m = VectorStoreFileRow
        result = await self.session.execute(
            update(m)
            .where(m.batch_id == batch_id, m.status == "in_progress")
            .values(status="cancelled", lease_owner=None, lease_expires_at=None)
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    # -- ingestion leases -----------------------------------------------------------------

    async def claim(
        self,
        vector_store_id: str,
        file_id: str,
        owner: str,
        now: float,
        lease: float,
        steal_from: str | None = None,
    ) -> bool:
        """Take the lease of an in-progress file nobody (alive) holds; atomic across processes."""
        m = VectorStoreFileRow
        free = or_(m.lease_owner.is_(None), m.lease_expires_at < now)
        if steal_from is not None:
            free = or_(free, m.lease_owner == steal_from)
        result = await self.session.execute(
            update(m)
            .where(
                m.vector_store_id == vector_store_id,
                m.id == file_id,
                m.status == "in_progress",
                free,
            )
            .values(lease_owner=owner, lease_expires_at=now + lease)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def renew(self, vector_store_id: str, file_id: str, owner: str, until: float) -> None:
        m = VectorStoreFileRow
        await self.session.execute(
            update(m)
            .where(m.vector_store_id == vector_store_id, m.id == file_id, m.lease_owner == owner)
            .values(lease_expires_at=until)
            .execution_options(synchronize_session=False)
        )

    async def held(
        self, vector_store_id: str, file_id: str, owner: str
    ) -> VectorStoreFileRow | None:
        """The row, locked, if it is still in progress under our lease (else it was
        cancelled, detached or re-attached meanwhile and our work must be dropped)."""
        m = VectorStoreFileRow
        stmt = (
            select(m)
            .where(
                m.vector_store_id == vector_store_id,
                m.id == file_id,
                m.status == "in_progress",
                m.lease_owner == owner,
            )
            .with_for_update()
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def claimable(self, now: float, limit: int) -> list[tuple[str, str]]:
        """(store, file) of in-progress files with no live lease."""
        m = VectorStoreFileRow
        stmt = (
            select(m.vector_store_id, m.id)
            .where(
                m.status == "in_progress", or_(m.lease_owner.is_(None), m.lease_expires_at < now)
            )
            .order_by(m.seq)
            .limit(limit)
        )
        return [(a, b) for a, b in (await self.session.execute(stmt)).all()]

    async def leased(self, now: float) -> list[tuple[str, str, str]]:
        """(store, file, owner) of in-progress files under a lease that has not run out."""
        m = VectorStoreFileRow
        stmt = select(m.vector_store_id, m.id, m.lease_owner).where(
            m.status == "in_progress", and_(m.lease_owner.is_not(None), m.lease_expires_at >= now)
        )
        return [(a, b, c or "") for a, b, c in (await self.session.execute(stmt)).all()]


class FileBatchRepository(Repository[VectorStoreFileBatchRow]):
    model = VectorStoreFileBatchRow
    kind = "vector store file batch"

    async def delete_store_batches(self, vector_store_id: str) -> None:
        await self.session.execute(
            delete(VectorStoreFileBatchRow).where(
                VectorStoreFileBatchRow.vector_store_id == vector_store_id
            )
        )
