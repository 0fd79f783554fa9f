"""The typed base of every repository: get, insert, update, delete, and a cursor page."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Row, Table, and_, delete, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from assistantd.core.db import ObjectRow
from assistantd.core.errors import not_found
from assistantd.core.pagination import ListParams

RowT = TypeVar("RowT", bound=ObjectRow)


class Repository(Generic[RowT]):
    """Queries on one table of API objects, always scoped to a project."""

    model: type[RowT]
    #: What the API calls the object, for its 404: `No thread found with id 'thread_x'.`
    kind: str

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(
        self, project_id: str, object_id: str, *where: ColumnElement[bool], for_update: bool = False
    ) -> RowT | None:
        m = self.model
        stmt = select(m).where(m.id == object_id, m.project_id == project_id, *where)
        if for_update:
            stmt = stmt.with_for_update()
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def require(
        self, project_id: str, object_id: str, *where: ColumnElement[bool], for_update: bool = False
    ) -> RowT:
        """The row, to change it; OpenAI's 404 (`not_found(kind, id)`) when there is none."""
        row = await self.get(project_id, object_id, *where, for_update=for_update)
        if row is None:
            raise not_found(self.kind, object_id)
        return row

    async def require_read(
        self, project_id: str, object_id: str, *where: ColumnElement[bool]
    ) -> Row[Any]:
        """The row's columns, read-only, as `read`; the 404 as `require` when there is none."""
        row = await self.read(project_id, object_id, *where)
        if row is None:
            raise not_found(self.kind, object_id)
        return row

    async def existing_ids(
        self, project_id: str, object_ids: Sequence[str], *where: ColumnElement[bool]
    ) -> set[str]:
        """Which of `object_ids` exist in the project: one query for any number of ids."""
        if not object_ids:
            return set()
        m = self.model
        stmt = select(m.id).where(m.project_id == project_id, m.id.in_(set(object_ids)), *where)
        return set((await self.session.execute(stmt)).scalars())

    async def read(
        self, project_id: str, object_id: str, *where: ColumnElement[bool]
    ) -> Row[Any] | None:
        """The row's columns, read-only (`.body`, `.status` …): no ORM object is built, which
        is most of a lookup's cost. For reads on hot paths (polls, existence checks)."""
        table: Table = self.model.__table__  # type: ignore[attr-defined]
        stmt = select(table).where(
            table.c.id == object_id, table.c.project_id == project_id, *where
        )
        conn = await self.session.connection()
        return (await conn.execute(stmt)).first()

    async def insert(self, row: RowT) -> RowT:
        self.session.add(row)
        await self.session.flush()
        return row

    async def insert_untracked(self, row: RowT) -> RowT:
        """INSERT the row's columns without the ORM's bookkeeping (a third of a small
        request's cost). The object stays outside the session: change the row later only
        through one read back with `get`."""
        table: Table = self.model.__table__  # type: ignore[attr-defined]
        values = {c.key: row.__dict__[c.key] for c in table.columns if c.key in row.__dict__}
        conn = await self.session.connection()
        await conn.execute(insert(table).values(**values))
        return row

    async def insert_many(self, rows: Sequence[RowT]) -> None:
        """INSERT rows in one executemany, without the ORM's bookkeeping (`assistantd import`).
        Every column is given (unset ones as NULL); the objects stay outside the session."""
        if not rows:
            return
        table: Table = self.model.__table__  # type: ignore[attr-defined]
        keys = [c.key for c in table.columns]
        conn = await self.session.connection()
        await conn.execute(insert(table), [{k: row.__dict__.get(k) for k in keys} for row in rows])

    async def save_body(self, row: RowT, body: Mapping[str, Any]) -> None:
        """Replace the stored wire object (JSON columns change only on reassignment)."""
        row.body = dict(body)
        await self.session.flush()

    async def delete(self, row: RowT) -> None:
        await self.session.delete(row)
        await self.session.flush()

    async def delete_where(self, *where: ColumnElement[bool]) -> None:
        await self.session.execute(delete(self.model).where(*where))

    async def list_page(
        self, project_id: str, params: ListParams, *where: ColumnElement[bool]
    ) -> tuple[Sequence[RowT], bool]:
        """One page in `(seq, id)` order; `after`/`before` are ids within the same scope.

        An unknown cursor id is an empty page past the end, as a deleted cursor object
        would be: the SDK then stops walking.
        """
        m = self.model
        scope = (m.project_id == project_id, *where)
        conds: list[ColumnElement[bool]] = []
        for cursor, forward in ((params.after, True), (params.before, False)):
            if cursor is None:
                continue
            found = (
                await self.session.execute(select(m.seq, m.id).where(m.id == cursor, *scope))
            ).first()
            if found is None:
                return [], False
            seq, cid = found
            # "after" means later in the listing's own order, so it flips with `order`.
            later = forward == (params.order == "asc")
            if later:
                conds.append(or_(m.seq > seq, and_(m.seq == seq, m.id > cid)))
            else:
                conds.append(or_(m.seq < seq, and_(m.seq == seq, m.id < cid)))
        order_by = (
            (m.seq.asc(), m.id.asc()) if params.order == "asc" else (m.seq.desc(), m.id.desc())
        )
        stmt = select(m).where(*scope, *conds).order_by(*order_by).limit(params.limit + 1)
        if params.before is not None and params.after is None:
            # Walking backwards: take the nearest `limit` rows before the cursor, then
            # restore the listing's order.
            rev = (
                (m.seq.desc(), m.id.desc()) if params.order == "asc" else (m.seq.asc(), m.id.asc())
            )
            stmt = select(m).where(*scope, *conds).order_by(*rev).limit(params.limit + 1)
            rows = list((await self.session.execute(stmt)).scalars())
            has_more = len(rows) > params.limit
            return list(reversed(rows[: params.limit])), has_more
        rows = list((await self.session.execute(stmt)).scalars())
        return rows[: params.limit], len(rows) > params.limit
