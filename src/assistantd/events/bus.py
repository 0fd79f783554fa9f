"""Run events: published once by the engine, read by any number of SSE streams.

Each run has one ordered log. `subscribe(run_id, after=n)` yields the events after seq `n`
that are already there, then follows live ones until the run's `done`. When a run ends, its
log is written to the database (`run_events`) in one batch, so a stream can be re-read
after the process that ran it has forgotten it.

A log holds each event once, as the bytes of its SSE frame, and compresses all but its
last few: a thousand open streams of a few hundred tokens are a few hundred thousand
events, and as plain objects they were most of what an open stream cost (see `_RunLog`).
"""

from __future__ import annotations

import abc
import asyncio
import sys
import time
import zlib
from array import array
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import Any

import orjson

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


class EventBus(abc.ABC):
    """Where runs publish their events and streams read them."""

    async def open(self, run_id: str) -> None:
        """A new run's log starts here: nothing to look up anywhere."""
        return None

    @abc.abstractmethod
    async def publish(self, run_id: str, event: str, data: dict[str, Any]) -> int:
        """Append an event to the run's log; returns its seq (1, 2, …)."""

    @abc.abstractmethod
    async def finish(self, run_id: str) -> None:
        """Append `done`: the run will emit nothing more (until resumed by submit_tool_outputs)."""

    @abc.abstractmethod
    def subscribe(self, run_id: str, after: int = 0, idle: float | None = None) -> AsyncGenerator[RunEvent | None, None]:
        """Events after seq `after`, then live ones, up to and including the next `done`.

        With `idle`, a `None` is yielded each time nothing arrived for that many seconds
        (a stream sends a keep-alive then), without ending the subscription.
        """

    @abc.abstractmethod
    async def position(self, run_id: str) -> int:
        """The seq of the last event published for the run (0 if none)."""

    async def aclose(self) -> None:
        return None


Persist = Callable[[str, Sequence[RunEvent]], Awaitable[None]]
Load = Callable[[str], Awaitable[list[RunEvent]]]


# Frames per compressed block of a log. The live end of a log (fewer than this) stays as
# plain bytes, so a stream that keeps up never decompresses; 16 deltas of ~200 bytes
# compress to ~300 (the JSON around each token is the same every time).
_BLOCK = 16


class _RunLog:
    """A run's events in order: full blocks of `_BLOCK` frames zlib-compressed, then the tail.

    Event i (0-based) has seq i + 1. Names are kept apart (interned, one pointer each) so
    a reader can tell `done` without decompressing.
    """

    __slots__ = ("_blocks", "_lengths", "_tail", "changed", "done_at", "names", "persisted")

    def __init__(self) -> None:
        self._blocks: list[bytes] = []
        self._tail: list[bytes] = []
        self._lengths = array("I")  # of every frame, to split a decompressed block
        self.names: list[str] = []
        self.persisted = 0  # events [0, persisted) are in the database
        self.changed = asyncio.Event()
        # When the log was persisted with `done` last; None while the run may still publish.
        self.done_at: float | None = None

    def __len__(self) -> int:
        return len(self.names)

    def append(self, ev: RunEvent) -> None:
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
        return RunEvent._framed(i + 1, self.names[i], frame)

    def _unpack(self, b: int) -> list[bytes]:
        raw = zlib.decompress(self._blocks[b])
        frames, at = [], 0
        for n in self._lengths[b * _BLOCK:(b + 1) * _BLOCK]:
            frames.append(raw[at:at + n])
            at += n
        return frames


class MemoryEventBus(EventBus):
    """The single-process bus: logs in memory, persisted at each `done`.

    `persist` writes events to the database; `load` reads a log that is no longer in
    memory (another process ran the run, or this one restarted). A persisted log is kept
    in memory `keep_seconds` more, for streams that read it right after it ended, then
    forgotten: the database has it.
    """

    def __init__(self, persist: Persist | None = None, load: Load | None = None,
                 keep_seconds: float = 30.0) -> None:
        self._logs: dict[str, _RunLog] = {}
        # Logs in the order they were persisted with `done`: the oldest are forgotten first.
        self._ended: dict[str, _RunLog] = {}
        self._persist = persist
        self._load = load
        self._keep = keep_seconds if persist is not None else float("inf")

    async def _log(self, run_id: str) -> _RunLog:
        log = self._logs.get(run_id)
        if log is None:
            log = _RunLog()
            if self._load is not None:
                for ev in await self._load(run_id):
                    log.append(ev)
                log.persisted = len(log)
            # A second caller may have created it while we awaited the load.
            log = self._logs.setdefault(run_id, log)
        return log

    async def open(self, run_id: str) -> None:
        self._logs.setdefault(run_id, _RunLog())

    async def publish(self, run_id: str, event: str, data: dict[str, Any]) -> int:
        log = await self._log(run_id)
        seq = len(log) + 1
        log.done_at = None
        log.append(RunEvent(seq, event, orjson.dumps(data)))
        return seq

    async def finish(self, run_id: str) -> None:
        log = await self._log(run_id)
        log.done_at = None
        log.append(RunEvent(len(log) + 1, DONE, _DONE_DATA))
        if self._persist is not None:
            cache: list[Any] = []
            fresh = [log.event(i, cache) for i in range(log.persisted, len(log))]
            log.persisted = len(log)
            await self._persist(run_id, fresh)
        # Only now may the log be forgotten: a reader that loads it from the database must
        # find every event. A run resumed meanwhile (publish after done) is not done.
        if log.names[-1] == DONE:
            log.done_at = time.monotonic()
            self._ended.pop(run_id, None)
            self._ended[run_id] = log
        self._forget_old()

    async def position(self, run_id: str) -> int:
        return len(await self._log(run_id))

    async def subscribe(self, run_id: str, after: int = 0, idle: float | None = None) -> AsyncGenerator[RunEvent | None, None]:
        log = await self._log(run_id)
        i = after
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
