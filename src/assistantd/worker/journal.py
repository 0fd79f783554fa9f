"""One run's way into the database and onto its event log: write, commit, then publish,
in order.

Every event of a run goes through a `RunJournal`, so the order of CONTRACT.md §5 (a
change is in the database before a stream shows it) is kept in this one file:

- `record(kind, body, event, data)`: a durable change of the run, a step or a message,
  and the event that announces it. Inside `batch()` the changes are committed together
  at the block's end and their events published after, in order; outside one, each is
  written and then published at once.
- `publish(event, data)`: an event whose change is already in the database (a step
  inserted, or a change the API's request committed, see `committed`), queued behind the
  batch's events when a batch is open.
- `delta(event, data)`: a token, or another event that changes nothing durable, published
  at once (also inside a batch: deltas never wait for a commit).
- `meter(call)`: a finished model call's usage row, written in the transaction of the
  run's next `record` (or batch): the step closed or the run ended with that call's usage,
  so the row and the usage the run shows commit together, in one transaction per model
  call. The meter hears of it after that commit. A call whose run never writes again (its
  process stopped first) leaves no row, as it leaves no step usage.

The journal of an execution holds the run's lease (`worker/lease.py`): before each delta
and each write it checks that the lease is still good here (a clock comparison), each delta
carries the lease's fencing token (the log refuses a superseded one), and each write is
made only while the database names this worker as the holder. Otherwise it raises
`LeaseLost` and publishes nothing more of its own. The events that announce a change it has
committed (`record`'s, `publish`'s, a batch's, `done`) are published whatever the clock says
by then: the change was this worker's to make, and nobody else would announce it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from assistantd.events.bus import EventBus, Superseded
from assistantd.runs.dispatch import Announcement
from assistantd.runs.state import RunState, StepState, StoredStep
from assistantd.usage.meter import ModelCall, UsageMeter
from assistantd.worker.lease import HeldLease, LeaseLost
from assistantd.worker.store import Opened, Opening, RunContext, RunStore, Write


class RunJournal:
    def __init__(
        self,
        store: RunStore,
        bus: EventBus,
        run_id: str,
        meter: UsageMeter | None = None,
        lease: HeldLease | None = None,
    ) -> None:
        self.store = store
        self.bus = bus
        self.run_id = run_id
        self._meter = meter
        #: The run's lease, when an execution holding it writes (none: the API's
        #: announcements, the ending of a run that nobody executes).
        self.lease = lease
        self._held_by = lease.owner if lease is not None else None
        # While set, writes and events wait here until the batch's end.
        self._batch: tuple[list[Write], list[Announcement]] | None = None
        # Model calls whose usage rows go with the next write.
        self._usage: list[ModelCall] = []

    @contextlib.contextmanager
    def _fenced(self) -> Iterator[None]:
        """Around a write of an execution that holds the lease: check it first (`LeaseLost`
        once it ran out here), and when the store finds it held by another worker, mark it
        lost, so that nothing of this execution is published any more. (Without a lease,
        `held_by` is None and the store writes unconditionally.)"""
        lease = self.lease
        if lease is None:
            yield
            return
        lease.check()
        try:
            yield
        except LeaseLost as lost:
            lease.lose(str(lost))
            raise

    @contextlib.asynccontextmanager
    async def batch(self) -> AsyncIterator[None]:
        """Collect the block's writes and events; commit the writes in one transaction, then
        publish the events in order (also when the block fails part-way). Nested blocks
        join the outer one."""
        if self._batch is not None:
            yield
            return
        self._batch = ([], [])
        try:
            yield
        finally:
            writes, events = self._batch
            self._batch = None
            await self._write(writes)
            for event, data in events:
                await self.bus.publish(self.run_id, event, data)

    def batched_ids(self) -> set[str]:
        """The ids of the bodies the open batch writes (none outside a batch)."""
        return {body["id"] for _, body, _ in self._batch[0]} if self._batch else set()

    async def record(
        self,
        kind: str,
        body: dict[str, Any],
        event: str | None = None,
        data: dict[str, Any] | None = None,
        *,
        state: RunState | StepState | None = None,
    ) -> None:
        """Write `body` (`"run" | "step" | "message"`) and, when given, its private `state`,
        then publish `event` with `data` (default: the body itself)."""
        write: Write = (kind, body, state)
        if self._batch is not None:
            self._batch[0].append(write)
        else:
            await self._write([write])
        if event is not None:
            await self.publish(event, body if data is None else data)

    def meter(self, call: ModelCall) -> None:
        """A model call finished: its usage row goes with the run's next write (none
        without a meter)."""
        if self._meter is not None:
            self._usage.append(call)

    async def _write(self, writes: list[Write]) -> None:
        calls, self._usage = self._usage, []
        try:
            with self._fenced():
                await self.store.write(writes, calls, held_by=self._held_by)
        except BaseException:
            self._usage[:0] = calls  # not written: they go with the run's next write
            raise
        if calls and self._meter is not None:
            await self._meter.recorded(calls)

    async def publish(self, event: str, data: dict[str, Any]) -> None:
        if self._batch is not None:
            self._batch[1].append((event, data))
        else:
            await self.bus.publish(self.run_id, event, data)

    async def delta(self, event: str, data: dict[str, Any]) -> None:
        lease = self.lease
        if lease is None:
            await self.bus.publish(self.run_id, event, data)
            return
        lease.check()
        try:
            await self.bus.publish(self.run_id, event, data, lease.token)
        except Superseded:
            lease.lose("another worker has published on the run's log since")
            raise LeaseLost(lease.lost) from None

    async def insert(
        self, project_id: str, step: StoredStep, message: dict[str, Any] | None = None
    ) -> None:
        """Insert a step (and the message it creates) now, in its own transaction: `publish`
        its events next."""
        with self._fenced():
            await self.store.insert_step(project_id, step, message, held_by=self._held_by)

    async def start(
        self,
        run: dict[str, Any],
        state: RunState,
        event: str,
        data: dict[str, Any],
        *,
        fresh: bool = False,
        opening: Opening | None = None,
    ) -> tuple[RunContext, Opened | None]:
        """Write the run as it starts, read what its first model call needs, and insert
        the step (and message) `opening` gives for that context (one transaction), then
        publish `event`: `publish` the step's events next. `fresh`: no model call was
        made yet."""
        with self._fenced():
            started = await self.store.start(
                run, state, fresh=fresh, held_by=self._held_by, opening=opening
            )
        await self.bus.publish(self.run_id, event, data)
        return started

    async def committed(self, events: Sequence[Announcement], *, new: bool = False) -> None:
        """Publish the events of changes a request's transaction has committed (create,
        cancel, tool outputs); `new`: the run was just created, its log starts here."""
        if new:
            await self.bus.open(self.run_id)
        for event, data in events:
            await self.bus.publish(self.run_id, event, data)

    async def finish(self) -> None:
        """The run pauses or ends: its log says `done` (after the commit that paused or
        ended it, so not fenced: see above)."""
        await self.bus.finish(self.run_id)
