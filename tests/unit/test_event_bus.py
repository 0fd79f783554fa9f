"""The in-memory event bus and the SSE response: logs kept compact, read back exactly."""

from __future__ import annotations

import asyncio
import os
import tracemalloc
import uuid
from collections.abc import Sequence
from typing import Any

import orjson
import pytest

from assistantd.events.bus import (
    DONE,
    UNWRITTEN_LIMIT,
    EventBus,
    MemoryEventBus,
    RunEvent,
    Superseded,
)
from assistantd.events.redis_bus import RedisEventBus
from assistantd.events.sse import PING, frames, sse_response

DELTA = {
    "id": "msg_0123456789abcdefghijklmn",
    "object": "thread.message.delta",
    "delta": {"content": [{"index": 0, "type": "text", "text": {"value": " 1764000000.123456"}}]},
}


class Table:
    """The database side of the bus: `run_events` rows as a dict, with the persist/load pair."""

    def __init__(self) -> None:
        self.rows: dict[str, list[tuple[int, str, bytes]]] = {}
        self.loads = 0

    async def persist(self, run_id: str, events: Sequence[RunEvent]) -> None:
        self.rows.setdefault(run_id, []).extend((e.seq, e.event, e.data) for e in events)

    async def load(self, run_id: str) -> list[RunEvent]:
        self.loads += 1
        return [RunEvent(seq, event, data) for seq, event, data in self.rows.get(run_id, [])]


async def read_all(bus: MemoryEventBus, run_id: str, after: int = 0) -> list[RunEvent]:
    return [e async for e in bus.subscribe(run_id, after) if e is not None]


def test_event_frame_and_data() -> None:
    ev = RunEvent(7, "thread.message.delta", b'{"a":1}')
    assert ev.frame() == b'id: 7\nevent: thread.message.delta\ndata: {"a":1}\n\n'
    assert (ev.seq, ev.event, ev.data) == (7, "thread.message.delta", b'{"a":1}')


def test_published_events_do_not_keep_the_encoders_buffer() -> None:
    # orjson.dumps returns bytes backed by a 4 kB buffer; a log of those cost 4 kB a token.
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        events = [RunEvent(i, "thread.message.delta", orjson.dumps(DELTA)) for i in range(1000)]
        per_event = (tracemalloc.get_traced_memory()[0] - before) / len(events)
    finally:
        tracemalloc.stop()
    assert per_event < 600, per_event


async def test_log_reads_back_every_event_across_compressed_blocks() -> None:
    bus = MemoryEventBus()
    for i in range(50):
        assert await bus.publish("run_1", "thread.message.delta", {"i": i}) == i + 1
    await bus.finish("run_1")
    events = await read_all(bus, "run_1")
    assert [e.seq for e in events] == list(range(1, 52))
    assert [orjson.loads(e.data) for e in events[:-1]] == [{"i": i} for i in range(50)]
    assert events[-1].event == DONE and events[-1].data == b"[DONE]"
    assert [e.frame() for e in events] == [RunEvent(e.seq, e.event, e.data).frame() for e in events]
    # From the middle of a block, and from a block boundary.
    assert [e.seq for e in await read_all(bus, "run_1", after=21)] == list(range(22, 52))
    assert [e.seq for e in await read_all(bus, "run_1", after=32)] == list(range(33, 52))
    assert await bus.position("run_1") == 51


async def test_live_reader_follows_the_log_as_it_grows() -> None:
    bus = MemoryEventBus()
    await bus.open("run_1")
    reader = asyncio.create_task(read_all(bus, "run_1"))
    for i in range(40):
        await bus.publish("run_1", "thread.message.delta", {"i": i})
        if i % 3 == 0:
            await asyncio.sleep(0)  # the reader is sometimes caught up, sometimes behind
    await bus.finish("run_1")
    events = await asyncio.wait_for(reader, 5)
    assert [e.seq for e in events] == list(range(1, 42))
    assert [orjson.loads(e.data)["i"] for e in events[:-1]] == list(range(40))


async def test_ended_log_is_persisted_once_forgotten_and_read_back_from_the_database() -> None:
    table = Table()
    bus = MemoryEventBus(persist=table.persist, load=table.load, keep_seconds=0)
    await bus.open("run_1")
    for i in range(20):
        await bus.publish("run_1", "thread.message.delta", {"i": i})
    await bus.finish("run_1")
    assert [seq for seq, _, _ in table.rows["run_1"]] == list(range(1, 22))
    # Forgotten at once (keep_seconds=0): the next reader loads it from the database.
    again = await read_all(bus, "run_1")
    assert table.loads == 1
    assert [(e.seq, e.event, e.data) for e in again] == table.rows["run_1"]
    # A run resumed after its log was forgotten continues the numbering, and persists
    # only what is new.
    assert await bus.publish("run_1", "thread.run.queued", {"resumed": True}) == 22
    await bus.finish("run_1")
    assert [seq for seq, _, _ in table.rows["run_1"]] == list(range(1, 24))


