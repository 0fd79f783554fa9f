from __future__ import annotations

from sqlalchemy import select

from assistantd.core.repository import Repository
from assistantd.runs.models import RunRow, RunStepRow


class RunRepository(Repository[RunRow]):
    model = RunRow
    kind = "run"

    async def active_for_thread(self, thread_id: str) -> str | None:
        """The id of the thread's active run, if it has one."""
        conn = await self.session.connection()
        return (await conn.execute(select(RunRow.id).where(RunRow.active_thread_id == thread_id))).scalar()


class RunStepRepository(Repository[RunStepRow]):
    model = RunStepRow
    kind = "run step"
