from __future__ import annotations

from sqlalchemy import select

from assistantd.core.repository import Repository
from assistantd.runs.models import RunRow, RunStepRow


class RunRepository(Repository[RunRow]):
    model = RunRow

    async def active_for_thread(self, thread_id: str) -> RunRow | None:
        stmt = select(RunRow).where(RunRow.active_thread_id == thread_id)
        return (await self.session.execute(stmt)).scalar_one_or_none()


class RunStepRepository(Repository[RunStepRow]):
    model = RunStepRow
