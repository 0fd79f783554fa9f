"""Run events: published once by the engine, read by any number of SSE streams.

Each run has one ordered log. `subscribe(run_id, after=n)` yields the events after seq `n`
that are already there, then follows live ones until the run's `done`. When a run ends, its
log is written to the database (`run_events`) in one batch, so a stream can be re-read
after the process that ran it has forgotten it.
"""

from __future__ import annotations

import abc
import asyncio
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

DONE = "done"


@dataclass(slots=True, frozen=True)
class RunEvent:
    """One SSE frame: `seq` (its `id:`), the event name, and its JSON data already encoded."""

    seq: int
    event: str
    data: bytes

    def frame(self) -> bytes:
        return b"id: %d\nevent: %s\ndata: %s\n\n" % (self.seq, self.event.encode(), self.data)


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


@dataclass
class _RunLog:
    events: list[RunEvent] = field(default_factory=list)
    persisted: int = 0  # events[:persisted] are in the database
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    done_at: float | None = None


class MemoryEventBus(EventBus):
    """The single-process bus: logs in memory, persisted at each `done`.

    `persist` writes events to the database; `load` reads a log that is no longer in
    memory (another process ran the run, or this one restarted).
    """

    def __init__(self, persist: Persist | None = None, load: Load | None = None,
                 keep_seconds: float = 600.0) -> None:
        self._logs: dict[str, _RunLog] = {}
        self._persist = persist
        self._load = load
        self._keep = keep_seconds

    async def _log(self, run_id: str) -> _RunLog:
        log = self._logs.get(run_id)
        if log is None:
            log = _RunLog()
            if self._load is not None:
                log.events = await self._load(run_id)
                log.persisted = len(log.events)
            # A second caller may have created it while we awaited the load.
            log = self._logs.setdefault(run_id, log)
        return log

    async def open(self, run_id: str) -> None:
        self._logs.setdefault(run_id, _RunLog())

    async def publish(self, run_id: str, event: str, data: dict[str, Any]) -> int:
        log = await self._log(run_id)
        seq = len(log.events) + 1
        log.events.append(RunEvent(seq, event, orjson.dumps(data)))
        log.done_at = None
        log.changed.set()
        log.changed = asyncio.Event()
        return seq

    async def finish(self, run_id: str) -> None:
        log = await self._log(run_id)
        log.events.append(RunEvent(len(log.events) + 1, DONE, b"[DONE]"))
        log.done_at = time.monotonic()
        log.changed.set()
        log.changed = asyncio.Event()
        if self._persist is not None:
            fresh = log.events[log.persisted:]
            log.persisted = len(log.events)
            await self._persist(run_id, fresh)
        self._forget_old()

    async def position(self, run_id: str) -> int:
        return len((await self._log(run_id)).events)

    async def subscribe(self, run_id: str, after: int = 0, idle: float | None = None) -> AsyncGenerator[RunEvent | None, None]:
        log = await self._log(run_id)
        i = after
        while True:
            while i < len(log.events):
                ev = log.events[i]
                i += 1
                yield ev
                if ev.event == DONE:
                    return
            if idle is None:
                await log.changed.wait()
                continue
            try:
                await asyncio.wait_for(log.changed.wait(), idle)
            except TimeoutError:
                yield None

    def _forget_old(self) -> None:
        cutoff = time.monotonic() - self._keep
        for run_id in [r for r, lg in self._logs.items() if lg.done_at is not None and lg.done_at < cutoff]:
            del self._logs[run_id]
