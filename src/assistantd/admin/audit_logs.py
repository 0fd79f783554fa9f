"""`GET /v1/organization/audit_logs`: the recorded events, newest first, with the spec's filters.

The filters come as the SDKs send them: arrays as `event_types[]=a&event_types[]=b` (plain
`event_types=a` is taken too) and `effective_at` as `effective_at[gte]=…` brackets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, false
from starlette.datastructures import QueryParams

from assistantd.admin.pagination import Cursor, envelope, keyset_page
from assistantd.audit.event_types import RECORDED_TYPES
from assistantd.audit.models import AuditLog
from assistantd.audit.service import OPERATOR
from assistantd.core.db import UnitOfWork
from assistantd.core.errors import InvalidRequest
from assistantd.core.pagination import parse_limit

_BOUNDS = {"gt": "__gt__", "gte": "__ge__", "lt": "__lt__", "lte": "__le__"}


@dataclass(frozen=True)
class AuditQuery:
    cursor: Cursor
    where: list[ColumnElement[bool]]


def _many(q: QueryParams, name: str) -> list[str]:
    return [v for v in (*q.getlist(f"{name}[]"), *q.getlist(name)) if v != ""]


def _effective_at(q: QueryParams) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    for bound, op in _BOUNDS.items():
        raw = q.get(f"effective_at[{bound}]")
        if raw is None or raw == "":
            continue
        try:
            value = int(raw)
        except ValueError:
            raise InvalidRequest(
                f"Invalid 'effective_at[{bound}]': expected an integer, but got {raw!r} instead.",
                param=f"effective_at[{bound}]",
            ) from None
        conds.append(getattr(AuditLog.effective_at, op)(value))
    return conds


def _event_types(q: QueryParams) -> list[str]:
    values = _many(q, "event_types")
    unknown = [v for v in values if v not in RECORDED_TYPES]
    if unknown:
        raise InvalidRequest(
            f"Invalid value for 'event_types': {unknown[0]!r} is not an audit log event type "
            "(for example 'project.created' or 'api_key.deleted').",
            param="event_types",
        )
    return values


def _filters(q: QueryParams) -> list[ColumnElement[bool]]:
    where = _effective_at(q)
    types = _event_types(q)
    if types:
        where.append(AuditLog.type.in_(types))
    for name, column in (
        ("project_ids", AuditLog.project_id),
        ("actor_ids", AuditLog.actor_id),
        ("resource_ids", AuditLog.resource_id),
    ):
        values = _many(q, name)
        if values:
            where.append(column.in_(values))
    emails = _many(q, "actor_emails")
    if emails:
        # Every actor is an admin key of the one operator: their email matches it or nothing.
        where.append(AuditLog.actor_id.is_not(None) if OPERATOR["email"] in emails else false())
    if q.get("tenant_only", "").lower() == "true":
        where.append(false())  # no tenant-scoped event types are recorded
    return where


def parse(q: QueryParams) -> AuditQuery:
    cursor = Cursor(
        limit=parse_limit(q.get("limit")),
        after=q.get("after") or None,
        before=q.get("before") or None,
        descending=True,
    )
    return AuditQuery(cursor, _filters(q))


async def list_(uow: UnitOfWork, query: AuditQuery) -> dict[str, Any]:
    rows, more = await keyset_page(uow.session, AuditLog, AuditLog.seq, query.where, query.cursor)
    return envelope([row.body for row in rows], more)
