"""Takeover of a run whose worker was lost, without HTTP: a `RunWorker` and its `RunEngine`
on a migrated SQLite database, a scripted model and the in-memory bus.

A run left `in_progress` mid-answer (the executing task cancelled, as a dying worker leaves
it) under the lease of a process on another host: the sweep leaves it while the lease is
live and takes it over once it ran out; past `ASSISTANTD_RUN_MAX_TAKEOVERS` it ends
`failed`; a worker whose lease another took stops executing the run."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from assistantd.core.settings import Settings
from assistantd.events.bus import MemoryEventBus
from assistantd.runs.repository import RUNS
from assistantd.testing.runs import insert_queued, migrated_sqlite, run_body
from assistantd.testing.scripted import ScriptedBackend, text_turn
from assistantd.testing.server import SwitchRouter
from assistantd.worker.engine import RunEngine
from assistantd.worker.store import RunStore
from assistantd.worker.worker import RunWorker

ANSWER = "one two three four five six seven eight nine ten"
ELSEWHERE = "another-host:4242"


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = await migrated_sqlite(tmp_path / "runs.db")
    yield engine
    await engine.dispose()


class BrokenResume(RunEngine):
    """An engine with a fault of ours in resuming a run (outside the run's own loop)."""

    async def _close_interrupted(self, run_id: str) -> None:
        raise RuntimeError("resume broke")


class Rig:
    def __init__(
        self,
        db: AsyncEngine,
        delay: float = 0.0,
        engine: type[RunEngine] = RunEngine,
        **settings: Any,
    ) -> None:
        self.db = db
        self.store = RunStore(db)
        self.bus = MemoryEventBus()
        models = SwitchRouter()
        models.use(ScriptedBackend(lambda request: text_turn(ANSWER), delay=delay))
        self.settings = Settings(_env_file=None, host_id="this-host", **settings)  # type: ignore[call-arg]
        self.engine = engine(self.store, self.bus, models, self.settings)
        self.worker = RunWorker(self.engine, self.store, self.settings)

    async def queue(self, thread_id: str = "thread_x") -> str:
        body = run_body(thread_id=thread_id)
        await insert_queued(self.db, body, lease_owner=None, lease_expires_at=None)
        return str(body["id"])

    async def interrupted(self) -> str:
        """A run cut off mid-answer, leased to a process on another host for 60 s more."""
        run_id = await self.queue()
        await self.interrupt(run_id)
        return run_id

    async def interrupt(self, run_id: str) -> None:
        """Execute the run (resume it, if it was in progress) until its answer has begun,
        then cut it off there; leased to a process on another host for 60 s more."""
        after = await self.bus.position(run_id)
        task = asyncio.create_task(RunEngine.execute(self.engine, run_id, asyncio.Event()))
        async with contextlib.aclosing(self.bus.subscribe(run_id, after)) as events:
            async for event in events:
                if event is not None and event.event == "thread.message.delta":
                    break
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await self.lease(run_id, ELSEWHERE, time.time() + 60)

    async def lease(self, run_id: str, owner: str, until: float) -> None:
        async with self.db.begin() as conn:
            await conn.execute(
                update(RUNS)
                .where(RUNS.c.id == run_id)
                .values(lease_owner=owner, lease_expires_at=until)
            )

    async def row(self, run_id: str) -> Any:
        async with self.db.connect() as conn:
            return (await conn.execute(select(RUNS).where(RUNS.c.id == run_id))).one()

    async def idle(self) -> None:
        deadline = time.monotonic() + 30
        while self.worker.executing():
            assert time.monotonic() < deadline, self.worker.executing()
            await asyncio.sleep(0.02)

    async def names(self, run_id: str) -> list[str]:
        return [
            e.event for e in await self.bus.history(run_id) if e.event != "thread.message.delta"
        ]


async def test_a_run_leased_on_another_host_is_taken_over_only_once_its_lease_ran_out(
    db: AsyncEngine,
) -> None:
    rig = Rig(db)
    run_id = await rig.interrupted()
    await rig.worker.sweep()
    assert rig.worker.executing() == []  # a live lease of a pid this host cannot look up
    assert (await rig.row(run_id)).status == "in_progress"

    await rig.lease(run_id, ELSEWHERE, time.time() - 1)
    await rig.worker.sweep()
    assert rig.worker.executing() == [run_id]
    await rig.idle()
    row = await rig.row(run_id)
    assert row.status == "completed" and row.lease_owner is None
    names = await rig.names(run_id)
    failed = names.index("thread.run.step.failed")
    assert names[failed - 1 : failed + 2] == [
        "thread.message.incomplete",
        "thread.run.step.failed",
        "thread.run.in_progress",
    ], names
    assert names[-3:] == ["thread.run.step.completed", "thread.run.completed", "done"]


@pytest.mark.parametrize("limit", [0, 1])
async def test_past_the_takeover_limit_the_run_ends_failed(db: AsyncEngine, limit: int) -> None:
    rig = Rig(db, delay=0.01, run_max_takeovers=limit)
    run_id = await rig.interrupted()
    for _ in range(limit):  # resumed, and cut off again
        await rig.interrupt(run_id)
    await rig.lease(run_id, ELSEWHERE, time.time() - 1)
    await rig.worker.sweep()
    await rig.idle()
    row = await rig.row(run_id)
    assert row.status == "failed" and (row.active_thread_id, row.lease_owner) == (None, None)
    assert row.body["last_error"]["code"] == "server_error"
    assert "ASSISTANTD_RUN_MAX_TAKEOVERS" in row.body["last_error"]["message"]
    names = await rig.names(run_id)
    assert names[-4:] == [
        "thread.message.incomplete",
        "thread.run.step.failed",
        "thread.run.failed",
        "done",
    ]


async def test_a_run_whose_resume_breaks_ends_failed_instead_of_passing_from_worker_to_worker(
    db: AsyncEngine,
    caplog: pytest.LogCaptureFixture,
) -> None:
    rig = Rig(db, engine=BrokenResume)
    run_id = await rig.interrupted()
    await rig.lease(run_id, ELSEWHERE, time.time() - 1)
    await rig.worker.sweep()
    await rig.idle()
    row = await rig.row(run_id)
    assert row.status == "failed" and (row.active_thread_id, row.lease_owner) == (None, None)
    assert row.body["last_error"] == {
        "code": "server_error",
        "message": "assistantd could not go on with this run: RuntimeError: resume broke",
    }
    names = await rig.names(run_id)
    assert names[-4:] == [
        "thread.message.incomplete",
        "thread.run.step.failed",
        "thread.run.failed",
        "done",
    ]
    assert "worker failed on run" in caplog.text  # a fault of ours is logged with its traceback


async def test_a_worker_whose_lease_was_taken_stops_executing_the_run(db: AsyncEngine) -> None:
    rig = Rig(db, delay=0.2)
    run_id = await rig.queue()
    rig.worker.submit(run_id)
    deadline = time.monotonic() + 10
    while (await rig.row(run_id)).lease_owner != rig.worker.owner:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    assert rig.worker.owner.startswith("this-host:")
    await rig.lease(run_id, ELSEWHERE, time.time() + 60)  # this worker stalled past its lease
    await rig.worker.renew()  # renews only its own leases
    assert (await rig.row(run_id)).lease_owner == ELSEWHERE
    await rig.worker.sweep()
    await rig.idle()
    row = await rig.row(run_id)
    assert row.status == "in_progress" and row.lease_owner == ELSEWHERE  # left to its new holder


async def test_a_run_waiting_for_a_slot_is_not_mistaken_for_one_taken_from_this_worker(
    db: AsyncEngine,
) -> None:
    rig = Rig(db, delay=0.02, run_concurrency=1)
    waiting = await rig.interrupted()
    await rig.lease(waiting, ELSEWHERE, time.time() - 1)
    busy = await rig.queue("thread_y")
    rig.worker.submit(busy)
    deadline = time.monotonic() + 10
    while (await rig.row(busy)).lease_owner != rig.worker.owner:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    await rig.worker.sweep()  # takes `waiting` up; it waits for `busy`'s slot, not yet claimed
    await rig.worker.sweep()  # its lease still names the lost holder: no reason to stop it
    assert sorted(rig.worker.executing()) == sorted([busy, waiting])
    await rig.idle()
    assert [(await rig.row(r)).status for r in (busy, waiting)] == ["completed", "completed"]
