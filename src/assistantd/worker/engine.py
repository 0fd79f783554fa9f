"""The run engine: executes runs — prompt, model, tools, messages — and emits their events.

It is called by the worker with a run's id and a cancel signal, and drives the run's
`RunExecution` (`worker/execution.py`) against the cancel, the run's deadline and the
worker's shutdown. Every state change is written before it is published on the event bus,
in the order of CONTRACT.md §5 (`worker/journal.py`), so a stream shows exactly what a
poll would find. Changes that happen together share one transaction: the start (run in
progress + the context it reads + a tool-less run's first step and message), and the end
(message, step and run closed at once, their events published after the commit).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import orjson

from assistantd.core.ids import now_seconds
from assistantd.core.settings import Settings
from assistantd.events.bus import EventBus
from assistantd.llm.base import ModelError, ModelRouter
from assistantd.ops.context import bind_run
from assistantd.runs import lifecycle
from assistantd.runs.dispatch import Created
from assistantd.runs.state import RunState
from assistantd.usage.meter import UsageMeter
from assistantd.worker import prompt as prompts
from assistantd.worker.execution import Collaborators, RunExecution, RunOutcome
from assistantd.worker.journal import RunJournal
from assistantd.worker.lease import HeldLease, LeaseLost
from assistantd.worker.store import RunStore
from assistantd.worker.tools.base import ServerTool

log = logging.getLogger("assistantd.engine")

# The error of a step that a lost worker left open (`RunEngine._close_interrupted`).
INTERRUPTED = "assistantd restarted while this step ran; the run resumed."


class RunEngine:
    def __init__(
        self,
        store: RunStore,
        bus: EventBus,
        models: ModelRouter,
        settings: Settings,
        tools: dict[str, ServerTool] | None = None,
        files: prompts.ImageFiles | None = None,
        meter: UsageMeter | None = None,
    ) -> None:
        self.store = store
        self.bus = bus
        self.deps = Collaborators(
            store=store,
            models=models,
            settings=settings,
            tools=tools or {},
            files=files,
            meter=meter,
        )

    def _execution(
        self,
        run_id: str,
        run: dict[str, Any],
        state: RunState,
        project_id: str,
        *,
        cancel: asyncio.Event | None = None,
        tracked: bool = False,
        lease: HeldLease | None = None,
    ) -> RunExecution:
        return RunExecution(
            self.deps,
            RunJournal(self.store, self.bus, run_id, self.deps.meter, lease),
            run,
            state,
            project_id,
            cancel=cancel,
            tracked=tracked,
        )

    # -- entry points ------------------------------------------------------------------

    async def execute(
        self,
        run_id: str,
        cancel: asyncio.Event,
        created: Created | None = None,
        lease: HeldLease | None = None,
    ) -> None:
        """Run `run_id` until it pauses (requires_action) or ends.

        `created`: (project id, body, state) of a run this process has just created, instead of
        reading it back; a cancel since then arrives through `cancel`. `lease`: the worker's
        lease on the run; every write and event is fenced by it (`worker/lease.py`), and
        `LeaseLost` leaves here when it is lost, the run untouched.
        """
        if created is not None:
            project_id, run, state = created[0], dict(created[1]), created[2]
        else:
            row = await self.store.load_run(run_id)
            if row is None:
                return
            project_id, run, state = row.project_id, dict(row.body), RunState.load(row.state)
        bind_run(run_id, project_id)  # ops: this task's logs, metrics and spans name the run
        if run["status"] == "cancelling":
            await self.finalize(run_id, "cancelled", lease=lease)
            return
        if run["status"] not in ("queued", "in_progress"):
            return
        if run["expires_at"] and now_seconds() >= run["expires_at"]:
            await self.finalize(run_id, "expired", lease=lease)
            return
        ex = self._execution(
            run_id,
            run,
            state,
            project_id,
            cancel=cancel,
            tracked=run["status"] == "queued",
            lease=lease,
        )
        if run["status"] == "in_progress":
            # Picked up after a crash: whatever step was in flight is lost; close it as
            # failed and go on from the thread's state.
            await self._close_interrupted(run_id, lease)
            if not await self._resumable(run_id):
                await ex.end("failed", last_error=self._given_up())
                return
        await ex.start()
        await self._drive(
            ex, cancel, (run["expires_at"] - time.time()) if run["expires_at"] else None
        )

    async def _drive(self, ex: RunExecution, cancel: asyncio.Event, deadline: float | None) -> None:
        """Run the execution's loop until it pauses or ends, is cancelled, or runs out of
        time; then end the run as that says."""
        loop = asyncio.create_task(ex.loop())
        stop = asyncio.create_task(cancel.wait())
        try:
            done, _ = await asyncio.wait(
                {loop, stop}, timeout=deadline, return_when=asyncio.FIRST_COMPLETED
            )
        except asyncio.CancelledError:
            # The worker is shutting down, or lost the run's lease: stop generating, leave
            # the run for recovery. (The loop may end in `LeaseLost` rather than cancelled:
            # its outcome is taken here, so that nobody logs it as never retrieved.)
            loop.cancel()
            stop.cancel()
            loop.add_done_callback(_outcome_taken)
            raise
        stop.cancel()
        if loop in done and not (
            cancel.is_set()
            and (loop.cancelled() or isinstance(loop.exception(), asyncio.CancelledError))
        ):
            await self._conclude(ex, loop)
            return
        ex.stopping = True  # the stream loop checks this between fragments
        # Some client libraries (redis-py's asyncio client among them) can swallow a
        # CancelledError; cancel again until the loop has really stopped.
        while not loop.done():
            loop.cancel()
            await asyncio.wait({loop}, timeout=0.05)
        with contextlib.suppress(asyncio.CancelledError, Exception):
            loop.result()
        await ex.end("cancelled" if cancel.is_set() else "expired")

    async def _resumable(self, run_id: str) -> bool:
        """Whether a run taken over after losing its worker may go on: it lost one at most
        `ASSISTANTD_RUN_MAX_TAKEOVERS` times, as counted in its event log by the steps
        closed as interrupted (this takeover's included)."""
        losses = 0
        for ev in await self.bus.history(run_id):
            if ev.event == "thread.run.step.failed":
                error = orjson.loads(ev.data).get("last_error") or {}
                losses += error.get("message") == INTERRUPTED
        return losses <= self.deps.settings.run_max_takeovers

    def _given_up(self) -> dict[str, str]:
        limit = self.deps.settings.run_max_takeovers
        return {
            "code": "server_error",
            "message": (
                "assistantd lost the worker executing this run more often than ASSISTANTD_RUN_MAX_TAKEOVERS "
                f"({limit}) allows; it was not resumed again."
            ),
        }

    @staticmethod
    async def _conclude(ex: RunExecution, loop: asyncio.Task[None]) -> None:
        """End the run as its finished loop says (nothing to do when it paused)."""
        run_id = ex.run["id"]
        try:
            loop.result()
        except LeaseLost:
            raise  # not this worker's run any more: nothing to end
        except RunOutcome as end:
            await ex.end(end.status, **end.fields)
        except ModelError as err:
            # The client sees `message`; the log gets `detail` (e.g. the upstream's URL).
            log.warning("run %s failed (%s): %s", run_id, err.code, err.detail)
            await ex.end("failed", last_error={"code": err.code, "message": err.message})
        except Exception as err:  # a fault of ours: say so, never leave the run stuck
            # What the exception says may name paths or URLs: only the log shows it.
            log.exception("run %s crashed", run_id)
            await ex.end(
                "failed",
                last_error={
                    "code": "server_error",
                    "message": f"assistantd failed while running ({type(err).__name__}); "
                    f"the server log has the details of run {run_id}.",
                },
            )

    async def finalize(
        self, run_id: str, status: str, *, lease: HeldLease | None = None, **fields: Any
    ) -> None:
        """End a run that is not executing (queued, requires_action, orphaned; with `lease`,
        one this worker holds the lease of)."""
        row = await self.store.load_run(run_id)
        if row is None or lifecycle.is_terminal(row.status):
            return
        await self._execution(
            run_id, dict(row.body), RunState.load(row.state), row.project_id, lease=lease
        ).end(status, **fields)

    async def _close_interrupted(self, run_id: str, lease: HeldLease | None = None) -> None:
        """Close what a dead process left open: its message keeps the content its stream
        had sent (as far as the event log reached the database or Redis)."""
        open_steps, open_messages = await self.store.open_parts(run_id)
        row = await self.store.load_run(run_id)
        if row is None:
            return
        ex = self._execution(
            run_id, dict(row.body), RunState.load(row.state), row.project_id, lease=lease
        )
        error = {
            "code": "server_error",
            "message": "assistantd restarted while this step ran; the run resumed.",
        }
        streamed = (
            streamed_content(await self.bus.history(run_id), {m["id"] for m in open_messages})
            if open_messages
            else {}
        )
        async with ex.journal.batch():
            for message in open_messages:
                message = dict(
                    lifecycle.left_open_message(message, "run_failed", now_seconds()),
                    content=streamed.get(message["id"]) or message["content"],
                )
                await ex.journal.record("message", message, "thread.message.incomplete")
            for step in open_steps:
                await ex.finish_step(dict(step.body), "failed", None, error, state=step.state)


def _outcome_taken(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()


def streamed_content(events: list[Any], message_ids: set[str]) -> dict[str, list[dict[str, Any]]]:
    """The content that `thread.message.delta` events sent for each of `message_ids`."""
    parts: dict[str, dict[int, dict[str, Any]]] = {}
    texts: dict[tuple[str, int], list[str]] = {}
    refusals: dict[tuple[str, int], list[str]] = {}
    for ev in events:
        if ev.event != "thread.message.delta":
            continue
        delta = orjson.loads(ev.data)
        if delta.get("id") not in message_ids:
            continue
        slots = parts.setdefault(delta["id"], {})
        for entry in delta["delta"].get("content") or []:
            if entry["type"] == "text":
                slot = slots.setdefault(
                    entry["index"], {"type": "text", "text": {"value": "", "annotations": []}}
                )
                texts.setdefault((delta["id"], entry["index"]), []).append(
                    entry["text"].get("value") or ""
                )
                slot["text"]["annotations"] += [
                    {k: v for k, v in a.items() if k != "index"}
                    for a in entry["text"].get("annotations") or []
                ]
            elif entry["type"] == "refusal":
                slots.setdefault(entry["index"], {"type": "refusal", "refusal": ""})
                refusals.setdefault((delta["id"], entry["index"]), []).append(
                    entry.get("refusal") or ""
                )
            else:
                slots[entry["index"]] = {k: v for k, v in entry.items() if k != "index"}
    for (message_id, index), values in texts.items():
        parts[message_id][index]["text"]["value"] = "".join(values)
    for (message_id, index), values in refusals.items():
        parts[message_id][index]["refusal"] = "".join(values)
    return {mid: [slots[k] for k in sorted(slots)] for mid, slots in parts.items()}


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()
