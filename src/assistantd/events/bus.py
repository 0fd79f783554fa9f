"""Run events: published once by the engine, read by any number of SSE streams.

Each run has one ordered log. `subscribe(run_id, after=n)` yields the events after seq `n`
that are already there, then follows live ones until the run's `done`. A log is written to
the database (`run_events`) at each `done` and, while the run is live, every few seconds
(`MemoryEventBus`), so a stream can be re-read after the process that ran it has
forgotten it, or died. Seqs only grow, across restarts too: a log read back from the
database goes on past any seq the process before may have sent (see `UNWRITTEN_LIMIT`).

A log holds each event once, as the bytes of its SSE frame, and compresses all but its
last few: a thousand open streams of a few hundred tokens are a few hundred thousand
events, and as plain objects they were most of what an open stream cost (see `_RunLog`).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import sys
import time
import zlib
from array import array
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import Any

import orjson

from assistantd.core.periodic import every

logger = logging.getLogger("assistantd.events")

DONE = "done"
_DONE_DATA = b"[DONE]"


def _frame(seq: int, event: str, data: bytes) -> bytes:
    # `%` builds a new bytes object of exactly the frame's size. orjson.dumps' own result
    # keeps orjson's whole write buffer (4 kB for a 200-byte delta, 8 kB for a run object);
    # storing those was two thirds of an open stream's Python memory.
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (seq, event.encode(), data)


class RunEvent:
    """One SSE frame: `seq` (its `id:`), the event name, and its JSON data already encoded.

    The frame is built once, when the event is made, and is what a log keeps.
    """

    __slots__ = ("_frame", "event", "seq")

    def __init__(self, seq: int, event: str, data: bytes) -> None:
        self.seq = seq
        # Event names repeat in every run; interned, all logs share one copy of each.
        self.event = sys.intern(event)
        self._frame = _frame(seq, event, data)

    @classmethod
    def _framed(cls, seq: int, event: str, frame: bytes) -> RunEvent:
        ev = cls.__new__(cls)
        ev.seq, ev.event, ev._frame = seq, event, frame
        return ev

    @property
    def data(self) -> bytes:
        """The event's data: JSON, or `[DONE]`."""
        start = self._frame.index(b"\ndata: ") + 7
        return self._frame[start:-2]

    def frame(self) -> bytes:
        return self._frame

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RunEvent):
            return NotImplemented
        return self._frame == other._frame

    def __hash__(self) -> int:
        return hash(self._frame)

    def __repr__(self) -> str:
        return f"RunEvent(seq={self.seq}, event={self.event!r}, data={self.data[:60]!r})"


class Superseded(Exception):
    """Raised by `EventBus.publish` given a fence lower than one the run's log has had: the
    publisher lost the run to a worker that has published since."""


class EventBus(abc.ABC):
    """Where runs publish their events and streams read them."""

    async def open(self, run_id: str) -> None:
        """A new run's log starts here: nothing to look up anywhere."""
        return None

    @abc.abstractmethod
    async def publish(
        self, run_id: str, event: str, data: dict[str, Any], fence: float | None = None
    ) -> int:
        """Append an event to the run's log; returns its seq (1, 2, …).

        `fence`: the publisher's fencing token (its lease's claim, `worker/lease.py`), which
        only grows from one holder of the run to the next: the log remembers the highest
        one it was given and refuses (`Superseded`) an event with a lower one, that of a
        worker that lost the run and woke up later."""

    @abc.abstractmethod
    async def finish(self, run_id: str) -> None:
        """Append `done`: the run will emit nothing more (until resumed by submit_tool_outputs)."""

    @abc.abstractmethod
    def subscribe(
        self, run_id: str, after: int = 0, idle: float | None = None
    ) -> AsyncGenerator[RunEvent | None, None]:
        """Events after seq `after`, then live ones, up to and including the next `done`.

        With `idle`, a `None` is yielded each time nothing arrived for that many seconds
        (a stream sends a keep-alive then), without ending the subscription.
        """

    @abc.abstractmethod
    async def position(self, run_id: str) -> int:
        """The seq of the last event published for the run (0 if none)."""

    @abc.abstractmethod
    async def history(self, run_id: str) -> list[RunEvent]:
        """Every event of the run's log so far (after a crash: what reached the database)."""

    async def aclose(self) -> None:
        return None


