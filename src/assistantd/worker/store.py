"""The engine's reads and writes: short transactions of their own, outside any request.

A run's own reads and writes (its start, steps, messages, body changes, usage rows, event
log) are prebuilt statements on the driver's connection (`worker/statements.py`): a run
makes about ten, and SQLAlchemy's work per statement cost more than their SQL. The rest
(recovery, leases, sweeps) is SQLAlchemy Core on a bare connection.

The writes of a run's execution name the lease holder (`held_by`): each is then made only
while `runs.lease_owner` still names it, in the same transaction (the run row's UPDATE has it
in its WHERE; a transaction without one first reads the run row FOR UPDATE), and raises
`LeaseLost`, rolled back, when it does not (`worker/lease.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, Table, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from assistantd.core.db import DriverTransaction, driver_transaction, is_sqlite
from assistantd.core.ids import now_seconds
from assistantd.events.bus import RunEvent
from assistantd.runs.models import RunEventRow
from assistantd.runs.repository import MESSAGES, RUNS, STEPS
from assistantd.runs.state import RunState, StepState, StoredStep
from assistantd.usage import repository as usage_repo
from assistantd.usage.meter import ModelCall
from assistantd.worker import statements
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
    `worker/statements.py::update_body`, the twin of `runs/repository.py::body_update`,
    the API's statement for them."""

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
        async with driver_transaction(self.engine) as tx:
            if held_by is not None and bodies and not any(kind == "run" for kind, _, _ in bodies):
                await self._hold(tx, bodies[0][1]["run_id"], held_by)
            for kind, body, state in bodies:
                await self._update(tx, kind, body, state, held_by)
            await usage_repo.insert_calls(tx, usage, now_seconds())

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
        async with driver_transaction(self.engine) as tx:
            await self._update(tx, "run", run, state, held_by)
            context = await self._context(tx, run, steps=not fresh)
            opened = opening(context) if opening is not None else None
            if opened is not None:
                await statements.insert_step(tx, *opened)
            return context, opened

    @staticmethod
    async def _update(
        tx: DriverTransaction,
        kind: str,
        body: dict[str, Any],
        state: RunState | StepState | None,
        held_by: str | None,
    ) -> None:
        # A run's row names its holder: the change is made only if that is still us.
        changed = await statements.update_body(tx, kind, body, state, held_by)
        if kind == "run" and held_by is not None and not changed:
            raise LeaseLost(f"the database no longer names {held_by} as the run's lease holder")

    async def _hold(self, tx: DriverTransaction, run_id: str, held_by: str) -> None:
        """Fail the transaction (`LeaseLost`) unless `held_by` holds the run's lease; on
        PostgreSQL the row stays locked to the commit, so a takeover waits for it (SQLite's
        transactions hold the database's write lock from their BEGIN)."""
        if not await statements.held(tx, run_id, held_by, lock=not is_sqlite(self.engine)):
            raise LeaseLost(f"the database no longer names {held_by} as the run's lease holder")

    async def context(self, run: dict[str, Any]) -> RunContext:
        """What a model call needs: the thread, its messages, this run's steps, the assistant."""
        async with driver_transaction(self.engine) as tx:
            return await self._context(tx, run)

    @staticmethod
    async def _context(
        tx: DriverTransaction, run: dict[str, Any], *, steps: bool = True
    ) -> RunContext:
        thread, assistant = await statements.thread_and_assistant(
            tx, run["thread_id"], run["assistant_id"]
        )
        msgs = await statements.thread_messages(tx, run["thread_id"])
        return RunContext(
            history=[body for _, run_id, body in msgs if run_id != run["id"]],
            steps=await statements.run_steps(tx, run["id"]) if steps else [],
            own_messages={id_: body for id_, run_id, body in msgs if run_id == run["id"]},
            thread=thread,
            assistant=assistant,
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
        async with driver_transaction(self.engine) as tx:
            if held_by is not None:
                await self._hold(tx, step.body["run_id"], held_by)
            await statements.insert_step(tx, project_id, step, message)

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
            (run_id, e.seq, e.event, e.data.decode()) for run_id, events in logs for e in events
        ]
        if not rows:
            return
        async with driver_transaction(self.engine) as tx:
            await statements.insert_events(tx, rows)

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