async def test_a_log_read_back_after_a_crash_never_reuses_an_id() -> None:
    table = Table()
    bus = MemoryEventBus(persist=table.persist, load=table.load)
    await bus.open("run_1")
    for i in range(30):
        await bus.publish("run_1", "thread.message.delta", {"i": i})
    await bus.flush()  # what reached the database before the process died
    for i in range(30, 40):
        await bus.publish("run_1", "thread.message.delta", {"i": i})  # sent, never written
    # A new process: the log is read back, and its next event goes past any id the dead
    # one may have sent (it sends at most UNWRITTEN_LIMIT past what it wrote).
    after = MemoryEventBus(persist=table.persist, load=table.load)
    assert [e.seq for e in await after.history("run_1")] == list(range(1, 31))
    seq = await after.publish("run_1", "thread.run.step.failed", {})
    assert seq == 30 + UNWRITTEN_LIMIT + 1
    assert await after.position("run_1") == seq
    await after.publish("run_1", "thread.run.in_progress", {})
    await after.finish("run_1")
    # A client that had seen 38 (from the dead process) gets every newer event; one at 25
    # also gets what the database kept of the old ones.
    assert [e.seq for e in await read_all(after, "run_1", after=38)] == [seq, seq + 1, seq + 2]
    assert [e.seq for e in await read_all(after, "run_1", after=25)] == [
        26,
        27,
        28,
        29,
        30,
        seq,
        seq + 1,
        seq + 2,
    ]
    assert [e.seq for e in await read_all(after, "run_1", after=seq)] == [seq + 1, seq + 2]
    assert [seq for seq, _, _ in table.rows["run_1"]] == [*range(1, 31), seq, seq + 1, seq + 2]
    # And again after a second crash: still growing.
    again = MemoryEventBus(persist=table.persist, load=table.load)
    assert await again.publish("run_1", "thread.run.queued", {}) == seq + 2 + UNWRITTEN_LIMIT + 1


async def test_a_live_log_is_written_as_it_goes() -> None:
    table = Table()
    many: list[list[str]] = []

    async def persist_many(logs: Any) -> None:
        many.append([run_id for run_id, _ in logs])
        for run_id, events in logs:
            await table.persist(run_id, events)

    bus = MemoryEventBus(
        persist=table.persist, load=table.load, flush_seconds=0.05, persist_many=persist_many
    )
    for run_id in ("run_1", "run_2"):
        await bus.open(run_id)
        await bus.publish(run_id, "thread.run.created", {})
    await asyncio.sleep(0.2)
    assert many and sorted(many[0]) == ["run_1", "run_2"]  # both in one transaction
    assert [seq for seq, _, _ in table.rows["run_1"]] == [1]
    # Never more than UNWRITTEN_LIMIT events unwritten, whether the timer keeps up or not.
    slow = MemoryEventBus(persist=table.persist, load=table.load)
    await slow.open("run_3")
    for i in range(UNWRITTEN_LIMIT + 10):
        await slow.publish("run_3", "thread.message.delta", {"i": i})
    assert len(table.rows["run_3"]) >= 10
    await bus.aclose()
    await slow.aclose()  # writes the rest
    assert [seq for seq, _, _ in table.rows["run_3"]] == list(range(1, UNWRITTEN_LIMIT + 11))


async def test_ended_log_is_kept_for_keep_seconds() -> None:
    table = Table()
    bus = MemoryEventBus(persist=table.persist, load=table.load, keep_seconds=60)
    await bus.open("run_1")
    await bus.publish("run_1", "thread.run.created", {})
    await bus.finish("run_1")
    await bus.open("run_2")
    await bus.finish("run_2")  # a later finish is when old logs are forgotten
    assert [e.seq for e in await read_all(bus, "run_1")] == [1, 2]
    assert table.loads == 0


async def _respond(body: Any, receive: Any) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": []}
    await asyncio.wait_for(sse_response(body)(scope, receive, send), 5)
    return sent


async def test_stream_of_a_silent_run_ends_when_the_client_hangs_up() -> None:
    bus = MemoryEventBus()
    await bus.open("run_1")
    await bus.publish("run_1", "thread.run.created", {})

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    sent = await _respond(frames(bus, "run_1", 0, keepalive=0.05), receive)
    bodies = [m["body"] for m in sent if m["type"] == "http.response.body"]
    assert bodies[0].startswith(b"id: 1\nevent: thread.run.created\n")
    assert bodies[-1] == PING  # the keep-alive is where a silent stream checks


