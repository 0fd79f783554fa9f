"""The in-process `RunDispatcher`: runs start and stop in this process's `RunWorker`.

Starting a run is one deferred hop: the dispatcher is the request's after-commit hook; it
announces the change on the run's log and hands the run to the worker once the response
has gone out (`after_response`), so the client reads it while the run starts.
"""

from __future__ import annotations

from collections.abc import Sequence

from assistantd.core.db import UnitOfWork
from assistantd.core.http import after_response
from assistantd.events.bus import EventBus
from assistantd.runs.dispatch import Announcement, Created, Lease
from assistantd.worker.journal import RunJournal
from assistantd.worker.worker import RunWorker


class LocalDispatcher:
    def __init__(self, worker: RunWorker, bus: EventBus) -> None:
        self.worker = worker
        self.bus = bus

    async def start(self) -> None:
        """Start the worker, if this process executes runs."""
        if self.worker.enabled:
            await self.worker.start()

    async def aclose(self) -> None:
        await self.worker.stop()

    def lease_for_create(self) -> Lease | None:
        return self.worker.lease_for_new_run()

    def submit(
        self,
        uow: UnitOfWork,
        run_id: str,
        events: Sequence[Announcement],
        *,
        created: Created | None = None,
    ) -> None:
        async def committed() -> None:
            await self._announce(run_id, events, new=created is not None)
            after_response(lambda: self._start(run_id, created))

        uow.after_commit(committed)

    def cancel(self, uow: UnitOfWork, run_id: str, events: Sequence[Announcement]) -> None:
        async def committed() -> None:
            await self._announce(run_id, events)
            self._stop(run_id)

        uow.after_commit(committed)

    async def _announce(
        self, run_id: str, events: Sequence[Announcement], new: bool = False
    ) -> None:
        await RunJournal(self.worker.store, self.bus, run_id).committed(events, new=new)

    def _start(self, run_id: str, created: Created | None) -> None:
        # A created run holds this worker's lease already; a resumed one is claimed.
        self.worker.submit(run_id, claimed=created is not None, created=created)

    def _stop(self, run_id: str) -> None:
        if not self.worker.signal_cancel(run_id):
            self.worker.cancel_elsewhere(run_id)
