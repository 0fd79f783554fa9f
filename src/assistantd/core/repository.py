"""The typed base of every repository: get, insert, update, delete, and a cursor page.

The hot lookups (`get`, `read`, `insert_untracked`, a first page of `list_page`) run
statements built once per table and shape and kept (`_prebuilt`), with the values bound at
execution: building a statement (its comparisons, bind parameters, cache key) cost more
than running it. A scope beside the project is given as `column=value` keywords to use
them; other conditions (`*where` expressions) build the statement per call as before.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Generic, TypeVar

from sqlalchemy import (
    ColumnElement,
    Executable,
    Integer,
    Row,
    Select,
    Table,
    and_,
    bindparam,
    delete,
    insert,
    or_,
    select,
)
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

    #: Statements built once, by (repository class, what, shape) (see the module docstring).
    _statements: ClassVar[dict[tuple[Any, ...], Any]] = {}

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @classmethod
    def _prebuilt(cls, key: tuple[Any, ...], build: Callable[[], Executable]) -> Any:
        full = (cls, *key)
        stmt = cls._statements.get(full)
        if stmt is None:
            stmt = cls._statements[full] = build()
        return stmt

    @classmethod
    def _by_id(cls, target: Any, table: Table, equal: tuple[str, ...]) -> Select[Any]:
        """`SELECT target WHERE id = :_id AND project_id = :_project AND col = :_col …`."""
        return select(target).where(
            table.c.id == bindparam("_id"),
            table.c.project_id == bindparam("_project"),
            *(table.c[k] == bindparam(f"_{k}") for k in equal),
        )

    @staticmethod
    def _params(project_id: str, object_id: str, equal: Mapping[str, Any]) -> dict[str, Any]:
        params = {f"_{k}": v for k, v in equal.items()}
        params["_id"] = object_id
        params["_project"] = project_id
        return params

    @property
    def _table(self) -> Table:
        table: Table = self.model.__table__  # type: ignore[attr-defined]
        return table

    async def get(
        self,
        project_id: str,
        object_id: str,
        *where: ColumnElement[bool],
        for_update: bool = False,
        **equal: Any,
    ) -> RowT | None:
        """The row as an ORM object (to change it), scoped to the project and to `equal`
        (`thread_id=…`) and `where`."""
        m = self.model
        if where:
            stmt = select(m).where(m.id == object_id, m.project_id == project_id, *where)
            for k, v in equal.items():
                stmt = stmt.where(self._table.c[k] == v)
            if for_update:
                stmt = stmt.with_for_update()
            return (await self.session.execute(stmt)).scalar_one_or_none()
        shape = tuple(sorted(equal))

        def build() -> Executable:
            stmt = self._by_id(m, self._table, shape)
            return stmt.with_for_update() if for_update else stmt

        stmt = self._prebuilt(("get", shape, for_update), build)
        params = self._params(project_id, object_id, equal)
        return (await self.session.execute(stmt, params)).scalar_one_or_none()

    async def require(
        self,
        project_id: str,
        object_id: str,
        *where: ColumnElement[bool],
        for_update: bool = False,
        **equal: Any,
    ) -> RowT:
        """The row, to change it; OpenAI's 404 (`not_found(kind, id)`) when there is none."""
        row = await self.get(project_id, object_id, *where, for_update=for_update, **equal)
        if row is None:
            raise not_found(self.kind, object_id)
        return row

    async def require_read(
        self, project_id: str, object_id: str, *where: ColumnElement[bool], **equal: Any
    ) -> Row[Any]:
        """The row's columns, read-only, as `read`; the 404 as `require` when there is none."""
        row = await self.read(project_id, object_id, *where, **equal)
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
        self, project_id: str, object_id: str, *where: ColumnElement[bool], **equal: Any
    ) -> Row[Any] | None:
        """The row's columns, read-only (`.body`, `.status` …): no ORM object is built, which
        is most of a lookup's cost. For reads on hot paths (polls, existence checks)."""
        table = self._table
        conn = await self.session.connection()
        if where:
            stmt = select(table).where(
                table.c.id == object_id,
                table.c.project_id == project_id,
                *where,
                *(table.c[k] == v for k, v in equal.items()),
            )
            return (await conn.execute(stmt)).first()
        shape = tuple(sorted(equal))
        stmt = self._prebuilt(("read", shape), lambda: self._by_id(table, table, shape))
        return (await conn.execute(stmt, self._params(project_id, object_id, equal))).first()

    async def insert(self, row: RowT) -> RowT:
        self.session.add(row)
        await self.session.flush()
        return row

    async def insert_untracked(self, row: RowT) -> RowT:
        """INSERT the row's columns without the ORM's bookkeeping (a third of a small
        request's cost). The object stays outside the session: change the row later only
        through one read back with `get`."""
        values = {c.key: row.__dict__[c.key] for c in self._table.columns if c.key in row.__dict__}
        await self.insert_values(values)
        return row

    async def insert_values(self, values: Mapping[str, Any]) -> None:
        """INSERT one row given as its columns' values, without building an ORM object
        (as `insert_untracked`, for a row the request never reads back as one)."""
        table = self._table
        conn = await self.session.connection()
        # One INSERT per table, its values bound at execution (the statement is compiled
        # for this set of columns once, then found in SQLAlchemy's cache).
        await conn.execute(self._prebuilt(("insert",), lambda: insert(table)), dict(values))

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
        self,
        project_id: str,
        params: ListParams,
        *where: ColumnElement[bool],
        **equal: Any,
    ) -> tuple[Sequence[RowT], bool]:
        """One page in `(seq, id)` order; `after`/`before` are ids within the same scope
        (the project, `equal`'s `column=value` pairs, `where`).

        An unknown cursor id is an empty page past the end, as a deleted cursor object
        would be: the SDK then stops walking.
        """
        m = self.model
        table = self._table
        if not where and params.after is None and params.before is None:
            # A first page: the statement for this order and scope is prebuilt.
            shape = tuple(sorted(equal))
            asc = params.order == "asc"

            def build() -> Executable:
                order = (m.seq.asc(), m.id.asc()) if asc else (m.seq.desc(), m.id.desc())
                scoped = select(m).where(
                    m.project_id == bindparam("_project"),
                    *(table.c[k] == bindparam(f"_{k}") for k in shape),
                )
                return scoped.order_by(*order).limit(bindparam("_limit", type_=Integer))

            stmt = self._prebuilt(("page", shape, asc), build)
            values = {f"_{k}": v for k, v in equal.items()}
            values.update(_project=project_id, _limit=params.limit + 1)
            rows = list((await self.session.execute(stmt, values)).scalars())
            return rows[: params.limit], len(rows) > params.limit
        scope = (
            m.project_id == project_id,
            *where,
            *(table.c[k] == v for k, v in equal.items()),
        )
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
