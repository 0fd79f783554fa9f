"""All queries on keys: project keys, admin keys, service accounts."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlalchemy import Row, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from assistantd.keys.models import AdminApiKey, ApiKey, ServiceAccount
from assistantd.projects.models import Project


async def touch(
    session: AsyncSession,
    model: type[ApiKey] | type[AdminApiKey],
    key_id: str,
    now: int,
    resolution: int,
) -> None:
    """Set `last_used_at` unless another request did within `resolution` seconds."""
    stale = now - resolution
    await session.execute(
        update(model)
        .where(model.id == key_id)
        .where(model.last_used_at.is_(None) | (model.last_used_at <= stale))
        .values(last_used_at=now)
    )


class ApiKeyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def by_hash(self, secret_hash: str) -> ApiKey | None:
        stmt = select(ApiKey).where(ApiKey.secret_hash == secret_hash)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def lookup(
        self, secret_hash: str
    ) -> Row[str, str, int | None, int | None, int | None] | None:
        """What authenticating needs, in one read: the key's columns and its project's
        `archived_at` (None too for a project without a row)."""
        stmt = (
            select(
                ApiKey.id,
                ApiKey.project_id,
                ApiKey.revoked_at,
                ApiKey.last_used_at,
                Project.archived_at,
            )
            .outerjoin(Project, Project.id == ApiKey.project_id)
            .where(ApiKey.secret_hash == secret_hash)
        )
        return (await self.session.execute(stmt)).first()

    async def get(self, key_id: str) -> ApiKey | None:
        return await self.session.get(ApiKey, key_id)

    async def insert(self, key: ApiKey) -> None:
        self.session.add(key)
        await self.session.flush()

    async def all(self) -> Sequence[ApiKey]:
        return (
            (await self.session.execute(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)))
            .scalars()
            .all()
        )

    async def live_ids_of_account(self, service_account_id: str) -> Sequence[str]:
        stmt = select(ApiKey.id).where(
            ApiKey.service_account_id == service_account_id, ApiKey.revoked_at.is_(None)
        )
        return (await self.session.execute(stmt)).scalars().all()


class AdminKeyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def lookup(self, secret_hash: str) -> Row[str, int | None, int | None, int | None] | None:
        stmt = select(
            AdminApiKey.id, AdminApiKey.revoked_at, AdminApiKey.expires_at, AdminApiKey.last_used_at
        ).where(AdminApiKey.secret_hash == secret_hash)
        return (await self.session.execute(stmt)).first()

    async def get(self, key_id: str) -> AdminApiKey | None:
        return await self.session.get(AdminApiKey, key_id)

    async def insert(self, key: AdminApiKey) -> None:
        self.session.add(key)
        await self.session.flush()

    async def all(self) -> Sequence[AdminApiKey]:
        stmt = select(AdminApiKey).order_by(AdminApiKey.seq, AdminApiKey.id)
        return (await self.session.execute(stmt)).scalars().all()


class ServiceAccountRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get_live(self, project_id: str, account_id: str) -> ServiceAccount | None:
        """The project's account, unless deleted (or another project's)."""
        stmt = select(ServiceAccount).where(
            ServiceAccount.id == account_id,
            ServiceAccount.project_id == project_id,
            ServiceAccount.deleted_at.is_(None),
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def by_ids(self, ids: Collection[str]) -> dict[str, ServiceAccount]:
        if not ids:
            return {}
        rows = (
            await self.session.execute(select(ServiceAccount).where(ServiceAccount.id.in_(ids)))
        ).scalars()
        return {sa.id: sa for sa in rows}

    async def insert(self, account: ServiceAccount) -> None:
        self.session.add(account)
        await self.session.flush()