Persist = Callable[[str, Sequence[RunEvent]], Awaitable[None]]
PersistMany = Callable[[Sequence[tuple[str, Sequence[RunEvent]]]], Awaitable[None]]
Load = Callable[[str], Awaitable[list[RunEvent]]]

# Most events a live log may hold that are not in the database yet; a publish past it waits
# for a write. So a process that dies has sent at most this many events past what the
# database holds, and a log read back after a crash numbers its next event this far past
# the database's last: no id a client saw is ever given to another event.
UNWRITTEN_LIMIT = 1024
# Most events one periodic write puts in a transaction.
FLUSH_BATCH = 2048
# Runs whose logs this process wrote whole and then forgot: their numbering may go on
# right after the database's last event (no gap). Bounded; the oldest go first.
FORGOTTEN_KEPT = 10_000


# Frames per compressed block of a log. The live end of a log (fewer than this) stays as
# plain bytes, so a stream that keeps up never decompresses; 16 deltas of ~200 bytes
# compress to ~300 (the JSON around each token is the same every time).
_BLOCK = 16


class _RunLog:
    """A run's events in order: full blocks of `_BLOCK` frames zlib-compressed, then the tail.

    Seqs grow by one from event to event, except where a log read back after a crash
    skipped some (`_spans`). Names are kept apart (interned, one pointer each) so a reader
    can tell `done` without decompressing.
    """

    __slots__ = (
        "_blocks",
        "_lengths",
        "_spans",
        "_tail",
        "changed",
        "done_at",
        "fence",
        "last_seq",
        "names",
        "next_seq",
        "persisted",
        "writing",
    )

    def __init__(self) -> None:
        self._blocks: list[bytes] = []
        self._tail: list[bytes] = []
        self._lengths = array("I")  # of every frame, to split a decompressed block
        # (index, seq) where each stretch of consecutive seqs starts: one, or one per crash.
        self._spans: list[tuple[int, int]] = []
        self.names: list[str] = []
        self.last_seq = 0
        self.next_seq = 1
        self.fence = float("-inf")  # the highest publisher's fence seen
        self.persisted = 0  # events [0, persisted) are in the database
        self.writing: asyncio.Event | None = None  # set when the write under way ends
        self.changed = asyncio.Event()
        # When the log was persisted with `done` last; None while the run may still publish.
        self.done_at: float | None = None

    def __len__(self) -> int:
        return len(self.names)

    def seq_at(self, i: int) -> int:
        start, first = self._spans[-1]
        if i < start:
            start, first = next(span for span in reversed(self._spans) if i >= span[0])
        return first + i - start

    def index_after(self, seq: int) -> int:
        """The index of the first event whose seq is above `seq`."""
        spans = self._spans
        for k, (start, first) in enumerate(spans):
            end = spans[k + 1][0] if k + 1 < len(spans) else len(self)
            if seq < first + (end - start):
                return max(start, start + seq - first + 1)
        return len(self)

    def append(self, ev: RunEvent) -> None:
        if ev.seq != self.last_seq + 1 or not self._spans:
            self._spans.append((len(self.names), ev.seq))
        self.last_seq = ev.seq
        self.next_seq = ev.seq + 1
        frame = ev.frame()
        self._tail.append(frame)
        self._lengths.append(len(frame))
        self.names.append(ev.event)
        if len(self._tail) == _BLOCK:
            # Level 1: a block takes ~20 µs; higher levels gain a few percent at twice that.
            self._blocks.append(zlib.compress(b"".join(self._tail), 1))
            self._tail = []
        # Wake every reader waiting for this log, then give the next wait a fresh Event.
        self.changed.set()
        self.changed = asyncio.Event()

    def event(self, i: int, cache: list[Any]) -> RunEvent:
        """Event i. `cache` is the reader's `[block number, its frames]`, so reading a
        compressed block in order decompresses it once."""
        b, k = divmod(i, _BLOCK)
        if b == len(self._blocks):
            frame = self._tail[k]
        else:
            if not cache or cache[0] != b:
                cache[:] = [b, self._unpack(b)]
            frame = cache[1][k]
        return RunEvent._framed(self.seq_at(i), self.names[i], frame)

    def _unpack(self, b: int) -> list[bytes]:
        raw = zlib.decompress(self._blocks[b])
        frames, at = [], 0
        for n in self._lengths[b * _BLOCK : (b + 1) * _BLOCK]:
            frames.append(raw[at : at + n])
            at += n
        return frames