async def test_stream_goes_on_while_the_client_is_connected() -> None:
    bus = MemoryEventBus()
    await bus.open("run_1")
    connected = asyncio.Event()  # never set: the client stays

    async def receive() -> dict[str, Any]:
        await connected.wait()
        return {"type": "http.disconnect"}

    async def run() -> None:
        await asyncio.sleep(0.2)  # a few keep-alives first
        await bus.publish("run_1", "thread.run.created", {})
        await bus.finish("run_1")

    task = asyncio.create_task(run())
    sent = await _respond(frames(bus, "run_1", 0, keepalive=0.03), receive)
    await task
    bodies = [m["body"] for m in sent if m["type"] == "http.response.body"]
    assert PING in bodies
    assert bodies[-2].startswith(b"id: 2\nevent: done\n") and bodies[-1] == b""
    assert sent[-1]["more_body"] is False


def test_streamed_content_rebuilds_an_interrupted_message_from_its_deltas() -> None:
    from assistantd.worker.engine import streamed_content

    def delta(mid: str, entry: dict[str, Any]) -> RunEvent:
        return RunEvent(
            0,
            "thread.message.delta",
            orjson.dumps(
                {"id": mid, "object": "thread.message.delta", "delta": {"content": [entry]}}
            ),
        )

    image = {
        "index": 0,
        "type": "image_file",
        "image_file": {"file_id": "file_1", "detail": "auto"},
    }
    path = {
        "index": 0,
        "type": "file_path",
        "text": "sandbox:/mnt/data/a.csv",
        "start_index": 4,
        "end_index": 27,
        "file_path": {"file_id": "file_2"},
    }
    events = [
        RunEvent(0, "thread.message.created", b'{"id": "msg_a"}'),
        delta("msg_a", image),
        delta("msg_a", {"index": 1, "type": "text", "text": {"value": "See ", "annotations": []}}),
        delta("msg_b", {"index": 0, "type": "text", "text": {"value": "other", "annotations": []}}),
        delta(
            "msg_a",
            {
                "index": 1,
                "type": "text",
                "text": {"value": "sandbox:/mnt/data/a.csv", "annotations": [path]},
            },
        ),
        delta("msg_a", {"index": 1, "type": "text", "text": {"value": " and"}}),
    ]
    content = streamed_content(events, {"msg_a"})
    assert content == {
        "msg_a": [
            {"type": "image_file", "image_file": {"file_id": "file_1", "detail": "auto"}},
            {
                "type": "text",
                "text": {
                    "value": "See sandbox:/mnt/data/a.csv and",
                    "annotations": [{k: v for k, v in path.items() if k != "index"}],
                },
            },
        ]
    }
    assert streamed_content(events, {"msg_c"}) == {}


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_a_log_refuses_an_event_whose_fence_another_publisher_has_passed(kind: str) -> None:
    """Fencing tokens (`worker/lease.py`): a worker that lost the run, its delta held up by
    a stall, cannot append it after the new holder's (whose token is higher)."""
    table = Table()
    bus: EventBus
    if kind == "memory":
        bus = MemoryEventBus(persist=table.persist, load=table.load)
    else:
        url = os.environ.get("ASSISTANTD_TEST_REDIS", "redis://127.0.0.1:6379/0")
        bus = RedisEventBus(url, persist=table.persist, load=table.load)
    run_id = f"run_fence{uuid.uuid4().hex}"
    try:
        await bus.open(run_id)
        assert await bus.publish(run_id, "thread.message.delta", DELTA, 100.5) == 1
        assert await bus.publish(run_id, "thread.message.delta", DELTA, 100.5) == 2
        assert await bus.publish(run_id, "thread.message.delta", DELTA, 130.25) == 3  # taken over
        with pytest.raises(Superseded):
            await bus.publish(run_id, "thread.message.delta", DELTA, 100.5)
        assert await bus.publish(run_id, "thread.message.incomplete", DELTA) == 4  # unfenced
        assert await bus.publish(run_id, "thread.message.delta", DELTA, 130.25) == 5
        await bus.finish(run_id)
        assert [e.seq for e in await bus.history(run_id)] == [1, 2, 3, 4, 5, 6]
    finally:
        if isinstance(bus, RedisEventBus):
            await bus.redis.delete(*bus._keys(run_id), f"assistantd:run:{run_id}:fence")
            await bus.redis.aclose()
