"""What the API side of runs needs from the process: the event bus (streams read it), the
dispatcher (runs start and stop through it), and the vector stores (attachments and
`tool_resources` helpers create stores)."""

from __future__ import annotations

from dataclasses import dataclass

from assistantd.core.settings import Settings
from assistantd.events.bus import EventBus
from assistantd.limits.service import Limits
from assistantd.runs.dispatch import RunDispatcher
from assistantd.vector_stores.runtime import VectorStoreRuntime


@dataclass
class RunRuntime:
    settings: Settings
    bus: EventBus
    dispatcher: RunDispatcher
    stores: VectorStoreRuntime
    #: Rate and spend limits every run request passes (None: none apply).
    limits: Limits | None = None
