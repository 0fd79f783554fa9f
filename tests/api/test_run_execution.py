"""The run engine without HTTP: a `RunEngine` on a migrated SQLite database, a scripted
model and the in-memory bus. What a run writes and what it publishes, in which order,
and the lock and lease columns its endings leave."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from assistantd.core.settings import Settings
from assistantd.events.bus import MemoryEventBus
from assistantd.runs.repository import MESSAGES, RUNS, STEPS
from assistantd.testing.runs import insert_queued, migrated_sqlite, run_body
from assistantd.testing.scripted import ScriptedBackend, text_turn, tool_call_turn
from assistantd.testing.server import SwitchRouter
from assistantd.worker.engine import RunEngine
from assistantd.worker.store import RunStore

WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object"}},
}


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    db = await migrated_sqlite(tmp_path / "runs.db")
    yield db
    await db.dispose()


class Rig:
    def __init__(self, db: AsyncEngine, backend: ScriptedBackend) -> None:
        self.db = db
        self.store = RunStore(db)
        self.bus = MemoryEventBus()
        models = SwitchRouter()
        models.use(backend)
        self.engine = RunEngine(self.store, self.bus, models, Settings(_env_file=None))  # type: ignore[call-arg]

    async def queue(self, **over: Any) -> dict[str, Any]:
        body = run_body(**over)
        await insert_queued(self.db, body, lease_owner="me", lease_expires_at=1e12)
        return body

    async def events(self, run_id: str) -> list[tuple[str, Any]]:
        return [
            (e.event, orjson.loads(e.data) if e.event != "done" else None)
            for e in await self.bus.history(run_id)
        ]

    async def row(self, run_id: str) -> Any:
        async with self.db.connect() as conn:
            return (await conn.execute(select(RUNS).where(RUNS.c.id == run_id))).one()

    async def bodies(self, run_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        async with self.db.connect() as conn:
            steps = (
                (
                    await conn.execute(
                        select(STEPS.c.body).where(STEPS.c.run_id == run_id).order_by(STEPS.c.seq)
                    )
                )
                .scalars()
                .all()
            )
            messages = (
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
        return list(steps), list(messages)


async def test_a_text_run_writes_then_publishes_in_the_contract_order(engine: AsyncEngine) -> None:
    rig = Rig(engine, ScriptedBackend([text_turn("Hello there.")]))
    run = await rig.queue()
    await rig.engine.execute(run["id"], asyncio.Event())
    names = [name for name, _ in await rig.events(run["id"])]
    assert names == [
        "thread.run.in_progress",
        "thread.run.step.created",
        "thread.run.step.in_progress",
        "thread.message.created",
        "thread.message.in_progress",
        "thread.message.delta",
        "thread.message.delta",
        "thread.message.completed",
        "thread.run.step.completed",
        "thread.run.completed",
        "done",
    ]
    events = dict(await rig.events(run["id"]))
    row = await rig.row(run["id"])
    # The stream and the database agree, and the ending released the thread and the lease.
    assert row.status == "completed" and events["thread.run.completed"]["status"] == "completed"
    assert (row.active_thread_id, row.lease_owner, row.lease_expires_at) == (None, None, None)
    assert not any(k.startswith("_") for k in events["thread.run.completed"])
    steps, messages = await rig.bodies(run["id"])
    assert [s["status"] for s in steps] == ["completed"] and [m["status"] for m in messages] == [
        "completed"
    ]
    assert messages[0]["content"][0]["text"]["value"] == "Hello there."
    assert events["thread.message.completed"] == messages[0]
    usage = row.body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    assert steps[0]["usage"] == usage  # one model call: the step has all of it


async def test_a_function_call_pauses_the_run_and_releases_only_the_lease(
    engine: AsyncEngine,
) -> None:
    rig = Rig(engine, ScriptedBackend([tool_call_turn("get_weather", {"city": "Paris"})]))
    run = await rig.queue(tools=[WEATHER])
    await rig.engine.execute(run["id"], asyncio.Event())
    names = [name for name, _ in await rig.events(run["id"])]
    assert names[-2:] == ["thread.run.requires_action", "done"]
    row = await rig.row(run["id"])
    assert row.status == "requires_action"
    assert (row.active_thread_id, row.lease_owner) == ("thread_x", None)
    steps, _ = await rig.bodies(run["id"])
    assert [s["status"] for s in steps] == ["in_progress"]  # until the outputs come
    calls = row.body["required_action"]["submit_tool_outputs"]["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["get_weather"]
    assert row.state["pending_step_id"] == steps[0]["id"]  # beside the body, never in it
    assert not [k for k in row.body if k.startswith("_")]

    # Expired while waiting: the open tool step ends with it, as the run.
    await rig.engine.finalize(run["id"], "expired")
    row = await rig.row(run["id"])
    steps, _ = await rig.bodies(run["id"])
    assert row.status == "expired" and row.active_thread_id is None
    assert steps[0]["status"] == "expired" and steps[0]["expired_at"] is not None
    assert "pending_step_id" not in row.state and row.body["required_action"] is None
    assert [name for name, _ in await rig.events(run["id"])][-4:] == [
        "done",
        "thread.run.step.expired",
        "thread.run.expired",
        "done",
    ]


async def test_a_cancel_mid_answer_closes_message_and_step_as_cancelled(
    engine: AsyncEngine,
) -> None:
    rig = Rig(
        engine, ScriptedBackend([text_turn("one two three four five six seven eight")], delay=0.05)
    )
    run = await rig.queue()
    cancel = asyncio.Event()
    task = asyncio.create_task(rig.engine.execute(run["id"], cancel))
    async with contextlib.aclosing(rig.bus.subscribe(run["id"])) as stream:
        async for event in stream:  # until the answer has begun
            if event is not None and event.event == "thread.message.delta":
                break
    cancel.set()
    await task
    names = [name for name, _ in await rig.events(run["id"])]
    assert names[-4:] == [
        "thread.message.incomplete",
        "thread.run.step.cancelled",
        "thread.run.cancelled",
        "done",
    ]
    steps, messages = await rig.bodies(run["id"])
    assert messages[0]["incomplete_details"] == {"reason": "run_cancelled"}
    assert steps[0]["status"] == "cancelled" and steps[0]["cancelled_at"] is not None
    row = await rig.row(run["id"])
    assert row.status == "cancelled" and row.body["cancelled_at"] is not None
    assert (row.active_thread_id, row.lease_owner) == (None, None)
