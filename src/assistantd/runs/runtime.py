"""What the API side of runs needs from the process: the event bus and the worker."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from assistantd.core.settings import Settings
from assistantd.events.bus import EventBus
from assistantd.worker.worker import RunWorker


@dataclass
class RunRuntime:
    settings: Settings
    bus: EventBus
    worker: RunWorker
    ctx: Any = None

    @property
    def stores(self) -> Any:
        """The vector-store runtime (attachments and helpers create stores)."""
        return self.ctx.extras.get("vector_stores") if self.ctx is not None else None
