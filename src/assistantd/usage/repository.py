"""All SQL of usage: inserting records and summing them into time buckets.

A record's bucket is `(created_at - start) // width`: integer division on SQLite and
PostgreSQL alike, so one GROUP BY yields every bucket of a page.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Table, distinct, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from assistantd.core.db import DriverTransaction, Prebuilt
from assistantd.usage.meter import ModelCall
from assistantd.usage.models import UsageRecord
from assistantd.vector_stores.models import VectorStoreFileRow, VectorStoreRow

USAGE: Table = UsageRecord.__table__  # type: ignore[assignment]

#: Result rows: a bucket index (or a key), then group values, then sums.
Rows = Sequence[tuple[Any, ...]]


@dataclass(frozen=True, slots=True)
class Span:
    """Records with `start <= created_at < end`, in buckets of `width` seconds from `origin`."""

    origin: int
    start: int
    end: int
    width: int
    project_ids: tuple[str, ...] = ()
    api_key_ids: tuple[str, ...] = ()
    models: tuple[str, ...] = ()


#: A model call's row: its columns, in the order of `_row`'s values.
_CALL_COLUMNS = (
    "created_at",
    "project_id",
    "api_key_id",
    "model",
    "run_id",
    "thread_id",
    "input_tokens",
    "output_tokens",
    "file_search_calls",
    "code_interpreter_calls",
)


def _row(call: ModelCall, created_at: int) -> tuple[Any, ...]:
    return (
        created_at,
        call.project_id,
        call.api_key_id,
        call.model,
        call.run_id,
        call.thread_id,
        call.input_tokens,
        call.output_tokens,
        call.file_search_calls,
        call.code_interpreter_calls,
    )


def _values(call: ModelCall, created_at: int) -> dict[str, Any]:
    return dict(zip(_CALL_COLUMNS, _row(call, created_at), strict=True))


async def insert_call(
    session: AsyncSession | AsyncConnection, call: ModelCall, created_at: int
) -> None:
    await session.execute(insert(USAGE), [_values(call, created_at)])


#: A model call's row, prebuilt for the run engine's own transactions (`insert_calls`).
INSERT_CALL = Prebuilt(
    f"INSERT INTO usage_records ({', '.join(_CALL_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(_CALL_COLUMNS))})"
)


async def insert_calls(tx: DriverTransaction, calls: Sequence[ModelCall], created_at: int) -> None:
    """Insert the usage rows of several model calls in the caller's transaction on the
    driver's connection: the run engine's, with the step that reports them."""
    if calls:
        await tx.executemany(INSERT_CALL, [_row(c, created_at) for c in calls])


def _where(span: Span) -> list[ColumnElement[bool]]:
    r = UsageRecord
    out = [r.created_at >= span.start, r.created_at < span.end]
    if span.project_ids:
        out.append(r.project_id.in_(span.project_ids))
    if span.api_key_ids:
        out.append(r.api_key_id.in_(span.api_key_ids))
    if span.models:
        out.append(r.model.in_(span.models))
    return out


def _bucket(span: Span) -> ColumnElement[Any]:
    return ((UsageRecord.created_at - span.origin) // span.width).label("bucket")


async def token_sums(session: AsyncSession, span: Span, group: Sequence[str]) -> Rows:
    """(bucket, *group, input, output, requests) of model calls."""
    r = UsageRecord
    keys = [_bucket(span), *(getattr(r, g) for g in group)]
    stmt = (
        select(*keys, func.sum(r.input_tokens), func.sum(r.output_tokens), func.count())
        .where(*_where(span))
        .group_by(*keys)
    )
    return [tuple(r) for r in (await session.execute(stmt)).all()]


async def file_search_sums(session: AsyncSession, span: Span, group: Sequence[str]) -> Rows:
    r = UsageRecord
    keys = [_bucket(span), *(getattr(r, g) for g in group)]
    stmt = (
        select(*keys, func.sum(r.file_search_calls))
        .where(*_where(span), r.file_search_calls > 0)
        .group_by(*keys)
    )
    return [tuple(r) for r in (await session.execute(stmt)).all()]


async def code_sessions(session: AsyncSession, span: Span, group: Sequence[str]) -> Rows:
    """A thread's code session counts once per bucket it ran code in."""
    r = UsageRecord
    keys = [_bucket(span), *(getattr(r, g) for g in group)]
    stmt = (
        select(*keys, func.count(distinct(r.thread_id)))
        .where(*_where(span), r.code_interpreter_calls > 0)
        .group_by(*keys)
    )
    return [tuple(r) for r in (await session.execute(stmt)).all()]


async def month_tokens(session: AsyncSession, since: int, project_id: str | None) -> Rows:
    """(model, input, output) since `since`, of one project or (None) of all."""
    r = UsageRecord
    stmt = select(r.model, func.sum(r.input_tokens), func.sum(r.output_tokens)).where(
        r.created_at >= since
    )
    if project_id is not None:
        stmt = stmt.where(r.project_id == project_id)
    return [tuple(r) for r in (await session.execute(stmt.group_by(r.model))).all()]


async def vector_store_bytes(session: AsyncSession, project_ids: Sequence[str]) -> Rows:
    """(project_id, store created_at, bytes) of every live vector store."""
    s, f = VectorStoreRow, VectorStoreFileRow
    stmt = (
        select(s.project_id, s.created_at, func.coalesce(func.sum(f.usage_bytes), 0))
        .select_from(s)
        .outerjoin(f, f.vector_store_id == s.id)
        .group_by(s.id, s.project_id, s.created_at)
    )
    if project_ids:
        stmt = stmt.where(s.project_id.in_(project_ids))
    return [tuple(r) for r in (await session.execute(stmt)).all()]
