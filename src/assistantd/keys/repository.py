from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from assistantd.keys.models import ApiKey


class ApiKeyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def by_hash(self, secret_hash: str) -> ApiKey | None:
        stmt = select(ApiKey).where(ApiKey.secret_hash == secret_hash)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def get(self, key_id: str) -> ApiKey | None:
        return await self.session.get(ApiKey, key_id)

    async def insert(self, key: ApiKey) -> None:
        self.session.add(key)
        await self.session.flush()

    async def all(self) -> Sequence[ApiKey]:
        return (await self.session.execute(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id))).scalars().all()
