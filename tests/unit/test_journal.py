"""The run journal (`worker/journal.py`): a change is written before its event is
published, a batch commits once and then publishes in order, deltas never wait, a model
call's usage row goes with the run's next write and the meter hears of it after."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from assistantd.events.bus import MemoryEventBus
from assistantd.runs.state import StoredStep
from assistantd.usage.meter import ModelCall
from assistantd.worker.journal import RunJournal
from assistantd.worker.store import RunStore, Write

RUN = "run_1"


class RecordingStore(RunStore):
    """A RunStore whose transactions are noted with how many events the log had then."""

    def __init__(self, bus: MemoryEventBus) -> None:
        super().__init__(create_async_engine("sqlite+aiosqlite://"))
        self.bus = bus
        self.transactions: list[tuple[list[str], int]] = []
        self.fail = False

    async def write(
        self,
        bodies: Sequence[Write],
        usage: Sequence[ModelCall] = (),
        held_by: str | None = None,
    ) -> None:
        assert held_by is None  # these journals hold no lease
        if not bodies and not usage:
            return
        if self.fail:
            raise RuntimeError("database gone")
        self.transactions.append(
            (
                [f"{kind}:{body['id']}" for kind, body, _ in bodies]
                + [f"usage:{c.output_tokens}" for c in usage],
                await self.bus.position(RUN),
            )
        )

    async def insert_step(
        self,
        project_id: str,
        step: StoredStep,
        message: dict[str, Any] | None = None,
        held_by: str | None = None,
    ) -> None:
        assert held_by is None
        self.transactions.append(([f"insert:{step.body['id']}"], await self.bus.position(RUN)))


class RecordingMeter:
    """A usage meter that notes which calls it was told of, and when (transactions then)."""

    def __init__(self, store: RecordingStore) -> None:
        self.store = store
        self.told: list[tuple[list[int], int]] = []

    async def recorded(self, calls: Sequence[ModelCall]) -> None:
        self.told.append(([c.output_tokens for c in calls], len(self.store.transactions)))


def _call(output_tokens: int) -> ModelCall:
    return ModelCall("proj_1", None, RUN, "thread_1", "gpt-4o", 10, output_tokens)


async def _log(bus: MemoryEventBus) -> list[str]:
    return [e.event for e in await bus.history(RUN)]


@pytest.fixture
def bus() -> MemoryEventBus:
    return MemoryEventBus()


async def test_outside_a_batch_each_change_is_written_then_published(bus: MemoryEventBus) -> None:
    store = RecordingStore(bus)
    journal = RunJournal(store, bus, RUN)
    await journal.record("step", {"id": "step_1"}, "thread.run.step.completed")
    await journal.record("run", {"id": RUN}, "thread.run.completed", {"id": RUN, "shown": True})
    assert store.transactions == [(["step:step_1"], 0), ([f"run:{RUN}"], 1)]
    assert await _log(bus) == ["thread.run.step.completed", "thread.run.completed"]
    events = await bus.history(RUN)
    assert b'"shown":true' in events[1].data


async def test_a_batch_commits_once_then_publishes_in_order(bus: MemoryEventBus) -> None:
    store = RecordingStore(bus)
    journal = RunJournal(store, bus, RUN)
    async with journal.batch():
        await journal.record("message", {"id": "msg_1"}, "thread.message.completed")
        async with journal.batch():  # joins the outer one
            await journal.record("step", {"id": "step_1"}, "thread.run.step.completed")
        await journal.delta("thread.message.delta", {"id": "msg_1"})  # at once
        assert journal.batched_ids() == {"msg_1", "step_1"}
        await journal.record("run", {"id": RUN}, "thread.run.completed")
        assert store.transactions == []
    assert store.transactions == [(["message:msg_1", "step:step_1", f"run:{RUN}"], 1)]
    assert await _log(bus) == [
        "thread.message.delta",
        "thread.message.completed",
        "thread.run.step.completed",
        "thread.run.completed",
    ]
    assert journal.batched_ids() == set()


async def test_a_batch_that_fails_part_way_still_writes_and_publishes_what_it_had(
    bus: MemoryEventBus,
) -> None:
    store = RecordingStore(bus)
    journal = RunJournal(store, bus, RUN)
    with pytest.raises(ValueError):
        async with journal.batch():
            await journal.record("message", {"id": "msg_1"}, "thread.message.incomplete")
            raise ValueError("a fault part-way")
    assert store.transactions == [(["message:msg_1"], 0)]
    assert await _log(bus) == ["thread.message.incomplete"]


async def test_nothing_is_published_when_the_write_fails(bus: MemoryEventBus) -> None:
    store = RecordingStore(bus)
    store.fail = True
    journal = RunJournal(store, bus, RUN)
    with pytest.raises(RuntimeError):
        await journal.record("run", {"id": RUN}, "thread.run.completed")
    with pytest.raises(RuntimeError):
        async with journal.batch():
            await journal.record("run", {"id": RUN}, "thread.run.failed")
    assert await _log(bus) == []


async def test_inserts_and_committed_changes_then_done(bus: MemoryEventBus) -> None:
    store = RecordingStore(bus)
    journal = RunJournal(store, bus, RUN)
    await journal.committed(
        [("thread.run.created", {"id": RUN}), ("thread.run.queued", {"id": RUN})], new=True
    )
    await journal.insert("proj_1", StoredStep({"id": "step_1"}))
    await journal.publish("thread.run.step.created", {"id": "step_1"})
    await journal.finish()
    assert store.transactions == [(["insert:step_1"], 2)]
    assert await _log(bus) == [
        "thread.run.created",
        "thread.run.queued",
        "thread.run.step.created",
        "done",
    ]


async def test_a_model_calls_usage_row_goes_with_the_next_write(bus: MemoryEventBus) -> None:
    store = RecordingStore(bus)
    meter = RecordingMeter(store)
    journal = RunJournal(store, bus, RUN, meter)
    journal.meter(_call(1))
    await journal.insert("proj_1", StoredStep({"id": "step_1"}))  # not the step that reports it
    assert meter.told == []
    await journal.record("step", {"id": "step_1"}, "thread.run.step.completed")
    journal.meter(_call(2))
    async with journal.batch():
        await journal.record("message", {"id": "msg_1"}, "thread.message.completed")
        await journal.record("run", {"id": RUN}, "thread.run.completed")
        assert meter.told == [([1], 2)]
    assert store.transactions == [
        (["insert:step_1"], 0),
        (["step:step_1", "usage:1"], 0),
        (["message:msg_1", f"run:{RUN}", "usage:2"], 1),
    ]
    assert meter.told == [([1], 2), ([2], 3)]  # each after its commit


async def test_usage_not_written_waits_for_the_runs_next_write(bus: MemoryEventBus) -> None:
    store = RecordingStore(bus)
    meter = RecordingMeter(store)
    journal = RunJournal(store, bus, RUN, meter)
    journal.meter(_call(1))
    store.fail = True
    with pytest.raises(RuntimeError):
        await journal.record("step", {"id": "step_1"}, "thread.run.step.completed")
    store.fail = False
    async with journal.batch():
        await journal.record("run", {"id": RUN}, "thread.run.failed")
    assert store.transactions == [([f"run:{RUN}", "usage:1"], 0)]
    assert meter.told == [([1], 1)]


async def test_without_a_meter_no_usage_is_written(bus: MemoryEventBus) -> None:
    store = RecordingStore(bus)
    journal = RunJournal(store, bus, RUN)
    journal.meter(_call(1))
    await journal.record("run", {"id": RUN}, "thread.run.completed")
    assert store.transactions == [([f"run:{RUN}"], 0)]