class MemoryEventBus(EventBus):
    """The single-process bus: logs in memory, written to the database as they go.

    `persist` writes events to the database; `load` reads a log that is no longer in
    memory (another process ran the run, or this one restarted). A log is written at each
    `done` and, every `flush_seconds` (0: never), with every other log's new events in one
    transaction (`persist_many`), so a crash loses at most that much of a live run's
    stream. A persisted log is kept in memory `keep_seconds` more, for streams that read
    it right after it ended, then forgotten: the database has it.
    """

    def __init__(
        self,
        persist: Persist | None = None,
        load: Load | None = None,
        keep_seconds: float = 30.0,
        flush_seconds: float = 0.0,
        persist_many: PersistMany | None = None,
    ) -> None:
        self._logs: dict[str, _RunLog] = {}
        # Logs in the order they were persisted with `done`: the oldest are forgotten first.
        self._ended: dict[str, _RunLog] = {}
        # Last seq of the logs forgotten since this process started (see FORGOTTEN_KEPT).
        self._forgotten: dict[str, int] = {}
        self._persist = persist
        self._persist_many = persist_many
        self._load = load
        self._keep = keep_seconds if persist is not None else float("inf")
        self._flush_seconds = flush_seconds if persist is not None else 0.0
        self._flusher: asyncio.Task[None] | None = None

    async def _log(self, run_id: str) -> _RunLog:
        log = self._logs.get(run_id)
        if log is None:
            self._start_writing()
            log = _RunLog()
            if self._load is not None:
                stored = await self._load(run_id)
                for ev in stored:
                    log.append(ev)
                log.persisted = len(log)
                if self._forgotten.pop(run_id, None) != log.last_seq:
                    # Not a log this process wrote whole: the one that published it may have
                    # died with up to UNWRITTEN_LIMIT events sent but not written.
                    log.next_seq = log.last_seq + UNWRITTEN_LIMIT + 1
            # A second caller may have created it while we awaited the load.
            log = self._logs.setdefault(run_id, log)
        return log

    async def open(self, run_id: str) -> None:
        self._start_writing()
        self._logs.setdefault(run_id, _RunLog())

    def _start_writing(self) -> None:
        if self._flusher is None and self._flush_seconds > 0:
            self._flusher = asyncio.create_task(
                every(self._flush_seconds, self.flush, logger, "event log write")
            )

    async def publish(
        self, run_id: str, event: str, data: dict[str, Any], fence: float | None = None
    ) -> int:
        log = await self._log(run_id)
        if fence is not None:
            if fence < log.fence:
                raise Superseded(run_id)
            log.fence = fence
        while self._persist is not None and len(log) - log.persisted >= UNWRITTEN_LIMIT:
            await self._write([(run_id, log)])
        seq = log.next_seq
        log.done_at = None
        log.append(RunEvent(seq, event, orjson.dumps(data)))
        return seq

    async def finish(self, run_id: str) -> None:
        log = await self._log(run_id)
        log.done_at = None
        log.append(RunEvent(log.next_seq, DONE, _DONE_DATA))
        await self._write([(run_id, log)])
        # Only now may the log be forgotten: a reader that loads it from the database must
        # find every event. A run resumed meanwhile (publish after done) is not done.
        if log.names[-1] == DONE:
            log.done_at = time.monotonic()
            self._ended.pop(run_id, None)
            self._ended[run_id] = log
        self._forget_old()

    async def flush(self) -> None:
        """Write every log's new events: many logs a transaction, up to `FLUSH_BATCH`
        events each (on SQLite a write holds the event loop; several short ones let
        streams go on between them)."""
        group: list[tuple[str, _RunLog]] = []
        size = 0
        for run_id, lg in list(self._logs.items()):
            if len(lg) > lg.persisted and lg.writing is None:
                group.append((run_id, lg))
                size += len(lg) - lg.persisted
                if size >= FLUSH_BATCH:
                    await self._write(group)
                    group, size = [], 0
        await self._write(group)

    async def _write(self, logs: Sequence[tuple[str, _RunLog]]) -> None:
        """Write the events of `logs` not in the database yet; a log's writes go in order."""
        if self._persist is None:
            return
        while True:
            busy = next((lg.writing for _, lg in logs if lg.writing is not None), None)
            if busy is None:
                break
            await busy.wait()
        batches = []
        for run_id, lg in logs:
            end = len(lg)
            if end > lg.persisted:
                cache: list[Any] = []
                batches.append(
                    (run_id, lg, end, [lg.event(i, cache) for i in range(lg.persisted, end)])
                )
        if not batches:
            return
        writing = asyncio.Event()
        for _, lg, _, _ in batches:
            lg.writing = writing
        try:
            if self._persist_many is not None and len(batches) > 1:
                await self._persist_many([(run_id, events) for run_id, _, _, events in batches])
                for _, lg, end, _ in batches:
                    lg.persisted = end
            else:
                for run_id, lg, end, events in batches:
                    await self._persist(run_id, events)
                    lg.persisted = end
        finally:
            for _, lg, _, _ in batches:
                lg.writing = None
            writing.set()

    async def position(self, run_id: str) -> int:
        return (await self._log(run_id)).last_seq

    async def history(self, run_id: str) -> list[RunEvent]:
        log = await self._log(run_id)
        cache: list[Any] = []
        return [log.event(i, cache) for i in range(len(log))]

    async def subscribe(
        self, run_id: str, after: int = 0, idle: float | None = None
    ) -> AsyncGenerator[RunEvent | None, None]:
        log = await self._log(run_id)
        i = log.index_after(after)
        cache: list[Any] = []
        while True:
            while i < len(log):
                ev = log.event(i, cache)
                i += 1
                yield ev
                if ev.event == DONE:
                    return
            if idle is None:
                await log.changed.wait()
                continue
            try:
                # asyncio.timeout arms one timer; wait_for would also wrap the wait in a Task.
                async with asyncio.timeout(idle):
                    await log.changed.wait()
            except TimeoutError:
                yield None

    def _forget_old(self) -> None:
        cutoff = time.monotonic() - self._keep
        while self._ended:
            run_id, log = next(iter(self._ended.items()))
            if log.done_at is not None and log.done_at > cutoff:
                return
            del self._ended[run_id]
            # done_at None: resumed since (it comes back here at its next done).
            if log.done_at is not None and self._logs.get(run_id) is log:
                del self._logs[run_id]
                self._forgotten[run_id] = log.last_seq
                if len(self._forgotten) > FORGOTTEN_KEPT:
                    del self._forgotten[next(iter(self._forgotten))]

    async def aclose(self) -> None:
        """Stop the periodic writes and write what is left (runs stopped by a shutdown)."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        await self.flush()
