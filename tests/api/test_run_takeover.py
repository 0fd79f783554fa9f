"""Takeover of a run whose worker was lost, without HTTP: a `RunWorker` and its `RunEngine`
on a migrated SQLite database, a scripted model and the in-memory bus.

A run left `in_progress` mid-answer (the executing task cancelled, as a dying worker leaves
it) under the lease of a process on another host: the sweep leaves it while the lease is
live and takes it over once it ran out; past `ASSISTANTD_RUN_MAX_TAKEOVERS` it ends
`failed`; a worker whose lease another took stops executing the run.

A worker that stalls past its lease rather than dying (`worker/lease.py`): once its lease
ran out here without a renewal it publishes and writes nothing more, whether or not another
worker took the run over meanwhile; a renewal or a sweep that finds the lease taken stops
it; a write of a run whose lease another worker holds is refused and rolled back (on SQLite
and PostgreSQL). The run is then completed once, by its new holder."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from assistantd.core.db import create_engine, offloaded
from assistantd.core.settings import Settings
from assistantd.events.bus import MemoryEventBus, RunEvent
from assistantd.messages.service import new_message
from assistantd.migrations import upgrade
from assistantd.runs.objects import new_step
from assistantd.runs.repository import MESSAGES, RUNS, STEPS
from assistantd.runs.state import RunState, StoredStep
from assistantd.testing.runs import insert_queued, migrated_sqlite, run_body
from assistantd.testing.scripted import ScriptedBackend, text_turn
from assistantd.testing.server import SwitchRouter, pg_database
from assistantd.worker.engine import RunEngine
from assistantd.worker.lease import HeldLease, LeaseLost
from assistantd.worker.store import RunStore
from assistantd.worker.worker import RunWorker

ANSWER = "one two three four five six seven eight nine ten"
ELSEWHERE = "another-host:4242"
#: A short lease for the stall tests: a worker may act for 1.25 s after its last renewal.
SHORT = {
    "run_lease_seconds": 2.0,
    "run_lease_renew_seconds": 0.25,
    "run_lease_margin_seconds": 0.75,
    "run_sweep_seconds": 0.1,
}


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = await migrated_sqlite(tmp_path / "runs.db")
    yield engine
    await engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
async def any_db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    if request.param == "sqlite":
        engine = await migrated_sqlite(tmp_path / "runs.db")
        yield engine
        await engine.dispose()
        return
    url, drop = pg_database()
    try:
        await asyncio.to_thread(upgrade, url)
        engine = create_engine(url)
        yield engine
        await engine.dispose()
    finally:
        drop()


class BrokenResume(RunEngine):
    """An engine with a fault of ours in resuming a run (outside the run's own loop)."""

    async def _close_interrupted(self, run_id: str, lease: HeldLease | None = None) -> None:
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

    def other_worker(self, **settings: Any) -> RunWorker:
        """A worker on another host, on the same database, models and event bus."""
        other = Settings(_env_file=None, host_id="other-host", **settings)  # type: ignore[call-arg]
        return RunWorker(self.engine, self.store, other)

    async def wait(self, what: Callable[[], Any], seconds: float = 15) -> None:
        deadline = time.monotonic() + seconds
        while not await what():
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)

    async def deltas(self, run_id: str) -> int:
        history = await self.bus.history(run_id)
        return sum(e.event == "thread.message.delta" for e in history)

    async def messages(self, run_id: str) -> list[dict[str, Any]]:
        async with self.db.connect() as conn:
            rows = await conn.execute(
                select(MESSAGES.c.body).where(MESSAGES.c.run_id == run_id).order_by(MESSAGES.c.seq)
            )
            return [r.body for r in rows]

    async def steps(self, run_id: str) -> list[dict[str, Any]]:
        async with self.db.connect() as conn:
            rows = await conn.execute(
                select(STEPS.c.body).where(STEPS.c.run_id == run_id).order_by(STEPS.c.seq)
            )
            return [r.body for r in rows]


def streamed(history: list[RunEvent], message_id: str) -> str:
    """The text the `thread.message.delta` events of `history` sent for `message_id`."""
    deltas = [orjson.loads(e.data) for e in history if e.event == "thread.message.delta"]
    return "".join(
        part["text"]["value"]
        for d in deltas
        if d["id"] == message_id
        for part in d["delta"]["content"]
        if part["type"] == "text"
    )


