"""Executes runs in the background of the process that serves the API (or on its own).

A run is executed by whoever holds its lease (`runs.lease_owner`, `host:pid`), renewed
every `ASSISTANTD_RUN_LEASE_RENEW_SECONDS` to `ASSISTANTD_RUN_LEASE_SECONDS` ahead while it
runs. A worker that dies leaves leases that stop being renewed: each worker's sweep (every
`ASSISTANTD_RUN_SWEEP_SECONDS`) takes over a run whose holder is a pid gone from its own
host at once, and any other (a holder on another host, or one that stalled) once the lease
has run out. Runs whose `expires_at` passed are expired here, whatever state they wait in.
Nothing is left stuck.

A worker that stalled past its lease (and may have lost it) stops executing the run without
touching it (`worker/lease.py`): once its lease ran out here without a renewal (less
`ASSISTANTD_RUN_LEASE_MARGIN_SECONDS`), when a renewal or a sweep finds another worker
holding it, or when one of its writes finds the lease no longer its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from assistantd.core.leases import owner_alive, owner_name
from assistantd.core.periodic import every
from assistantd.core.settings import Settings
from assistantd.runs.dispatch import Created
from assistantd.worker.engine import RunEngine
from assistantd.worker.lease import HeldLease, LeaseLost
from assistantd.worker.store import RunStore

log = logging.getLogger("assistantd.worker")


class RunWorker:
    """This process's executor: one task per run it holds the lease of.

    The API reaches it only through a `RunDispatcher` (`worker/dispatch.py`)."""

    def __init__(self, engine: RunEngine, store: RunStore, settings: Settings) -> None:
        self.engine = engine
        self.store = store
        self.settings = settings
        self.host_id = settings.host_id
        self.owner = owner_name(host_id=settings.host_id)
        self.lease_seconds = settings.run_lease_seconds
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._signals: dict[str, asyncio.Event] = {}
        # The runs whose lease this worker took (claimed, or created with it).
        self._leases: dict[str, HeldLease] = {}
        self._limit = asyncio.Semaphore(settings.run_concurrency)
        self._sweeper: asyncio.Task[None] | None = None
        self._renewer: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def enabled(self) -> bool:
        """Whether this process executes runs (`ASSISTANTD_WORKER_ENABLED`)."""
        return self.settings.worker_enabled

    async def start(self) -> None:
        await self.sweep()
        self._sweeper = asyncio.create_task(
            every(self.settings.run_sweep_seconds, self.sweep, log, "run sweep")
        )
        self._renewer = asyncio.create_task(
            every(self.settings.run_lease_renew_seconds, self.renew, log, "run lease renewal")
        )

    async def stop(self) -> None:
        """Stop executing; runs in flight keep their (soon stale) leases and are resumed later."""
        self._closing = True
        for periodic in (self._sweeper, self._renewer):
            if periodic:
                periodic.cancel()
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for run_id in list(self._tasks):
            await self.store.release(run_id, self.owner)

    def close_intake(self) -> None:
        """Take no more runs (a stopping process lets those it executes finish first)."""
        self._closing = True

    async def wait_idle(self, seconds: float) -> list[str]:
        """Wait up to `seconds` for the runs executing here to pause or end; returns
        those still executing."""
        tasks = [task for run_id, task in self._tasks.items() if run_id in self._signals]
        if tasks:
            await asyncio.wait(tasks, timeout=seconds)
        return [run_id for run_id in self._tasks if run_id in self._signals]

    def lease_for_new_run(self) -> tuple[str, float] | None:
        """(owner, until) to store with a run created in this process, if it will execute it."""
        if not self.settings.worker_enabled or self._closing:
            return None
        return self.owner, time.time() + self.lease_seconds

    def submit(
        self,
        run_id: str,
        steal_from: str | None = None,
        claimed: bool = False,
        created: Created | None = None,
    ) -> None:
        """Execute a queued run here (if nobody else holds it).

        `claimed`: the run was created with this worker's lease (`lease_for_new_run`);
        `created`: its (project id, body) as just committed.
        """
        if not self.enabled or self._closing or run_id in self._tasks:
            return
        self._signals[run_id] = asyncio.Event()
        if claimed:
            # Renewed while it waits for a slot. Granted (`lease_for_new_run`) no later than
            # the run's creation time, in whole seconds: a lease good to a little less long.
            wall, mono = time.time(), time.monotonic()
            granted = min(wall, float(created[1]["created_at"])) if created else wall
            self._leases[run_id] = self._lease(granted, mono - (wall - granted))
        self._tasks[run_id] = asyncio.create_task(
            self._execute(run_id, steal_from, claimed, created)
        )

    def signal_cancel(self, run_id: str) -> bool:
        """Ask the run to stop if it executes here (it ends `cancelled` within a token or
        two); False if it does not."""
        signal = self._signals.get(run_id)
        if signal is None:
            return False
        signal.set()
        return True

    def cancel_elsewhere(self, run_id: str) -> None:
        """End `cancelled` a run not executing here: waiting for tool outputs, queued, or
        running in another process (left to it when its lease is live: its sweep sees
        `cancelling` in the database and stops it)."""
        self._tasks[run_id] = asyncio.create_task(
            self._finalize(run_id, "cancelled", unless_leased=True)
        )

    def executing(self) -> list[str]:
        return list(self._tasks)

    async def _execute(
        self,
        run_id: str,
        steal_from: str | None,
        claimed: bool = False,
        created: Created | None = None,
    ) -> None:
        try:
            async with self._limit:
                if not claimed:
                    wall, mono = time.time(), time.monotonic()
                    if not await self.store.claim(
                        run_id, self.owner, wall, self.lease_seconds, steal_from
                    ):
                        return
                    self._leases[run_id] = self._lease(wall, mono)
                claimed = True
                await self.engine.execute(
                    run_id, self._signals[run_id], created, lease=self._leases[run_id]
                )
        except asyncio.CancelledError:
            self._lost(run_id)
            raise
        except LeaseLost:
            self._lost(run_id)
        except Exception as err:
            log.exception("worker failed on run %s", run_id)
            if claimed:
                await self._give_up(run_id, err)
        finally:
            # A paused or ended run's lease was released with its status (RunStore.write).
            self._tasks.pop(run_id, None)
            self._signals.pop(run_id, None)
            self._leases.pop(run_id, None)

    def _lost(self, run_id: str) -> None:
        """Say so when the execution of `run_id` ended because its lease was lost."""
        lease = self._leases.get(run_id)
        if lease is not None and lease.lost is not None:
            log.warning(
                "run %s: %s; it stops executing here, left to its holder", run_id, lease.lost
            )

    def _lease(self, wall: float, mono: float) -> HeldLease:
        """A lease claimed at (`wall`, `mono`), good to `ASSISTANTD_RUN_LEASE_SECONDS` after
        less the margin."""
        lease = HeldLease(
            self.owner, self.settings.run_lease_margin_seconds, wall + self.lease_seconds
        )
        lease.extend(wall, mono, self.lease_seconds)
        return lease

    async def _give_up(self, run_id: str, err: Exception) -> None:
        """End `failed` a run held here whose execution broke outside the run's own loop
        (resuming it, reading it): left as it was, every worker would take it up again."""
        try:
            await self.engine.finalize(
                run_id,
                "failed",
                lease=self._leases.get(run_id),
                last_error={
                    "code": "server_error",
                    "message": f"assistantd could not go on with this run: {type(err).__name__}: {err}",
                },
            )
        except (
            Exception
        ) as again:  # the database, most likely: the lease runs out, and it is retried
            log.warning("could not end run %s as failed: %s", run_id, again)

    async def _finalize(self, run_id: str, status: str, unless_leased: bool = False) -> None:
        """End a run that is not executing here; with `unless_leased`, leave it alone when a
        live process elsewhere holds it (that process's sweep sees the new status)."""
        try:
            if unless_leased:
                row = await self.store.load_run(run_id)
                if (
                    row is not None
                    and row.lease_owner not in (None, self.owner)
                    and (row.lease_expires_at or 0) > time.time()
                    and owner_alive(row.lease_owner, self.host_id)
                ):
                    return
            await self.engine.finalize(run_id, status)
        except Exception:
            log.exception("could not end run %s as %s", run_id, status)
        finally:
            self._tasks.pop(run_id, None)

    async def renew(self) -> None:
        """Move the leases of the runs executing here `ASSISTANTD_RUN_LEASE_SECONDS` ahead;
        stop executing those whose lease ran out here before (this worker stalled or could
        not reach the database for longer than the lease less the margin) and those that
        another worker holds now."""
        leases = dict(self._leases)
        for run_id, lease in list(leases.items()):
            if lease.lost is not None or lease.expired:
                self._stop(run_id, "its lease ran out without a renewal")
                del leases[run_id]
        if not leases:
            return
        wall, mono = time.time(), time.monotonic()
        lost = await self.store.renew(list(leases), self.owner, wall + self.lease_seconds)
        for run_id, lease in leases.items():
            if run_id not in lost:
                lease.extend(wall, mono, self.lease_seconds)
            elif lost[run_id] is not None:
                self._stop(run_id, f"its lease passed to {lost[run_id]}")
            # Released (None): the run paused or ended, its execution is on its way out (or
            # the run was ended elsewhere: its next write finds that out).

    def _stop(self, run_id: str, why: str) -> None:
        """Stop executing a run whose lease this worker lost, leaving the run as it is."""
        lease = self._leases.get(run_id)
        if lease is not None:
            lease.lose(why)
        task = self._tasks.get(run_id)
        if task is not None and not task.done():
            task.cancel()

    async def sweep(self) -> None:
        """Expire overdue runs, take over orphaned ones, stop those another worker took."""
        now = time.time()
        for run_id, status, owner, lease_until, expires_at in await self.store.candidates():
            if run_id in self._signals:
                self._check_executing(run_id, status, owner)
                continue
            if run_id in self._tasks:
                continue
            if expires_at is not None and now >= expires_at:
                self._tasks[run_id] = asyncio.create_task(self._finalize(run_id, "expired"))
                continue
            if status == "requires_action":
                continue  # waiting for the client; only expiry moves it
            dead = (
                owner is not None and owner != self.owner and not owner_alive(owner, self.host_id)
            )
            # Ours but not executing: a previous life of this process id (containers reuse pids).
            # Any holder's lease that ran out: a worker on another host died (or stalled).
            orphaned = (
                owner is None
                or owner == self.owner
                or dead
                or (lease_until is not None and lease_until < now)
            )
            if not orphaned:
                continue
            if status == "cancelling":
                self._tasks[run_id] = asyncio.create_task(self._finalize(run_id, "cancelled"))
            elif status in ("queued", "in_progress"):
                self.submit(run_id, steal_from=owner if dead else None)

    def _check_executing(self, run_id: str, status: str, owner: str | None) -> None:
        """A run executing here: cancelled through another process, or taken over by another
        worker after this one's lease ran out (a stall longer than the lease)."""
        if status == "cancelling" and not self._signals[run_id].is_set():
            log.info("run %s: cancelled through another process", run_id)
            self._signals[run_id].set()
        elif run_id in self._leases and owner is not None and owner != self.owner:
            self._stop(run_id, f"its lease passed to {owner}")
