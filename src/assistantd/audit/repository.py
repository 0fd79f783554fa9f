"""Queries on the audit log (its pages are `admin.pagination.keyset_page` on `AuditLog.seq`)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from assistantd.audit.models import AuditLog


class AuditLogRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def insert(self, row: AuditLog) -> AuditLog:
        self.session.add(row)
        await self.session.flush()
        return row
