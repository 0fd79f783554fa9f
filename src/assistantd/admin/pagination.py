"""Cursor pages of the admin lists: `limit`, `after` (and `before` for the audit log).

Rows are ordered by `(seq, id)` — or `(created_at, id)` for project keys, whose table has
no `seq` — so the order is total and the SDK's `after=last_id` walk is exact. An unknown
cursor is an empty page, as in the Assistants lists.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Cursor:
    limit: int
    after: str | None = None
    before: str | None = None
    descending: bool = False


def envelope(data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }


async def _position(
    session: AsyncSession,
    model: Any,
    order: InstrumentedAttribute[int],
    where: Sequence[ColumnElement[bool]],
    cursor_id: str,
) -> tuple[int, str] | None:
    found = (
        await session.execute(select(order, model.id).where(model.id == cursor_id, *where))
    ).first()
    return None if found is None else (found[0], found[1])


def _beyond(
    model: Any, order: InstrumentedAttribute[int], pos: tuple[int, str], later: bool
) -> ColumnElement[bool]:
    value, cid = pos
    if later:
        return or_(order > value, and_(order == value, model.id > cid))
    return or_(order < value, and_(order == value, model.id < cid))


async def keyset_page(
    session: AsyncSession,
    model: type[T],
    order: InstrumentedAttribute[int],
    where: Sequence[ColumnElement[bool]],
    cursor: Cursor,
) -> tuple[list[T], bool]:
    """One page of `model` rows matching `where`, and whether more follow."""
    m: Any = model
    conds: list[ColumnElement[bool]] = []
    for cursor_id, forward in ((cursor.after, True), (cursor.before, False)):
        if cursor_id is None:
            continue
        pos = await _position(session, m, order, where, cursor_id)
        if pos is None:
            return [], False
        conds.append(_beyond(m, order, pos, later=forward != cursor.descending))
    backwards = cursor.before is not None and cursor.after is None
    descending = cursor.descending != backwards
    order_by = (order.desc(), m.id.desc()) if descending else (order.asc(), m.id.asc())
    stmt = select(m).where(*where, *conds).order_by(*order_by).limit(cursor.limit + 1)
    rows = list((await session.execute(stmt)).scalars())
    has_more = len(rows) > cursor.limit
    rows = rows[: cursor.limit]
    return (list(reversed(rows)) if backwards else rows), has_more
