"""The multi-process `RunDispatcher`: as the local one, and it tells the worker processes
about new and cancelled runs over Redis pub/sub at once, rather than at their next sweep.

A process that does not execute runs (an API-only process) publishes `submit:<id>`; every
worker process hears it and tries to claim the run. A cancel of a run that does not
execute here publishes `cancel:<id>`; the process executing it stops it. A lost note costs
nothing but time: each worker's one-second sweep finds new and cancelling runs anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import redis.asyncio as aioredis

from assistantd.events.bus import EventBus
from assistantd.runs.dispatch import Created
from assistantd.worker.dispatch import LocalDispatcher
from assistantd.worker.worker import RunWorker

log = logging.getLogger("assistantd.worker")

CHANNEL = "assistantd:runs"


class RedisDispatcher(LocalDispatcher):
    def __init__(self, worker: RunWorker, bus: EventBus, redis_url: str) -> None:
        super().__init__(worker, bus)
        self._redis: Any = aioredis.from_url(redis_url)
        self._listener: asyncio.Task[None] | None = None
        self._notes: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        await super().start()
        if self.worker.enabled:
            self._listener = asyncio.create_task(self._listen())

    async def aclose(self) -> None:
        if self._listener:
            self._listener.cancel()
        await super().aclose()
        await self._redis.aclose()

    def _start(self, run_id: str, created: Created | None) -> None:
        if not self.worker.enabled:
            self._notify("submit", run_id)
            return
        super()._start(run_id, created)

    def _stop(self, run_id: str) -> None:
        if self.worker.signal_cancel(run_id):
            return
        self._notify("cancel", run_id)
        self.worker.cancel_elsewhere(run_id)

    async def _listen(self) -> None:
        pubsub = self._redis.pubsub()
        await pubsub.subscribe(CHANNEL)
        try:
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5.0)
                if message is None:
                    continue
                kind, _, run_id = message["data"].decode().partition(":")
                if kind == "submit":
                    self.worker.submit(run_id)
                elif kind == "cancel" and self.worker.signal_cancel(run_id):
                    log.info("run %s: cancel announced", run_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("run notifications stopped; sweeps still find runs every second")
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    def _notify(self, kind: str, run_id: str) -> None:
        task = asyncio.create_task(self._redis.publish(CHANNEL, f"{kind}:{run_id}"))
        self._notes.add(task)
        task.add_done_callback(self._notes.discard)
