"""The engine's reads and writes: short transactions of their own, outside any request.

SQLAlchemy Core on a bare connection rather than ORM sessions: a run makes a dozen small
writes, and the ORM's unit-of-work bookkeeping was most of their cost.

The writes of a run's execution name the lease holder (`held_by`): each is then made only
while `runs.lease_owner` still names it, in the same transaction (the run row's UPDATE has it
in its WHERE; a transaction without one first reads the run row FOR UPDATE), and raises
`LeaseLost`, rolled back, when it does not (`worker/lease.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, Table, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from assistantd.assistants.models import AssistantRow
from assistantd.core.ids import next_seq, now_seconds
from assistantd.events.bus import RunEvent
from assistantd.runs.models import RunEventRow
from assistantd.runs.repository import MESSAGES, RUNS, STEPS, body_update
from assistantd.runs.state import RunState, StepState, StoredStep
from assistantd.threads.models import ThreadRow
from assistantd.usage import repository as usage_repo
from assistantd.usage.meter import ModelCall
from assistantd.worker.lease import LeaseLost

EVENTS: Table = RunEventRow.__table__  # type: ignore[assignment]

#: A change to write: ("run" | "step" | "message", its body, its private state or None to
#: keep the stored one).
Write = tuple[str, dict[str, Any], RunState | StepState | None]
#: What `RunStore.insert_step` takes: the run's project, a step, the message it creates.
Opened = tuple[str, StoredStep, dict[str, Any] | None]
#: What the run's start inserts, given the context it read (`RunStore.start`).
Opening = Callable[["RunContext"], Opened | None]


class RunStore:
    """Persistence for runs in flight: the run, its steps and messages, its event log.

    The engine's only way to the database; its changes of run, step and message bodies are
    `runs/repository.py::body_update`, the same statement the API's changes use."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def load_run(self, run_id: str) -> Row[Any] | None:
        """The run's row (`id`, `project_id`, `status`, `body`, `state`, lease columns …)."""
        async with self.engine.connect() as conn:
            return (await conn.execute(select(RUNS).where(RUNS.c.id == run_id))).first()

    async def write(
        self,
        bodies: Sequence[Write],
        usage: Sequence[ModelCall] = (),
        held_by: str | None = None,
    ) -> None:
        """Write several bodies (and states) of one run in one transaction, with the usage
        rows of the model calls whose usage they report; with `held_by`, only while that
        worker holds the run's lease (else `LeaseLost`, nothing written)."""
        if not bodies and not usage:
            return
        async with self.engine.begin() as conn:
            if held_by is not None and bodies and not any(kind == "run" for kind, _, _ in bodies):
                await self._hold(conn, bodies[0][1]["run_id"], held_by)
            for kind, body, state in bodies:
                await self._update(conn, kind, body, state, held_by)
            await usage_repo.insert_calls(conn, usage, now_seconds())

    async def start(
        self,
        run: dict[str, Any],
        state: RunState,
        *,
        fresh: bool = False,
        held_by: str | None = None,
        opening: Opening | None = None,
    ) -> tuple[RunContext, Opened | None]:
        """Write the run (now `in_progress`) and read what its first model call needs, in
        one transaction (with `held_by`, as `write`). `fresh`: the run has made no model
        call yet, so it has no steps to read. `opening`: given that context, the step (and
        the message it creates) that the first model call opens, or None when that is not
        known before the call; inserted in the same transaction, returned with the context."""
        async with self.engine.begin() as conn:
            await self._update(conn, "run", run, state, held_by)
            context = await self._context(conn, run, steps=not fresh)
            opened = opening(context) if opening is not None else None
            if opened is not None:
                await self._insert(conn, *opened)
            return context, opened

    @staticmethod
    async def _update(
        conn: Any,
        kind: str,
        body: dict[str, Any],
        state: RunState | StepState | None,
        held_by: str | None,
    ) -> None:
        statement = body_update(kind, body, state)
        if kind != "run" or held_by is None:
            await conn.execute(statement)
            return
        # The run row names its holder: the change is made only if that is still us.
        done = await conn.execute(statement.where(RUNS.c.lease_owner == held_by))
        if not done.rowcount:
            raise LeaseLost(f"the database no longer names {held_by} as the run's lease holder")

    @staticmethod
    async def _hold(conn: Any, run_id: str, held_by: str) -> None:
        """Fail the transaction (`LeaseLost`) unless `held_by` holds the run's lease; on
        PostgreSQL the row stays locked to the commit, so a takeover waits for it (SQLite's
        transactions hold the database's write lock from their BEGIN)."""
        held = (
            await conn.execute(
                select(RUNS.c.id)
                .where(RUNS.c.id == run_id, RUNS.c.lease_owner == held_by)
                .with_for_update()
            )
        ).first()
        if held is None:
            raise LeaseLost(f"the database no longer names {held_by} as the run's lease holder")

    async def context(self, run: dict[str, Any]) -> RunContext:
        """What a model call needs: the thread, its messages, this run's steps, the assistant."""
        async with self.engine.connect() as conn:
            return await self._context(conn, run)

    @staticmethod
    async def _context(conn: Any, run: dict[str, Any], *, steps: bool = True) -> RunContext:
        threads: Table = ThreadRow.__table__  # type: ignore[assignment]
        assistants: Table = AssistantRow.__table__  # type: ignore[assignment]
        # The thread's and the assistant's bodies in one statement (each None when gone).
        thread, assistant = (
            await conn.execute(
                select(
                    select(threads.c.body)
                    .where(threads.c.id == run["thread_id"])
                    .scalar_subquery(),
                    select(assistants.c.body)
                    .where(assistants.c.id == run["assistant_id"])
                    .scalar_subquery(),
                )
            )
        ).one()
        msgs = (
            await conn.execute(
                select(MESSAGES.c.id, MESSAGES.c.run_id, MESSAGES.c.body)
                .where(MESSAGES.c.thread_id == run["thread_id"])
                .order_by(MESSAGES.c.seq, MESSAGES.c.id)
            )
        ).all()
        stored = (
            (
                await conn.execute(
                    select(STEPS.c.body, STEPS.c.state)
                    .where(STEPS.c.run_id == run["id"])
                    .order_by(STEPS.c.seq, STEPS.c.id)
                )
            ).all()
            if steps
            else []
        )
        return RunContext(
            history=[m.body for m in msgs if m.run_id != run["id"]],
            steps=[StoredStep(st.body, StepState.load(st.state)) for st in stored],
            own_messages={m.id: m.body for m in msgs if m.run_id == run["id"]},
            thread=thread,
            assistant=dict(assistant) if assistant is not None else None,
        )

    async def insert_step(
        self,
        project_id: str,
        step: StoredStep,
        message: dict[str, Any] | None = None,
        held_by: str | None = None,
    ) -> None:
        """Insert a step (and the message it creates, in the same transaction; with
        `held_by`, as `write`)."""
        async with self.engine.begin() as conn:
            if held_by is not None:
                await self._hold(conn, step.body["run_id"], held_by)
            await self._insert(conn, project_id, step, message)

    @staticmethod
    async def _insert(
        conn: Any, project_id: str, step: StoredStep, message: dict[str, Any] | None
    ) -> None:
        body = step.body
        await conn.execute(
            insert(STEPS).values(
                id=body["id"],
                project_id=project_id,
                seq=next_seq(),
                created_at=body["created_at"],
                run_id=body["run_id"],
                thread_id=body["thread_id"],
                body=body,
                state=step.state.dump(),
            )
        )
        if message is not None:
            await conn.execute(
                insert(MESSAGES).values(
                    id=message["id"],
                    project_id=project_id,
                    seq=next_seq(),
                    created_at=message["created_at"],
                    thread_id=message["thread_id"],
                    run_id=message["run_id"],
                    body=message,
                )
            )

    async def open_parts(self, run_id: str) -> tuple[list[StoredStep], list[dict[str, Any]]]:
        """The run's steps and messages still `in_progress`."""
        async with self.engine.connect() as conn:
            steps = (
                await conn.execute(
                    select(STEPS.c.body, STEPS.c.state)
                    .where(STEPS.c.run_id == run_id)
                    .order_by(STEPS.c.seq)
                )
            ).all()
            msgs = (
                (
                    await conn.execute(
                        select(MESSAGES.c.body)
                        .where(MESSAGES.c.run_id == run_id)
                        .order_by(MESSAGES.c.seq)
                    )
                )
                .scalars()
                .all()
            )
        return (
            [
                StoredStep(st.body, StepState.load(st.state))
                for st in steps
                if st.body["status"] == "in_progress"
            ],
            [m for m in msgs if m["status"] == "in_progress"],
        )

    async def claim(
        self, run_id: str, owner: str, now: float, lease: float, steal_from: str | None = None
    ) -> bool:
        """Take the run's lease if it is free, expired, already ours, or held by `steal_from`
        (a process known to be dead)."""
        free = (
            (RUNS.c.lease_owner.is_(None))
            | (RUNS.c.lease_owner == owner)
            | (RUNS.c.lease_expires_at < now)
        )
        if steal_from is not None:
            free = free | (RUNS.c.lease_owner == steal_from)
        async with self.engine.begin() as conn:
            res = await conn.execute(
                update(RUNS)
                .where(RUNS.c.id == run_id, RUNS.c.active_thread_id.is_not(None), free)
                .values(lease_owner=owner, lease_expires_at=now + lease)
            )
            return bool(res.rowcount)

    async def renew(
        self, run_ids: Sequence[str], owner: str, until: float
    ) -> dict[str, str | None]:
        """Move `owner`'s leases on `run_ids` to `until`, in one UPDATE. Returns the runs of
        `run_ids` that are no longer `owner`'s, with their holder now (None: the lease was
        released, by the run's pause or end, or the run is gone)."""
        if not run_ids:
            return {}
        async with self.engine.begin() as conn:
            renewed = await conn.execute(
                update(RUNS)
                .where(RUNS.c.id.in_(run_ids), RUNS.c.lease_owner == owner)
                .values(lease_expires_at=until)
            )
            if renewed.rowcount == len(run_ids):
                return {}
            rows = await conn.execute(
                select(RUNS.c.id, RUNS.c.lease_owner).where(RUNS.c.id.in_(run_ids))
            )
            holders: dict[str, str | None] = {row.id: row.lease_owner for row in rows}
        return {run_id: holders.get(run_id) for run_id in run_ids if holders.get(run_id) != owner}

    async def release(self, run_id: str, owner: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                update(RUNS)
                .where(RUNS.c.id == run_id, RUNS.c.lease_owner == owner)
                .values(lease_owner=None, lease_expires_at=None)
            )

    async def candidates(self) -> list[tuple[str, str, str | None, float | None, int | None]]:
        """Non-terminal runs: (id, status, lease owner, lease expiry, expires_at)."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(
                        RUNS.c.id,
                        RUNS.c.status,
                        RUNS.c.lease_owner,
                        RUNS.c.lease_expires_at,
                        RUNS.c.body,
                    ).where(RUNS.c.active_thread_id.is_not(None))
                )
            ).all()
        return [(r[0], r[1], r[2], r[3], (r[4] or {}).get("expires_at")) for r in rows]

    async def persist_events(self, run_id: str, events: Sequence[Any]) -> None:
        await self.persist_event_logs([(run_id, events)])

    async def persist_event_logs(self, logs: Sequence[tuple[str, Sequence[Any]]]) -> None:
        """Append events to several runs' logs (`(run_id, events)`), in one transaction.

        A seq already stored is left as it is: a process that is not executing a run (no
        Redis, several processes) may have written a stray event of its own into the log."""
        rows = [
            {"run_id": run_id, "seq": e.seq, "event": e.event, "data": e.data.decode()}
            for run_id, events in logs
            for e in events
        ]
        if not rows:
            return
        from sqlalchemy.dialects import postgresql, sqlite

        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(EVENTS).on_conflict_do_nothing(index_elements=["run_id", "seq"])
        async with self.engine.begin() as conn:
            await conn.execute(statement, rows)

    async def load_events(self, run_id: str) -> list[Any]:
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(EVENTS.c.seq, EVENTS.c.event, EVENTS.c.data)
                    .where(EVENTS.c.run_id == run_id)
                    .order_by(EVENTS.c.seq)
                )
            ).all()
        return [RunEvent(r.seq, r.event, r.data.encode()) for r in rows]


@dataclass
class RunContext:
    """The state a model call is built from."""

    history: list[dict[str, Any]]  # the thread's messages before this run
    steps: list[StoredStep]  # this run's steps so far
    own_messages: dict[str, dict[str, Any]]  # this run's messages by id
    thread: dict[str, Any] | None
    assistant: dict[str, Any] | None
