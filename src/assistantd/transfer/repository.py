"""Every query of import and export: they span all the tables of a project, and look ids up
in every project (ids are unique across projects)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from assistantd.core.db import ObjectRow
from assistantd.vector_stores.models import VectorStoreFileRow

#: Ids per `IN (...)` query.
ID_CHUNK = 500


class TransferRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def owners(self, model: type[ObjectRow], ids: Iterable[str]) -> dict[str, str]:
        """id -> project of those of `ids` that exist in any project."""
        found: dict[str, str] = {}
        ids = list(ids)
        for i in range(0, len(ids), ID_CHUNK):
            stmt = select(model.id, model.project_id).where(model.id.in_(ids[i : i + ID_CHUNK]))
            found.update({a: b for a, b in (await self.session.execute(stmt)).all()})
        return found

    async def store_file_keys(self, store_ids: Iterable[str]) -> set[tuple[str, str]]:
        """(store, file) of the files of these vector stores."""
        keys: set[tuple[str, str]] = set()
        ids = list(store_ids)
        m = VectorStoreFileRow
        for i in range(0, len(ids), ID_CHUNK):
            stmt = select(m.vector_store_id, m.id).where(
                m.vector_store_id.in_(ids[i : i + ID_CHUNK])
            )
            keys.update((a, b) for a, b in (await self.session.execute(stmt)).all())
        return keys

    async def all_of(
        self, model: type[ObjectRow], project_id: str, *where: ColumnElement[bool]
    ) -> Sequence[Any]:
        """Every row of the project (and `where`), in list order."""
        stmt = (
            select(model)
            .where(model.project_id == project_id, *where)
            .order_by(model.seq, model.id)
        )
        return (await self.session.execute(stmt)).scalars().all()

    async def analyze(self, models: Iterable[Any]) -> None:
        """Fresh statistics after a bulk load, on PostgreSQL: without them the planner takes
        the tables for small and scans them whole (an id lookup took 0.2 s instead of 1 ms).
        SQLite plans from its indexes alone."""
        conn = await self.session.connection()
        if conn.dialect.name == "postgresql":
            await conn.execute(text("ANALYZE " + ", ".join(m.__tablename__ for m in models)))
