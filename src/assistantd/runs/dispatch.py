"""The seam between the API side of runs and their execution (`worker/`).

The API creates, cancels and resumes runs in the request's transaction; what happens
after the commit — announcing the change on the run's event log, then starting or
stopping the run wherever it executes — belongs to a `RunDispatcher`. Two implement it,
as the event bus has two: `worker/dispatch.py::LocalDispatcher` (this process's worker)
and `worker/redis_dispatch.py::RedisDispatcher` (tells every worker process over Redis).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from assistantd.core.db import UnitOfWork
from assistantd.runs.state import RunState

#: An event the API side announces on a run's log: (event name, data).
Announcement = tuple[str, dict[str, Any]]
#: (lease owner, lease expiry) stored with a run that this process will execute.
Lease = tuple[str, float]
#: A run just created: (project id, body, private state), so the worker need not read it back.
Created = tuple[str, dict[str, Any], RunState]


class RunDispatcher(Protocol):
    def lease_for_create(self) -> Lease | None:
        """The lease to insert with a new run, if this process will execute it (so it needs
        no separate claim); None when another process will."""

    def submit(
        self,
        uow: UnitOfWork,
        run_id: str,
        events: Sequence[Announcement],
        *,
        created: Created | None = None,
    ) -> None:
        """Once `uow` has committed: publish `events` on the run's log, in order, then have
        the run executed (after the response has gone out).

        `created`: (project id, body, state) of a run just inserted with `lease_for_create`'s
        lease; its log is new, and the worker starts from this body without reading it back.
        """

    def cancel(self, uow: UnitOfWork, run_id: str, events: Sequence[Announcement]) -> None:
        """Once `uow` has committed: publish `events`, then stop the run wherever it runs
        (or end it `cancelled` if nothing is executing it)."""