async def assert_completed_once_by_its_new_holder(rig: Rig, run_id: str, cut: int) -> None:
    """The run was executed up to event `cut` by a worker that lost it, then taken over
    and completed by another: every event from `cut` on is the new holder's (the lost one
    published nothing more), the interrupted message holds exactly what was streamed of
    it, and the answer is in the thread once."""
    row = await rig.row(run_id)
    assert row.status == "completed" and row.lease_owner is None
    history = await rig.bus.history(run_id)
    assert [e.seq for e in history] == list(range(1, len(history) + 1))
    first, second = await rig.messages(run_id)
    names = [e.event for e in history[cut:] if e.event != "thread.message.delta"]
    assert names[:3] == [
        "thread.message.incomplete",
        "thread.run.step.failed",
        "thread.run.in_progress",
    ], names
    assert names[-3:] == ["thread.run.step.completed", "thread.run.completed", "done"], names
    assert names.count("thread.run.completed") == 1 and names.count("done") == 1
    assert streamed(history[cut:], first["id"]) == ""  # nothing of the lost worker's after it
    assert first["status"] == "incomplete"
    assert first["content"][0]["text"]["value"] == streamed(history, first["id"]) != ""
    assert second["status"] == "completed"
    assert second["content"][0]["text"]["value"] == streamed(history, second["id"]) == ANSWER
    assert [s["status"] for s in await rig.steps(run_id)] == ["failed", "completed"]


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


@pytest.mark.parametrize("finds_out_by", ["renewal", "sweep"])
async def test_a_worker_whose_lease_was_taken_stops_executing_the_run(
    db: AsyncEngine, finds_out_by: str
) -> None:
    rig = Rig(db, delay=0.2)
    run_id = await rig.queue()
    rig.worker.submit(run_id)
    await rig.wait(lambda: rig.deltas(run_id))
    assert rig.worker.owner.startswith("this-host:")
    await rig.lease(run_id, ELSEWHERE, time.time() + 60)  # this worker stalled past its lease
    if finds_out_by == "renewal":
        await rig.worker.renew()  # renews only its own leases, and stops the others
        assert (await rig.row(run_id)).lease_owner == ELSEWHERE
    else:
        await rig.worker.sweep()
    published = len(await rig.bus.history(run_id))
    await rig.idle()
    row = await rig.row(run_id)
    assert row.status == "in_progress" and row.lease_owner == ELSEWHERE  # left to its new holder
    assert len(await rig.bus.history(run_id)) == published
    assert [m["status"] for m in await rig.messages(run_id)] == ["in_progress"]


async def test_a_worker_that_has_not_yet_found_its_lease_taken_commits_and_announces_nothing(
    db: AsyncEngine,
) -> None:
    """Its lease is taken while it streams (its local fence still good: no renewal or sweep
    has told it): the answer's end, message, step and run in one transaction, is refused
    and rolled back, and none of its events is published; the new holder completes the run."""
    rig = Rig(db, delay=0.05)
    run_id = await rig.queue()
    rig.worker.submit(run_id)
    await rig.wait(lambda: rig.deltas(run_id))
    await rig.lease(run_id, ELSEWHERE, time.time() - 1)  # taken, and run out since
    await rig.idle()
    row = await rig.row(run_id)
    assert row.status == "in_progress" and row.lease_owner == ELSEWHERE
    assert [m["status"] for m in await rig.messages(run_id)] == ["in_progress"]
    assert [s["status"] for s in await rig.steps(run_id)] == ["in_progress"]
    names = await rig.names(run_id)
    assert names[-1] == "thread.message.in_progress", names  # no completion announced
    cut = len(await rig.bus.history(run_id))
    await rig.worker.sweep()  # the holder's lease ran out: this worker takes the run over
    await rig.idle()
    await assert_completed_once_by_its_new_holder(rig, run_id, cut)


