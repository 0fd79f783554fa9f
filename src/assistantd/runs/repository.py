from __future__ import annotations

from typing import Any

from sqlalchemy import Table, Update, bindparam, select, update

from assistantd.core.repository import Repository
from assistantd.messages.models import MessageRow
from assistantd.runs.lifecycle import held_columns
from assistantd.runs.models import RunRow, RunStepRow
from assistantd.runs.state import RunState, StepState

RUNS: Table = RunRow.__table__  # type: ignore[assignment]
STEPS: Table = RunStepRow.__table__  # type: ignore[assignment]
MESSAGES: Table = MessageRow.__table__  # type: ignore[assignment]


def body_update(
    kind: str, body: dict[str, Any], state: RunState | StepState | None = None
) -> Update:
    """The one UPDATE that stores a run's, a step's or a run's message's changed body, and
    the run's or step's private `state` with it when one is given (else it is kept).

    Every change of these rows after their insert is one of these, from the API's
    transactions (`RunRepository.write`), or its prebuilt twin from the engine's own
    (`worker/statements.py::update_body`, on the driver's connection): a run's status
    column, thread lock and lease follow its body's status as
    `runs/lifecycle.py::held_columns` says, whoever writes it.
    """
    kept: dict[str, Any] = {} if state is None else {"state": state.dump()}
    if kind == "step":
        return update(STEPS).where(STEPS.c.id == body["id"]).values(body=body, **kept)
    if kind == "message":
        return update(MESSAGES).where(MESSAGES.c.id == body["id"]).values(body=body)
    status = body["status"]
    values: dict[str, Any] = {"status": status, "body": body, **kept, **held_columns(status)}
    return update(RUNS).where(RUNS.c.id == body["id"]).values(**values)


class RunRepository(Repository[RunRow]):
    model = RunRow
    kind = "run"

    async def active_for_thread(self, thread_id: str) -> str | None:
        """The id of the thread's active run, if it has one."""
        conn = await self.session.connection()
        stmt = self._prebuilt(
            ("active_for_thread",),
            lambda: select(RUNS.c.id).where(RUNS.c.active_thread_id == bindparam("_thread")),
        )
        return (await conn.execute(stmt, {"_thread": thread_id})).scalar()

    async def write(
        self, kind: str, body: dict[str, Any], state: RunState | StepState | None = None
    ) -> None:
        """Store a changed run or step body in the request's transaction (`body_update`)."""
        conn = await self.session.connection()
        await conn.execute(body_update(kind, body, state))


class RunStepRepository(Repository[RunStepRow]):
    model = RunStepRow
    kind = "run step"
