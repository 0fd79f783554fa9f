"""A clean stop of the run worker: stop intake, let runs in flight finish, hand the rest on.

1. SIGTERM: uvicorn closes the listening socket (no new connections) and waits for open
   ones; here the worker stops taking runs (`close_intake`: no new leases, no sweeps).
2. The runs it executes get `ASSISTANTD_SHUTDOWN_DRAIN_SECONDS` to pause or end; their
   streams end as usual, with `done`.
3. A run still going then is handed off: its generation is stopped, the message it was
   writing ends `incomplete` with what it had streamed, the open step `failed` (saying
   why), and the run goes back to `queued` with its lease released, so another worker
   (or this server, restarted) takes it up at once and resumes it from the thread. Its
   streams get those events and `done`. Nothing is left `in_progress`.
4. Then the process exits.

`assistantd worker` does the same on SIGTERM/SIGINT, from step 2. The SIGTERM hook and the
`Drain` Protocol the app context holds are in `ops/shutdown.py`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from assistantd.core.ids import now_seconds
from assistantd.events.bus import EventBus
from assistantd.runs.objects import step_view, usage_object
from assistantd.worker.engine import streamed_content
from assistantd.worker.lease import LeaseLost
from assistantd.worker.store import Write
from assistantd.worker.worker import RunWorker

log = logging.getLogger("assistantd.shutdown")

HANDED_OFF = "assistantd stopped while this step ran; the run was handed to another worker."
#: Cancelled engine tasks are given this long to unwind before their run is written.
UNWIND_SECONDS = 0.2


class Drainer:
    """Drains one process's run worker, once, however many times it is asked."""

    def __init__(self, worker: RunWorker, bus: EventBus, seconds: float) -> None:
        self.worker = worker
        self.bus = bus
        self.seconds = seconds
        self._task: asyncio.Task[None] | None = None

    def begin(self) -> None:
        """Start draining now (in the event loop's thread)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._drain())

    async def finish(self) -> None:
        """Drain (if not begun yet) and wait until the worker has stopped."""
        self.begin()
        assert self._task is not None
        await self._task

    async def _drain(self) -> None:
        worker = self.worker
        worker.close_intake()
        left = await worker.wait_idle(self.seconds)
        if left:
            log.warning(
                "handing off %d run(s) still executing after %gs: %s",
                len(left),
                self.seconds,
                ", ".join(left),
            )
        await worker.stop()
        if left:
            await asyncio.sleep(UNWIND_SECONDS)
        for run_id in left:
            try:
                await hand_off(worker, self.bus, run_id)
            except LeaseLost:
                log.info("run %s: not handed off, another worker holds its lease", run_id)
            except Exception:
                log.exception(
                    "could not hand off run %s; it resumes when its lease runs out", run_id
                )


async def hand_off(worker: RunWorker, bus: EventBus, run_id: str) -> None:
    """Close what the stopped execution left open and put the run back in the queue."""
    store = worker.store
    row = await store.load_run(run_id)
    if row is None or row.status != "in_progress":
        return
    steps, messages = await store.open_parts(run_id)
    streamed = (
        streamed_content(await bus.history(run_id), {m["id"] for m in messages}) if messages else {}
    )
    now = now_seconds()
    writes: list[Write] = []
    events: list[tuple[str, Any]] = []
    for message in messages:
        message = dict(
            message,
            status="incomplete",
            incomplete_at=now,
            incomplete_details={"reason": "run_failed"},
            content=streamed.get(message["id"]) or message["content"],
        )
        writes.append(("message", message, None))
        events.append(("thread.message.incomplete", message))
    for stored in steps:
        step = dict(
            stored.body,
            status="failed",
            failed_at=now,
            last_error={"code": "server_error", "message": HANDED_OFF},
        )
        step["usage"] = stored.state.usage or usage_object(0, 0)
        stored.state.usage = None
        writes.append(("step", step, stored.state))
        events.append(("thread.run.step.failed", step_view(step, False)))
    run = dict(row.body, status="queued")
    writes.append(("run", run, None))
    events.append(("thread.run.queued", dict(run)))
    await store.write(writes, held_by=worker.owner)  # unless another worker took it meanwhile
    await store.release(run_id, worker.owner)
    for event, data in events:
        await bus.publish(run_id, event, data)
    await bus.finish(run_id)
    log.info("run %s handed off: queued for another worker", run_id)