async def test_a_worker_whose_lease_ran_out_unrenewed_stops_and_another_completes_the_run(
    db: AsyncEngine,
) -> None:
    """Its renewer frozen (this worker is never started, so nothing renews), the worker
    stops publishing and writing once the lease less the margin has passed, although the
    database still names it; another worker takes the run over when the lease runs out."""
    rig = Rig(db, delay=0.2, **SHORT)
    run_id = await rig.queue()
    rig.worker.submit(run_id)
    await rig.idle()  # it stopped by itself, mid-answer
    row = await rig.row(run_id)
    assert row.status == "in_progress" and row.lease_owner == rig.worker.owner  # untouched
    assert [m["status"] for m in await rig.messages(run_id)] == ["in_progress"]
    cut = len(await rig.bus.history(run_id))
    assert 0 < await rig.deltas(run_id) < len(ANSWER.split())

    other = rig.other_worker(**SHORT)
    await rig.wait(lambda: asyncio.sleep(0, time.time() > row.lease_expires_at))
    await other.sweep()
    assert other.executing() == [run_id]
    deadline = time.monotonic() + 15
    while other.executing():
        assert time.monotonic() < deadline
        await other.renew()
        await asyncio.sleep(0.1)
    await assert_completed_once_by_its_new_holder(rig, run_id, cut)


async def test_a_worker_that_stalls_while_another_takes_its_run_over_acts_no_more_on_waking(
    db: AsyncEngine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Both workers started (renewals, sweeps). The one executing the run stalls (its event
    loop blocked, as by a long pause or SIGSTOP) past its lease; meanwhile the other claims
    the run, as its sweep would. On waking, the first has ready to go both the next token
    of its answer and its overdue renewal and sweep: none of them publishes or writes
    anything, and the other completes the run."""
    caplog.set_level(logging.INFO, "assistantd")
    rig = Rig(db, delay=0.1, **SHORT)
    other = rig.other_worker(**SHORT)
    await rig.worker.start()
    await other.start()
    try:
        run_id = await rig.queue()
        rig.worker.submit(run_id)
        await rig.wait(lambda: asyncio.sleep(0, rig.worker.executing() == [run_id]))
        await rig.wait(lambda: rig.deltas(run_id))
        assert (await rig.row(run_id)).lease_owner == rig.worker.owner
        cut = len(await rig.bus.history(run_id))

        time.sleep(SHORT["run_lease_seconds"] + 0.3)  # noqa: ASYNC251 (the stall: nothing here runs)

        async def claim() -> bool:  # the other worker's claim, from its own connection
            engine = await migrated_sqlite(tmp_path / "runs.db")
            try:
                return await RunStore(engine).claim(
                    run_id, other.owner, time.time(), SHORT["run_lease_seconds"]
                )
            finally:
                await engine.dispose()

        with ThreadPoolExecutor(1) as pool:
            assert pool.submit(asyncio.run, claim()).result()
        other.submit(run_id)
        assert len(await rig.bus.history(run_id)) == cut  # (nothing published yet)

        deadline = time.monotonic() + 20
        while rig.worker.executing() or other.executing():
            assert time.monotonic() < deadline, (rig.worker.executing(), other.executing())
            await asyncio.sleep(0.05)
    finally:
        await rig.worker.stop()
        await other.stop()
    await assert_completed_once_by_its_new_holder(rig, run_id, cut)
    assert f"run {run_id}: its lease" in caplog.text and "it stops executing here" in caplog.text
    assert "Traceback" not in caplog.text


async def test_a_write_of_a_run_whose_lease_another_worker_holds_is_refused_and_rolled_back(
    any_db: AsyncEngine,
) -> None:
    """The store-level fence, on SQLite and PostgreSQL: each transaction of an execution
    (a step inserted with its message, a run started, bodies written with or without the
    run's) is made only while the run's lease names the writer."""
    store, me, holder = RunStore(any_db), "host-a:1", "host-b:2"
    run, step, message = await _held_run_with_first_message(any_db, holder)
    message["status"] = "in_progress"

    async def rows() -> tuple[Any, list[str], list[str]]:
        async with any_db.connect() as conn:
            status = (await conn.execute(select(RUNS.c.status))).scalar()
            steps = (await conn.execute(select(STEPS.c.body))).scalars().all()
            messages = (await conn.execute(select(MESSAGES.c.body))).scalars().all()
        return status, [s["status"] for s in steps], [m["status"] for m in messages]

    with pytest.raises(LeaseLost, match=me):
        await store.insert_step("proj_x", step, message, held_by=me)
    with pytest.raises(LeaseLost):
        await store.start(dict(run, status="in_progress"), RunState(), held_by=me)
    with pytest.raises(LeaseLost):  # nor does a start that opens the run's first step
        await store.start(
            dict(run, status="in_progress"),
            RunState(),
            held_by=me,
            opening=lambda context: ("proj_x", step, message),
        )
    assert await rows() == ("queued", [], [])
    await store.insert_step("proj_x", step, message, held_by=holder)  # the holder's goes in
    await store.start(dict(run, status="in_progress"), RunState(), held_by=holder)

    done = dict(message, status="completed")
    finished = dict(step.body, status="completed")
    for writes in (
        [("message", done, None)],
        [("message", done, None), ("step", finished, None)],
        [("message", done, None), ("run", dict(run, status="completed"), None)],
    ):
        with pytest.raises(LeaseLost):
            await store.write(writes, held_by=me)  # type: ignore[arg-type]
        assert await rows() == ("in_progress", ["in_progress"], ["in_progress"])

    assert await store.renew([run["id"]], me, time.time() + 30) == {run["id"]: holder}
    assert await store.renew([run["id"]], holder, time.time() + 30) == {}
    await store.write([("message", done, None)], held_by=holder)
    assert await rows() == ("in_progress", ["in_progress"], ["completed"])


async def _held_run_with_first_message(
    engine: AsyncEngine, holder: str
) -> tuple[dict[str, Any], StoredStep, dict[str, Any]]:
    """A queued run whose lease `holder` holds, and the first step and message of a
    tool-less model call on it (not stored)."""
    run = run_body()
    await insert_queued(engine, run, lease_owner=holder, lease_expires_at=time.time() + 60)
    step = StoredStep(
        new_step(run, "message_creation", {"type": "message_creation", "message_creation": {}})
    )
    message = new_message(
        run["thread_id"], "assistant", [], assistant_id="asst_x", run_id=run["id"]
    )
    return run, step, message


async def test_a_runs_start_inserts_the_step_and_message_its_opening_gives_with_the_run(
    any_db: AsyncEngine,
) -> None:
    """`RunStore.start` with an opening (a tool-less run's first model call): the opening
    sees the context the start read, and what it gives commits with the run's start."""
    store, holder = RunStore(any_db), "host-a:1"
    run, step, message = await _held_run_with_first_message(any_db, holder)
    seen: list[Any] = []

    def opening(context: Any) -> tuple[str, StoredStep, dict[str, Any]]:
        seen.append(context)
        return "proj_x", step, message

    started = dict(run, status="in_progress")
    context, opened = await store.start(
        started, RunState(model_calls=1), fresh=True, held_by=holder, opening=opening
    )
    assert seen == [context] and opened == ("proj_x", step, message)
    async with any_db.connect() as conn:
        row = (await conn.execute(select(RUNS.c.status, RUNS.c.state))).one()
        stored_step = (await conn.execute(select(STEPS.c.project_id, STEPS.c.body))).one()
        stored_message = (await conn.execute(select(MESSAGES.c.run_id, MESSAGES.c.body))).one()
    assert (row.status, row.state) == ("in_progress", {"model_calls": 1})
    assert tuple(stored_step) == ("proj_x", step.body)
    assert tuple(stored_message) == (run["id"], message)
    # The next model call's context has them: the step, and the message as the run's own.
    later = await store.context(started)
    assert [s.body for s in later.steps] == [step.body]
    assert later.own_messages == {message["id"]: message} and later.history == []


async def test_offloaded_the_stores_prebuilt_statements_run_through_sqlalchemy(
    db: AsyncEngine,
) -> None:
    """In `offloaded()` (SQLite statements in a thread) a driver transaction goes through
    SQLAlchemy's `exec_driver_sql` instead of the sqlite3 connection: the same rows."""
    store, holder = RunStore(db), "host-a:1"
    run, step, message = await _held_run_with_first_message(db, holder)
    with offloaded():
        await store.insert_step("proj_x", step, message, held_by=holder)
        with pytest.raises(LeaseLost):  # rolled back: the message stays as inserted
            await store.write(
                [("message", dict(message, status="completed"), None)], held_by="host-b:2"
            )
        context = await store.context(run)
    assert [s.body for s in context.steps] == [step.body]
    assert context.own_messages == {message["id"]: message}


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
